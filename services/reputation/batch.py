"""Coalesce the timeline writes of one stage batch into one transaction."""

from __future__ import annotations

import asyncio

from baton.batching import Coalescer
from services.reputation.store import TimelineStore
from services.reputation.timeline import EventRow


class BatchWriter:
    def __init__(self, store: TimelineStore, max_rows: int = 500) -> None:
        self._store = store
        self._coalescer: Coalescer[EventRow, None] = Coalescer(self._flush, max_rows)

    async def write(self, row: EventRow) -> None:
        """Returns once ``row`` is committed; raises what the commit raised."""
        await self._coalescer.submit(row)

    async def _flush(self, rows: list[EventRow]) -> list[None]:
        await asyncio.to_thread(self._store.record, rows)
        return [None] * len(rows)
