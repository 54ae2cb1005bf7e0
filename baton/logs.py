"""JSON-lines logging with the message id and trace id of the work in progress.

The stage loop and ingress set the context variables below; every log line written while they are
set carries them, so one grep for a message id finds its whole path through a stage.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

message_id_var: ContextVar[str] = ContextVar("baton_message_id", default="")
trace_id_var: ContextVar[str] = ContextVar("baton_trace_id", default="")

# Attributes every LogRecord has; anything else came in through `extra=` and is logged as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        message_id = getattr(record, "message_id", None) or message_id_var.get()
        if message_id:
            entry["message_id"] = message_id
        trace_id = trace_id_var.get()
        if trace_id:
            entry["trace_id"] = trace_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and key != "color_message":
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries log every reconnect at INFO/WARNING; keep their noise out of the stream
    # unless asked for with BATON_LOG_LEVEL=DEBUG.
    if root.level > logging.DEBUG:
        for noisy in ("aiokafka", "mail.log", "uvicorn.access"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
