"""The reputation service's timeline consumer: every step of every message, from four topics."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from baton.kafka.stage import InvalidRecord, Output, Record, RetriableError
from baton.settings import Settings
from services.reputation.batch import BatchWriter
from services.reputation.store import TimelineStore
from services.reputation.timeline import InvalidTimelineRecord, Source, event_from_record


class TimelineHandler:
    def __init__(self, settings: Settings, store: TimelineStore) -> None:
        self._writer = BatchWriter(store)
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
        try:
            await self._writer.write(row)
        except OperationalError as exc:
            # The database is down or locked: wait and try again; never dead-letter good records.
            raise RetriableError(f"timeline store unavailable: {exc}") from exc
        return ()
