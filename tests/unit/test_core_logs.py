"""JsonFormatter: one JSON object per line carrying the message and trace ids of the work in progress."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from baton.logs import JsonFormatter, message_id_var, trace_id_var


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("filter"))
    logger = logging.getLogger("baton.test.core_logs")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.handlers.clear()
        logger.propagate = True


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_one_json_object_per_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("first %s", "record")
    logger.warning("second\nspans two lines")
    first, second = _lines(stream)
    assert first["msg"] == "first record"
    assert first["level"] == "info"
    assert first["service"] == "filter"
    assert first["logger"] == "baton.test.core_logs"
    assert first["ts"].endswith("Z")
    assert second["level"] == "warning"
    assert second["msg"] == "second\nspans two lines"
    assert "message_id" not in first
    assert "trace_id" not in first
    assert "exc" not in first


def test_ids_come_from_the_context_variables(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    message_token = message_id_var.set("msg-ctx")
    trace_token = trace_id_var.set("4bf92f3577b34da6a3ce929d0e0e4736")
    try:
        logger.info("inside")
    finally:
        message_id_var.reset(message_token)
        trace_id_var.reset(trace_token)
    logger.info("outside")
    inside, outside = _lines(stream)
    assert inside["message_id"] == "msg-ctx"
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "message_id" not in outside
    assert "trace_id" not in outside


def test_message_id_from_extra_wins_over_the_context(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    token = message_id_var.set("msg-ctx")
    try:
        logger.info("explicit", extra={"message_id": "msg-extra"})
    finally:
        message_id_var.reset(token)
    logger.info("no context", extra={"message_id": "msg-only-extra"})
    explicit, no_context = _lines(stream)
    assert explicit["message_id"] == "msg-extra"
    assert no_context["message_id"] == "msg-only-extra"


def test_extra_fields_are_logged(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info(
        "delivered",
        extra={"stage": "sender", "attempt": 3, "ratio": 0.5, "ok": True, "none": None, "hosts": ["a", "b"]},
    )
    (entry,) = _lines(stream)
    assert entry["stage"] == "sender"
    assert entry["attempt"] == 3
    assert entry["ratio"] == 0.5
    assert entry["ok"] is True
    assert entry["none"] is None
    # Anything not a JSON scalar is logged as its str().
    assert entry["hosts"] == "['a', 'b']"
    for standard in ("args", "levelno", "pathname", "exc_text", "process", "thread"):
        assert standard not in entry


def test_non_ascii_text_is_kept(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("résumé ✉", extra={"rcpt": "jörg@exämple.de"})
    assert "résumé ✉" in stream.getvalue()
    (entry,) = _lines(stream)
    assert entry["rcpt"] == "jörg@exämple.de"


def test_exception_text_is_logged(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise RuntimeError("boom in handler")
    except RuntimeError:
        logger.exception("handler failed")
    (entry,) = _lines(stream)
    assert entry["level"] == "error"
    assert entry["msg"] == "handler failed"
    assert entry["exc"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom in handler" in entry["exc"]
