"""The sender's dedupe log over ``SentRecord``: which recipients of a message already had a final answer.

This is the durability contract of the sender: a Delivery replayed after a crash must deliver nothing
twice. Lookups and writes of the deliveries handled concurrently are coalesced (one query and one
transaction per stage batch), and run in a worker thread to keep the event loop and every SMTP
session on it moving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, Insert, select
from sqlalchemy.dialects import postgresql, sqlite

from baton.batching import Coalescer
from baton.store import SentRecord
from baton.v1 import outcome_pb2

_Lookup = tuple[str, tuple[str, ...]]
_Row = dict[str, object]


class DedupeLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        if dialect == "postgresql":
            self._insert: Insert = postgresql.insert(SentRecord).on_conflict_do_nothing()
        elif dialect == "sqlite":
            self._insert = sqlite.insert(SentRecord).on_conflict_do_nothing()
        else:
            raise ValueError(f"unsupported database for the dedupe log: {dialect}")
        self._lookups: Coalescer[_Lookup, dict[str, outcome_pb2.Outcome]] = Coalescer(self._lookup_many)
        self._records: Coalescer[list[_Row], None] = Coalescer(self._record_many)

    async def lookup(self, message_id: str, recipients: Sequence[str]) -> dict[str, outcome_pb2.Outcome]:
        """The stored Outcome for each of ``recipients`` that already has a SentRecord."""
        if not recipients:
            return {}
        return await self._lookups.submit((message_id, tuple(recipients)))

    async def record(self, outcomes: Iterable[outcome_pb2.Outcome]) -> None:
        """Write one SentRecord per outcome; a row that exists already is kept as it is (a concurrent
        or replayed insert recorded the same final answer first)."""
        rows: list[_Row] = [
            {"message_id": o.message_id, "recipient": o.recipient, "outcome": o.SerializeToString()}
            for o in outcomes
        ]
        if rows:
            await self._records.submit(rows)

    async def _lookup_many(self, asks: list[_Lookup]) -> list[dict[str, outcome_pb2.Outcome]]:
        found = await asyncio.to_thread(self._select, sorted({m for m, _ in asks}))
        return [
            {r: outcome_pb2.Outcome.FromString(found[(m, r)]) for r in recipients if (m, r) in found}
            for m, recipients in asks
        ]

    def _select(self, message_ids: list[str]) -> dict[tuple[str, str], bytes]:
        stmt = select(SentRecord.message_id, SentRecord.recipient, SentRecord.outcome).where(
            SentRecord.message_id.in_(message_ids)
        )
        with self._engine.connect() as conn:
            return {(m, r): bytes(o) for m, r, o in conn.execute(stmt)}

    async def _record_many(self, batches: list[list[_Row]]) -> list[None]:
        rows = [row for batch in batches for row in batch]
        await asyncio.to_thread(self._insert_rows, rows)
        return [None] * len(batches)

    def _insert_rows(self, rows: list[_Row]) -> None:
        with self._engine.begin() as conn:
            conn.execute(self._insert, rows)
