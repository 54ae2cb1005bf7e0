"""The filter stage: Envelope on `accepted` → Envelope + Verdict on `filtered`."""

from __future__ import annotations

import time
from collections.abc import Sequence

from baton.kafka.stage import InvalidRecord, Output, Record, decode
from baton.settings import Settings
from baton.v1 import envelope_pb2, verdict_pb2
from services.filter.inspect import inspect_message


def decode_envelope(value: bytes | None) -> envelope_pb2.Envelope:
    """The Envelope in a record, or InvalidRecord when it is not a usable one."""
    if not value:
        raise InvalidRecord("empty record")
    envelope = decode(envelope_pb2.Envelope, value)
    if not envelope.message_id:
        raise InvalidRecord("Envelope without message_id")
    if not envelope.rcpt_to:
        raise InvalidRecord("Envelope without recipients")
    if not envelope.body:
        # body_ref (a body kept outside Kafka) is reserved; no stage can fetch one yet.
        raise InvalidRecord("Envelope without an inline body")
    return envelope


class FilterHandler:
    def __init__(self, settings: Settings) -> None:
        self._topic = settings.topic_filtered

    async def __call__(self, record: Record) -> Sequence[Output]:
        envelope = decode_envelope(record.value)
        inspection = inspect_message(envelope.body)
        verdict = verdict_pb2.Verdict(
            action=verdict_pb2.ACTION_ACCEPT,
            score=sum(r.score for r in inspection.reasons),
            reasons=inspection.reasons,
            decided_at_ms=int(time.time() * 1000),
        )
        value = verdict_pb2.FilteredMessage(envelope=envelope, verdict=verdict).SerializeToString()
        return [Output(self._topic, value, key=envelope.message_id.encode())]
