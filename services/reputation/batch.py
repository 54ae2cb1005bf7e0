"""Coalesce the timeline writes of one stage batch into one transaction.

The stage loop hands every record of a batch to the handler concurrently; each handler call adds
its row here and awaits the shared flush, so a batch of N records costs one transaction instead of
N (and on SQLite, no N writers queueing for one lock).
"""

from __future__ import annotations

import asyncio

from services.reputation.store import TimelineStore
from services.reputation.timeline import EventRow


class BatchWriter:
    def __init__(self, store: TimelineStore, max_rows: int = 500) -> None:
        self._store = store
        self._max_rows = max_rows
        self._rows: list[EventRow] = []
        self._done: asyncio.Future[None] | None = None

    async def write(self, row: EventRow) -> None:
        """Returns once ``row`` is committed; raises what the commit raised."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            # Runs after the other handlers of this batch had their turn to add rows.
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush()))
        done = self._done
        self._rows.append(row)
        if len(self._rows) >= self._max_rows:
            await self._flush()
        await asyncio.shield(done)

    async def _flush(self) -> None:
        rows, done = self._rows, self._done
        self._rows, self._done = [], None
        if done is None or done.done():
            return
        try:
            await asyncio.to_thread(self._store.record, rows)
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)
