"""The timeline store: message events in the relational store (``baton.store.MessageEvent``).

Synchronous SQLAlchemy; the consumer calls it through ``asyncio.to_thread`` and the API from
FastAPI's thread pool. The schema comes from the Alembic migrations (``baton.db.upgrade``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from baton.store import MessageEvent
from services.reputation.metrics import EVENTS_DUPLICATE, EVENTS_RECORDED
from services.reputation.timeline import EventRow


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One step of a message's timeline as read back."""

    id: int
    message_id: str
    kind: str
    key: str
    sender_identity: str
    at_ms: int
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SenderMessage:
    """A message of one sender, with the time of its latest recorded step."""

    message_id: str
    last_at_ms: int


class TimelineStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        if dialect == "postgresql":
            self._insert: Any = postgresql.insert
        elif dialect == "sqlite":
            self._insert = sqlite.insert
        else:
            # Idempotence rests on ON CONFLICT DO NOTHING; other databases would need their own form.
            raise ValueError(f"unsupported database for the timeline store: {dialect}")

    def _insert_ignoring_duplicates(self) -> Insert:
        # RETURNING tells a new row from a skipped one on both dialects (rowcount is -1 on
        # PostgreSQL once SQLAlchemy adds its own RETURNING for the primary key).
        stmt: Insert = (
            self._insert(MessageEvent)
            .on_conflict_do_nothing(index_elements=["message_id", "kind", "key"])
            .returning(MessageEvent.kind)
        )
        return stmt

    def record(self, rows: Iterable[EventRow]) -> int:
        """Store ``rows`` in one transaction; returns how many were new.

        A row whose step (message_id, kind, key) is already stored is skipped, so replaying a
        record after a crash neither duplicates nor fails.
        """
        batch = [dict(row) for row in rows]
        if not batch:
            return 0
        # One statement for the batch (SQLAlchemy's "insertmanyvalues"); RETURNING yields the rows
        # that were new, so the skipped ones are the difference, counted per kind.
        with self._engine.begin() as conn:
            inserted = Counter(kind for (kind,) in conn.execute(self._insert_ignoring_duplicates(), batch))
        offered = Counter(str(row["kind"]) for row in batch)
        # Counted after the commit so a rolled-back batch is not counted.
        for kind, count in offered.items():
            EVENTS_RECORDED.labels(kind).inc(inserted[kind])
            EVENTS_DUPLICATE.labels(kind).inc(count - inserted[kind])
        return sum(inserted.values())

    def timeline(self, message_id: str) -> list[StoredEvent]:
        """The message's steps, oldest first (ties in time keep the order they were stored)."""
        query = (
            select(MessageEvent)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.at_ms, MessageEvent.id)
        )
        with self._engine.connect() as conn:
            return [
                StoredEvent(
                    id=r.id,
                    message_id=r.message_id,
                    kind=r.kind,
                    key=r.key,
                    sender_identity=r.sender_identity,
                    at_ms=r.at_ms,
                    detail=json.loads(r.detail),
                )
                for r in conn.execute(query)
            ]

    def sender_messages(self, sender_identity: str, limit: int = 50) -> list[SenderMessage]:
        """The sender's most recently active messages, newest first."""
        last = func.max(MessageEvent.at_ms).label("last_at_ms")
        query = (
            select(MessageEvent.message_id, last)
            .where(MessageEvent.sender_identity == sender_identity)
            .group_by(MessageEvent.message_id)
            .order_by(last.desc(), MessageEvent.message_id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query)
            return [SenderMessage(message_id=r.message_id, last_at_ms=r.last_at_ms) for r in rows]
