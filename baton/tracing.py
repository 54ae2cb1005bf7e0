"""W3C trace context (``traceparent``) carried in Kafka record headers.

Ingress starts a trace per accepted message; every stage continues it with a new span id, so one
message is one trace from SMTP accept to the remote server's reply. Exporting spans (OTLP) is not
wired yet; the ids already appear in every log line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

HEADER = "traceparent"
_PATTERN = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def new(cls) -> TraceContext:
        return cls(os.urandom(16).hex(), os.urandom(8).hex())

    @classmethod
    def parse(cls, value: str | bytes | None) -> TraceContext | None:
        """The context in a ``traceparent`` value, or None when absent or malformed."""
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        match = _PATTERN.match(value.strip().lower())
        if not match or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
            return None
        return cls(match.group(1), match.group(2), match.group(3))

    def child(self) -> TraceContext:
        return TraceContext(self.trace_id, os.urandom(8).hex(), self.flags)

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"
