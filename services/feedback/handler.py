"""Feedback's consumer of `result`.

Its real work (attributing asynchronous bounces and ARF complaints to the original sender) comes
with the feedback issue. For now it validates every Outcome and counts what it sees, so its lag,
DLQ and metrics are real from day one.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter

from baton.kafka.stage import InvalidRecord, Output, Record, decode
from baton.v1 import outcome_pb2


def decode_outcome(value: bytes | None) -> outcome_pb2.Outcome:
    outcome = decode(outcome_pb2.Outcome, value)
    if not outcome.message_id or outcome.status == outcome_pb2.OUTCOME_STATUS_UNSPECIFIED:
        raise InvalidRecord("Outcome without message_id or status")
    return outcome


class OutcomeCounter:
    """A handler that checks each Outcome and counts it by status in ``counter``."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter

    async def __call__(self, record: Record) -> Sequence[Output]:
        outcome = decode_outcome(record.value)
        self._counter.labels(
            outcome_pb2.OutcomeStatus.Name(outcome.status).removeprefix("OUTCOME_STATUS_").lower()
        ).inc()
        return ()
