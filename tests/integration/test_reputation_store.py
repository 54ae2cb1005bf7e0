"""TimelineStore against migrated SQLite and PostgreSQL databases: ordering, idempotent replays."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from baton.store import MessageEvent
from services.reputation.store import TimelineStore
from services.reputation.timeline import EventRow


def row(
    kind: str,
    key: str = "",
    at_ms: int = 1000,
    message_id: str = "m1",
    sender: str = "auth:alice",
    **detail: object,
) -> EventRow:
    return EventRow(
        message_id=message_id,
        kind=kind,
        key=key,
        sender_identity=sender,
        at_ms=at_ms,
        detail=json.dumps(detail),
    )


def count(store: TimelineStore) -> int:
    with store._engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(MessageEvent)).scalar_one())


def sample(name: str, kind: str) -> float:
    return REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0


def test_record_and_read_back_in_time_order(store: TimelineStore) -> None:
    assert (
        store.record(
            [
                row("routed", "example.org", at_ms=1100),
                row("accepted", at_ms=1000, client_ip="192.0.2.7"),
                row("outcome", "bob@example.org delivered 1", at_ms=1100),
                row("filtered", at_ms=1050),
            ]
        )
        == 4
    )
    steps = store.timeline("m1")
    # at_ms first, then the order of storing for ties.
    assert [(s.kind, s.at_ms) for s in steps] == [
        ("accepted", 1000),
        ("filtered", 1050),
        ("routed", 1100),
        ("outcome", 1100),
    ]
    assert steps[0].detail == {"client_ip": "192.0.2.7"}
    assert steps[0].sender_identity == "auth:alice"
    assert store.timeline("other") == []


def test_replayed_records_are_ignored(store: TimelineStore) -> None:
    before_new = sample("baton_reputation_events_recorded_total", "outcome")
    before_dup = sample("baton_reputation_events_duplicate_total", "outcome")
    first = [row("accepted"), row("outcome", "bob@example.org deferred 1")]
    assert store.record(first) == 2
    # A replay, in a batch with a new step: only the new step is stored, nothing fails.
    assert store.record([*first, row("outcome", "bob@example.org delivered 2", at_ms=2000)]) == 1
    assert store.record(first) == 0
    assert count(store) == 3
    assert sample("baton_reputation_events_recorded_total", "outcome") - before_new == 2
    assert sample("baton_reputation_events_duplicate_total", "outcome") - before_dup == 2


def test_duplicate_within_one_batch(store: TimelineStore) -> None:
    assert store.record([row("accepted"), row("accepted")]) == 1
    assert count(store) == 1


def test_sender_messages_newest_first(store: TimelineStore) -> None:
    store.record(
        [
            row("accepted", at_ms=1000, message_id="old"),
            row("accepted", at_ms=2000, message_id="new"),
            # A later step makes "old" the most recently active.
            row("outcome", "x@example.org delivered 1", at_ms=3000, message_id="old"),
            row("accepted", at_ms=5000, message_id="bob-1", sender="auth:bob"),
        ]
    )
    assert [(m.message_id, m.last_at_ms) for m in store.sender_messages("auth:alice")] == [
        ("old", 3000),
        ("new", 2000),
    ]
    assert [m.message_id for m in store.sender_messages("auth:alice", limit=1)] == ["old"]
    assert store.sender_messages("auth:nobody") == []


def test_unsupported_dialect_is_refused() -> None:
    from sqlalchemy import create_mock_engine

    engine = create_mock_engine("mysql://", executor=lambda *a, **k: None)
    with pytest.raises(ValueError, match="unsupported database"):
        TimelineStore(engine)  # type: ignore[arg-type]


async def test_batch_writer_commits_a_concurrent_batch_in_one_transaction(store: TimelineStore) -> None:
    from services.reputation.batch import BatchWriter

    commits: list[int] = []
    original = store.record

    def counting(rows: list[EventRow]) -> int:
        commits.append(len(rows))
        return original(rows)

    store.record = counting  # type: ignore[method-assign]
    writer = BatchWriter(store)
    await asyncio.gather(*(writer.write(row("outcome", key=f"r{i}")) for i in range(120)))
    assert commits == [120]
    assert count(store) == 120
    # A later batch is its own transaction.
    await asyncio.gather(*(writer.write(row("outcome", key=f"s{i}")) for i in range(3)))
    assert commits == [120, 3]


async def test_batch_writer_passes_a_failed_commit_to_every_writer(store: TimelineStore) -> None:
    from services.reputation.batch import BatchWriter

    store._engine.dispose()
    writer = BatchWriter(store)
    bad = row("outcome", key="x")
    bad["at_ms"] = None  # type: ignore[typeddict-item]  # NOT NULL: the commit fails
    results = await asyncio.gather(writer.write(bad), writer.write(row("accepted")), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)
    assert count(store) == 0
