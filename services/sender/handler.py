"""The sender stage: Delivery on `routed` → one Outcome per recipient on `result`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from baton.kafka.stage import InvalidRecord, Output, Record, RetriableError, decode
from baton.settings import Settings
from baton.v1 import delivery_pb2
from services.sender.deliver import Deliverer


class SenderHandler:
    def __init__(self, settings: Settings, deliverer: Deliverer) -> None:
        self._result = settings.topic_result
        self._deliverer = deliverer

    async def __call__(self, record: Record) -> Sequence[Output]:
        delivery = decode(delivery_pb2.Delivery, record.value)
        if not delivery.message_id or not delivery.recipients or not delivery.route.hosts:
            raise InvalidRecord("Delivery without message id, recipients or route")
        try:
            outcomes = await self._deliverer.deliver(delivery)
        except OperationalError as exc:
            # The dedupe store is down: wait and replay; never dead-letter a good delivery for it.
            raise RetriableError(f"dedupe store unavailable: {exc}") from exc
        return [Output(self._result, o.SerializeToString(), key=o.sender_identity.encode()) for o in outcomes]
