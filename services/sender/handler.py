"""The sender stage: Delivery on `routed` (or a retry topic) → one Outcome per recipient on `result`,
and the deferred recipients' next attempt on the retry topic of its delay."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import OperationalError

from baton.kafka.stage import InvalidRecord, Output, Record, RetriableError, decode
from baton.settings import Settings
from baton.v1 import delivery_pb2
from services.sender.deliver import Deliverer
from services.sender.retry import plan_retry


class SenderHandler:
    def __init__(
        self,
        settings: Settings,
        deliverer: Deliverer,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._settings = settings
        self._result = settings.topic_result
        self._deliverer = deliverer
        self._now_ms = now_ms

    @property
    def topics(self) -> list[str]:
        # One consumer for all: a partition of a retry topic that is not due is paused on its own,
        # so it never holds back fresh mail on `routed`.
        return [self._settings.topic_routed, *self._settings.retry_topics()]

    async def __call__(self, record: Record) -> Sequence[Output]:
        delivery = decode(delivery_pb2.Delivery, record.value)
        if not delivery.message_id or not delivery.recipients or not delivery.route.hosts:
            raise InvalidRecord("Delivery without message id, recipients or route")
        try:
            outcomes = await self._deliverer.deliver(delivery)
            plan = plan_retry(delivery, outcomes, self._settings, self._now_ms())
            if plan.expired:
                await self._deliverer.record_final(plan.expired)
        except OperationalError as exc:
            # The dedupe store is down: wait and replay; never dead-letter a good delivery for it.
            raise RetriableError(f"dedupe store unavailable: {exc}") from exc
        outputs = [
            Output(self._result, o.SerializeToString(), key=o.sender_identity.encode()) for o in plan.outcomes
        ]
        if plan.retry is not None:
            outputs.append(plan.retry)
        return outputs
