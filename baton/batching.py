"""Coalesce calls made in one event-loop turn into one batched call.

The stage loop hands all records of a batch to the handler concurrently; a handler that writes to
or reads from the database through a :class:`Coalescer` costs one round trip per batch instead of
one per record. This was the sender's and the reputation service's main cost in the bench profile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """``await submit(item)`` returns ``flush([...items...])[i]`` for its own item.

    ``flush`` receives every item submitted before it runs (at most ``max_items`` at once) and
    returns one result per item, in order. If it raises, every caller of that batch gets the error.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R]]], max_items: int = 500) -> None:
        self._flush_fn = flush
        self._max_items = max_items
        self._items: list[tuple[T, asyncio.Future[R]]] = []
        self._scheduled = False

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._items.append((item, future))
        if len(self._items) >= self._max_items:
            await self._flush()
        elif not self._scheduled:
            self._scheduled = True
            # Runs after the other handlers of this batch had their turn to submit.
            loop.call_soon(lambda: asyncio.ensure_future(self._flush()))
        return await future

    async def _flush(self) -> None:
        self._scheduled = False
        items, self._items = self._items, []
        if not items:
            return
        try:
            results = await self._flush_fn([item for item, _ in items])
        except Exception as exc:
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(items, results, strict=True):
            if not future.done():  # the caller may have been cancelled meanwhile
                future.set_result(result)
