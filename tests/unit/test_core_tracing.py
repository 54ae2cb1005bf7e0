"""W3C traceparent parsing, children and round-trips."""

from __future__ import annotations

import pytest

from baton.tracing import TraceContext

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"


def test_a_valid_value_is_parsed() -> None:
    assert TraceContext.parse(VALID) == TraceContext(TRACE_ID, SPAN_ID, "01")


def test_bytes_and_surrounding_whitespace_are_accepted() -> None:
    assert TraceContext.parse(f" {VALID}\r\n".encode()) == TraceContext(TRACE_ID, SPAN_ID, "01")


def test_flags_are_kept() -> None:
    parsed = TraceContext.parse(f"00-{TRACE_ID}-{SPAN_ID}-00")
    assert parsed is not None
    assert parsed.flags == "00"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"01-{TRACE_ID}-{SPAN_ID}-01",  # unknown version
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",  # trace id too short
        f"00-{TRACE_ID}-{SPAN_ID}0-01",  # span id too long
        f"00-{TRACE_ID}-{SPAN_ID}-1",  # flags too short
        f"00-{TRACE_ID[:-1]}g-{SPAN_ID}-01",  # not hex
        f"00_{TRACE_ID}_{SPAN_ID}_01",
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",
        b"\xff\xfe",
    ],
)
def test_malformed_values_are_none(value: str | bytes | None) -> None:
    assert TraceContext.parse(value) is None


@pytest.mark.parametrize(
    "value",
    [f"00-{'0' * 32}-{SPAN_ID}-01", f"00-{TRACE_ID}-{'0' * 16}-01"],
    ids=["zero-trace-id", "zero-span-id"],
)
def test_all_zero_ids_are_invalid(value: str) -> None:
    assert TraceContext.parse(value) is None


def test_new_contexts_are_valid_and_distinct() -> None:
    first, second = TraceContext.new(), TraceContext.new()
    assert TraceContext.parse(first.header()) == first
    assert first.trace_id != second.trace_id
    assert len(first.trace_id) == 32
    assert len(first.span_id) == 16
    assert first.flags == "01"


def test_a_child_keeps_the_trace_and_changes_the_span() -> None:
    parent = TraceContext(TRACE_ID, SPAN_ID, "00")
    child = parent.child()
    assert child.trace_id == TRACE_ID
    assert child.flags == "00"
    assert child.span_id != SPAN_ID
    assert len(child.span_id) == 16
    assert child.child().span_id != child.span_id
    assert TraceContext.parse(child.header()) == child


def test_header_round_trip() -> None:
    context = TraceContext(TRACE_ID, SPAN_ID, "01")
    assert context.header() == VALID
    assert TraceContext.parse(context.header()) == context
    assert TraceContext.parse(context.header().encode("ascii")) == context
