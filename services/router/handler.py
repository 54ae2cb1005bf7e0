"""The router stage: FilteredMessage on `filtered` → one Delivery per domain on `routed`, and the
Outcomes of recipients that can never be delivered on `result`."""

from __future__ import annotations

from collections.abc import Sequence

from baton.kafka.stage import Output, Record, decode
from baton.settings import Settings
from baton.v1 import verdict_pb2
from services.router.planner import Planner


class RouterHandler:
    def __init__(self, settings: Settings, planner: Planner) -> None:
        self._routed = settings.topic_routed
        self._result = settings.topic_result
        self._planner = planner

    async def __call__(self, record: Record) -> Sequence[Output]:
        plan = await self._planner.plan(decode(verdict_pb2.FilteredMessage, record.value))
        outputs = [
            Output(self._routed, d.SerializeToString(), key=d.domain.encode()) for d in plan.deliveries
        ]
        outputs += [
            Output(self._result, o.SerializeToString(), key=o.sender_identity.encode()) for o in plan.bounces
        ]
        return outputs
