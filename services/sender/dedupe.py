"""The sender's dedupe log over ``SentRecord``: which recipients of a message already had a final answer.

This is the durability contract of the sender: a Delivery replayed after a crash must deliver nothing
twice. The store is synchronous SQLAlchemy, so every call runs in a worker thread to keep the event
loop (and every SMTP session on it) moving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from baton.store import SentRecord
from baton.v1 import outcome_pb2


class DedupeLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def lookup(self, message_id: str, recipients: Sequence[str]) -> dict[str, outcome_pb2.Outcome]:
        """The stored Outcome for each of ``recipients`` that already has a SentRecord."""
        if not recipients:
            return {}
        return await asyncio.to_thread(self._lookup, message_id, list(recipients))

    async def record(self, outcomes: Iterable[outcome_pb2.Outcome]) -> None:
        """Write one SentRecord per outcome in one transaction; rows that already exist are kept as
        they are (a concurrent or replayed insert recorded the same final answer first)."""
        rows = [(o.message_id, o.recipient, o.SerializeToString()) for o in outcomes]
        if rows:
            await asyncio.to_thread(self._record, rows)

    def _lookup(self, message_id: str, recipients: list[str]) -> dict[str, outcome_pb2.Outcome]:
        with Session(self._engine) as session:
            stmt = select(SentRecord.recipient, SentRecord.outcome).where(
                SentRecord.message_id == message_id, SentRecord.recipient.in_(recipients)
            )
            found: dict[str, outcome_pb2.Outcome] = {}
            for recipient, blob in session.execute(stmt):
                found[recipient] = outcome_pb2.Outcome.FromString(blob)
            return found

    def _record(self, rows: list[tuple[str, str, bytes]]) -> None:
        try:
            with Session(self._engine) as session, session.begin():
                session.add_all(SentRecord(message_id=m, recipient=r, outcome=o) for m, r, o in rows)
        except IntegrityError:
            # Some row exists already. Insert the rest one by one, each on its own, skipping the
            # duplicates; savepoints would keep one transaction but pysqlite handles them badly.
            for message_id, recipient, outcome in rows:
                if self._exists(message_id, recipient):
                    continue
                try:
                    with Session(self._engine) as session, session.begin():
                        session.add(SentRecord(message_id=message_id, recipient=recipient, outcome=outcome))
                except IntegrityError:
                    continue

    def _exists(self, message_id: str, recipient: str) -> bool:
        with Session(self._engine) as session:
            stmt = select(SentRecord.message_id).where(
                SentRecord.message_id == message_id, SentRecord.recipient == recipient
            )
            return session.execute(stmt).first() is not None
