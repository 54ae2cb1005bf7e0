"""Ingress's hand-off to Kafka: an Envelope is safe only once `accepted` acknowledged it (acks=all).

Anything short of that acknowledgement within ``kafka_ack_timeout_s`` — broker down, leader moving,
metadata unavailable — is a :class:`SubmitError`, which the SMTP server answers with 451.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from baton.bootstrap import Lifecycle
from baton.kafka.clients import make_producer
from baton.kafka.stage import MESSAGE_ID_HEADER
from baton.settings import Settings
from baton.tracing import HEADER as TRACEPARENT
from baton.tracing import TraceContext
from baton.v1 import envelope_pb2
from services.ingress.errors import SubmitError

log = logging.getLogger(__name__)


class KafkaSubmitter:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.topic_accepted
        self._timeout = settings.kafka_ack_timeout_s
        self._producer: AIOKafkaProducer | None = None

    def ready(self) -> bool:
        return self._producer is not None

    async def start(self, life: Lifecycle) -> None:
        """Connect, retrying until the broker answers; until then every submit is refused (451)."""
        delay = 0.5
        while not life.stopping.is_set():
            producer = make_producer(self._settings, "ingress")
            try:
                await producer.start()
            except KafkaError as exc:
                log.warning("kafka not reachable, retrying", extra={"error": str(exc)})
                with contextlib.suppress(Exception):
                    await producer.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(life.stopping.wait(), delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            return

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __call__(self, envelope: envelope_pb2.Envelope) -> None:
        if self._producer is None:
            raise SubmitError(envelope.message_id, "kafka not connected")
        headers = [
            (TRACEPARENT, TraceContext.new().header().encode()),
            (MESSAGE_ID_HEADER, envelope.message_id.encode()),
        ]
        value = envelope.SerializeToString()
        try:
            async with asyncio.timeout(self._timeout):
                ack = await self._producer.send(
                    self._topic, value, key=envelope.message_id.encode(), headers=headers
                )
                await ack
        except TimeoutError as exc:
            raise SubmitError(envelope.message_id, f"no acknowledgement within {self._timeout}s") from exc
        except KafkaError as exc:
            raise SubmitError(envelope.message_id, f"kafka refused: {exc}") from exc
