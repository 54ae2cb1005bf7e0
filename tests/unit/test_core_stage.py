"""The broker-free parts of the stage loop: the DLQ ratio window and header lookup."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from baton.kafka.stage import _DlqWindow, header


def _window(size: int = 10, limit: float = 0.5, min_records: int = 4) -> _DlqWindow:
    return _DlqWindow(size=size, limit=limit, min_records=min_records)


def test_add_returns_the_dlq_share_of_the_window() -> None:
    window = _window()
    assert window.add(False) == 0.0
    assert window.add(True) == 0.5
    assert window.add(True) == pytest.approx(2 / 3)
    assert window.add(False) == 0.5


def test_not_exceeded_before_min_records() -> None:
    window = _window(min_records=4)
    for _ in range(3):
        window.add(True)
    assert not window.exceeded()
    window.add(True)
    assert window.exceeded()


def test_the_limit_itself_is_not_exceeded() -> None:
    window = _window(limit=0.5, min_records=4)
    for to_dlq in (True, False, True, False):
        window.add(to_dlq)
    assert not window.exceeded()
    window.add(True)  # 3 of 5
    assert window.exceeded()


def test_the_window_forgets_records_older_than_its_size() -> None:
    window = _window(size=4, limit=0.5, min_records=4)
    for _ in range(4):
        window.add(True)
    assert window.exceeded()
    assert window.add(False) == 0.75
    assert len(window.recent) == 4
    assert window.add(False) == 0.5
    assert not window.exceeded()
    window.add(False)
    assert window.add(False) == 0.0


def test_a_full_ratio_limit_is_never_exceeded() -> None:
    window = _window(limit=1.0, min_records=1)
    for _ in range(20):
        window.add(True)
    assert not window.exceeded()


def test_an_empty_window_is_not_exceeded() -> None:
    assert not _window(min_records=1).exceeded()


@dataclass
class FakeRecord:
    """Just the attribute `header()` reads from an aiokafka ConsumerRecord."""

    headers: list[tuple[str, bytes]] | None = field(default_factory=list)


def test_header_finds_a_value_by_name() -> None:
    record = FakeRecord([("traceparent", b"00-abc"), ("baton-message-id", b"m1")])
    assert header(record, "baton-message-id") == b"m1"
    assert header(record, "traceparent") == b"00-abc"


def test_header_returns_the_first_of_repeated_names() -> None:
    record = FakeRecord([("x", b"first"), ("x", b"second")])
    assert header(record, "x") == b"first"


def test_header_is_case_sensitive_and_absent_is_none() -> None:
    record = FakeRecord([("Baton-Message-Id", b"m1")])
    assert header(record, "baton-message-id") is None
    assert header(FakeRecord([]), "x") is None
    assert header(FakeRecord(None), "x") is None


def test_header_returns_bytes_for_bytearray_values() -> None:
    value = header(FakeRecord([("x", bytearray(b"v")), ("y", b"")]), "x")  # type: ignore[list-item]
    assert value == b"v"
    assert type(value) is bytes
    assert header(FakeRecord([("y", b"")]), "y") == b""
