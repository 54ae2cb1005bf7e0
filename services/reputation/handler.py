"""The reputation service's timeline consumer: every step of every message, from four topics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from baton.kafka.stage import InvalidRecord, Output, Record
from baton.settings import Settings
from services.reputation.store import TimelineStore
from services.reputation.timeline import InvalidTimelineRecord, Source, event_from_record


class TimelineHandler:
    def __init__(self, settings: Settings, store: TimelineStore) -> None:
        self._store = store
        self._sources = {
            settings.topic_accepted: Source.ACCEPTED,
            settings.topic_filtered: Source.FILTERED,
            settings.topic_routed: Source.ROUTED,
            settings.topic_result: Source.RESULT,
        }

    @property
    def topics(self) -> list[str]:
        return list(self._sources)

    async def __call__(self, record: Record) -> Sequence[Output]:
        try:
            row = event_from_record(self._sources[record.topic], record.value or b"", record.timestamp or 0)
        except InvalidTimelineRecord as exc:
            raise InvalidRecord(str(exc)) from exc
        # The store is synchronous SQLAlchemy; keep the event loop free for the consumer and the API.
        await asyncio.to_thread(self._store.record, [row])
        return ()
