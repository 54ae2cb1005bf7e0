"""The one consume → handle → produce → await acks → commit loop every stage runs.

A service supplies a handler ``async (record) -> Sequence[Output]``; this module owns the rest:

* **At least once.** A batch's offsets are committed only after every output of every record in it
  is acknowledged (acks=all). A crash replays the uncommitted batch; downstream stages tolerate the
  replay (the sender keeps a dedupe record, the timeline store ignores duplicates).
* **Bad record is not slow down.** :class:`InvalidRecord` (or any unexpected exception) sends the
  record to the stage's dead-letter topic with the error in its headers, and the partition moves on.
  :class:`RetriableError` retries the same record with backoff. A DLQ share above the configured
  ratio stops the stage (:class:`DlqLimitExceeded`) instead of emptying its input into the DLQ.
* **Bounded work.** At most ``max_in_flight`` records are taken per batch and handled concurrently.
* **Rebalance.** Revocation waits until the batch in hand is committed, so a partition is never
  handed over with work done but not committed.
* **Kafka failures.** If producing or committing fails, the consumer seeks back to the batch's first
  offsets and the batch is replayed after a backoff.
* **Tracing.** Each record's ``traceparent`` header is continued in its outputs, and the message id
  header travels along so logs and the DLQ can name the message.
* **Delayed topics.** A record with a ``baton-not-before`` header (Unix ms) is not handled before
  that time: its partition is paused and rewound to it, and resumed when it is due. Records of one
  delayed topic share one delay, so a partition is in due order and nothing behind the first
  not-yet-due record is due either. Consumers stay in their group meanwhile (no handler sleeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from baton import metrics
from baton.bootstrap import Lifecycle
from baton.kafka.clients import make_consumer, make_producer
from baton.kafka.topics import dlq_topic
from baton.logs import message_id_var, trace_id_var
from baton.settings import Settings
from baton.tracing import HEADER as TRACEPARENT
from baton.tracing import TraceContext

log = logging.getLogger(__name__)

MESSAGE_ID_HEADER = "baton-message-id"
NOT_BEFORE_HEADER = "baton-not-before"


@dataclass(frozen=True, slots=True)
class Output:
    """One record a handler wants produced."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class StageError(Exception):
    """Base of the stage loop's exceptions."""


class InvalidRecord(StageError):
    """The record cannot be processed, now or ever: it goes to the dead-letter topic."""


class RetriableError(StageError):
    """A transient failure (a DNS timeout, a database restart): try the same record again."""

    retriable = True


class DlqLimitExceeded(StageError):
    """Too many recent records went to the DLQ: the stage is broken, not its input."""


Record = Any  # aiokafka.structs.ConsumerRecord, untyped upstream
M = TypeVar("M", bound=ProtoMessage)


def decode(message_type: type[M], value: bytes | None) -> M:
    """``value`` parsed as ``message_type``; InvalidRecord (so: the DLQ) when it is not one."""
    message = message_type()
    try:
        message.ParseFromString(value or b"")
    except DecodeError as exc:
        raise InvalidRecord(f"undecodable {message_type.__name__}: {exc}") from exc
    return message


Handler = Callable[[Record], Awaitable[Sequence[Output]]]


def _as_ms(value: bytes) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0  # a malformed delay never holds a partition back


def header(record: Record, name: str) -> bytes | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value)
    return None


@dataclass
class _DlqWindow:
    size: int
    limit: float
    min_records: int
    recent: deque[bool] = field(default_factory=deque)

    def add(self, to_dlq: bool) -> float:
        self.recent.append(to_dlq)
        if len(self.recent) > self.size:
            self.recent.popleft()
        return sum(self.recent) / len(self.recent)

    def exceeded(self) -> bool:
        return len(self.recent) >= self.min_records and sum(self.recent) / len(self.recent) > self.limit


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: Stage) -> None:
        self._stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The batch loop holds the lock from fetch to commit; taking it here makes the hand-over
        # wait for that commit.
        async with self._stage.lock:
            for tp in revoked:
                self._stage.forget(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        names = ",".join(f"{t.topic}/{t.partition}" for t in assigned)
        log.info("partitions assigned", extra={"partitions": names})
        metrics.STAGE_ASSIGNED.labels(self._stage.name).set(len(assigned))
        metrics.STAGE_REBALANCES.labels(self._stage.name).inc()


class Stage:
    def __init__(
        self,
        name: str,
        settings: Settings,
        topics: Sequence[str],
        handler: Handler,
        *,
        producer: AIOKafkaProducer | None = None,
        group_id: str | None = None,
        retry_backoff_max_s: float = 30.0,
    ) -> None:
        self.name = name
        self._settings = settings
        self._topics = list(topics)
        self._handler = handler
        self._own_producer = producer is None
        self._producer = producer or make_producer(settings, name)
        self._group_id = group_id or f"baton-{name}"
        self._consumer: AIOKafkaConsumer = make_consumer(settings, self._group_id, name)
        self._dlq_topic = dlq_topic(name)
        self._window = _DlqWindow(settings.dlq_window, settings.dlq_max_ratio, settings.dlq_min_records)
        self._retry_backoff_max_s = retry_backoff_max_s
        self._committed: dict[TopicPartition, int] = {}
        # Partitions paused until their next record is due (Unix seconds).
        self._paused: dict[TopicPartition, float] = {}
        self._started = False
        self.lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def ready(self) -> bool:
        return self._started

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def forget(self, tp: TopicPartition) -> None:
        self._committed.pop(tp, None)
        self._paused.pop(tp, None)
        with contextlib.suppress(KeyError):
            metrics.STAGE_LAG.remove(self.name, tp.topic, str(tp.partition))

    async def run(self, life: Lifecycle) -> None:
        """Consume until ``life.stopping``; then commit what is done and close the clients."""
        await self._start_with_retry(life)
        if life.stopping.is_set():
            await self._close()
            return
        self._started = True
        lag_task = asyncio.create_task(self._report_lag(life))
        try:
            while not life.stopping.is_set():
                self._resume_due()
                batch = self._hold_back_not_due(await self._fetch(life))
                if not batch:
                    continue
                async with self.lock:
                    await self._process(batch, life)
        finally:
            lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag_task
            self._started = False
            await self._close()

    async def _start_with_retry(self, life: Lifecycle) -> None:
        delay = 0.5
        while not life.stopping.is_set():
            try:
                if self._own_producer:
                    await self._producer.start()
                self._consumer.subscribe(self._topics, listener=_Rebalance(self))
                await self._consumer.start()
                log.info("stage consuming", extra={"stage": self.name, "topics": ",".join(self._topics)})
                return
            except KafkaError as exc:
                log.warning("kafka not reachable, retrying", extra={"stage": self.name, "error": str(exc)})
                await self._close()
                if self._own_producer:
                    self._producer = make_producer(self._settings, self.name)
                self._consumer = make_consumer(self._settings, self._group_id, self.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(life.stopping.wait(), delay)
                delay = min(delay * 2, 10.0)

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self._consumer.stop()
        if self._own_producer:
            with contextlib.suppress(Exception):
                await self._producer.stop()

    async def _fetch(self, life: Lifecycle) -> dict[TopicPartition, list[Record]]:
        try:
            result: dict[TopicPartition, list[Record]] = await self._consumer.getmany(
                timeout_ms=500, max_records=self._settings.max_in_flight
            )
            return result
        except KafkaError as exc:
            log.warning("fetch failed", extra={"stage": self.name, "error": str(exc)})
            metrics.STAGE_KAFKA_ERRORS.labels(self.name).inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(life.stopping.wait(), 1.0)
            return {}

    # -- delayed topics --------------------------------------------------------------------
    def _resume_due(self) -> None:
        now = time.time()
        for tp, due in list(self._paused.items()):
            if due <= now:
                del self._paused[tp]
                if tp in self._consumer.assignment():
                    self._consumer.resume(tp)

    def _hold_back_not_due(
        self, batch: dict[TopicPartition, list[Record]]
    ) -> dict[TopicPartition, list[Record]]:
        """The records that are due; each partition whose next record is not is rewound and paused."""
        now_ms = time.time() * 1000
        ready: dict[TopicPartition, list[Record]] = {}
        for tp, records in batch.items():
            for index, record in enumerate(records):
                not_before = header(record, NOT_BEFORE_HEADER)
                if not_before is not None and _as_ms(not_before) > now_ms:
                    self._consumer.seek(tp, record.offset)
                    self._consumer.pause(tp)
                    self._paused[tp] = _as_ms(not_before) / 1000
                    records = records[:index]
                    break
            if records:
                ready[tp] = records
        return ready

    # -- one batch -------------------------------------------------------------------------
    async def _process(self, batch: dict[TopicPartition, list[Record]], life: Lifecycle) -> None:
        started = time.perf_counter()
        records = [r for recs in batch.values() for r in recs]
        in_flight = metrics.STAGE_IN_FLIGHT.labels(self.name)
        in_flight.inc(len(records))
        try:
            results = await asyncio.gather(*(self._handle(r, life) for r in records))
            if life.stopping.is_set() and any(r is None for r in results):
                # Stopped while a record was still retrying: commit nothing; it will be replayed.
                self._rewind(batch)
                return
            outputs = [o for r in results if r is not None for o in r]
            try:
                await self._produce(outputs)
                offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items()}
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                metrics.STAGE_KAFKA_ERRORS.labels(self.name).inc()
                log.warning(
                    "produce or commit failed, replaying batch", extra={"stage": self.name, "error": str(exc)}
                )
                self._rewind(batch)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(life.stopping.wait(), 1.0)
                return
            self._committed.update(offsets)
            for record in records:
                metrics.STAGE_RECORDS.labels(self.name, record.topic, "ok").inc()
            for output in outputs:
                metrics.STAGE_PRODUCED.labels(self.name, output.topic).inc()
            if self._window.exceeded():
                raise DlqLimitExceeded(
                    f"{self.name}: more than {self._window.limit:.0%} of the last "
                    f"{len(self._window.recent)} records went to {self._dlq_topic}"
                )
        finally:
            in_flight.dec(len(records))
            metrics.STAGE_BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    def _rewind(self, batch: dict[TopicPartition, list[Record]]) -> None:
        for tp, recs in batch.items():
            with contextlib.suppress(KafkaError, AssertionError, ValueError):
                self._consumer.seek(tp, recs[0].offset)

    async def _produce(self, outputs: list[Output]) -> None:
        futures = [
            await self._producer.send(o.topic, o.value, key=o.key, headers=list(o.headers)) for o in outputs
        ]
        if futures:
            await asyncio.gather(*futures)

    async def _handle(self, record: Record, life: Lifecycle) -> list[Output] | None:
        """Outputs for one record (its DLQ record if it is bad), or None if stopped mid-retry."""
        parent = TraceContext.parse(header(record, TRACEPARENT))
        span = parent.child() if parent else TraceContext.new()
        message_id = (header(record, MESSAGE_ID_HEADER) or b"").decode("utf-8", "replace")
        trace_token = trace_id_var.set(span.trace_id)
        message_token = message_id_var.set(message_id)
        try:
            delay = 0.2
            while True:
                began = time.perf_counter()
                try:
                    produced = await self._handler(record)
                except RetriableError as exc:
                    metrics.STAGE_RETRIES.labels(self.name).inc()
                    log.warning("retriable failure, retrying", extra={"stage": self.name, "error": str(exc)})
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(life.stopping.wait(), delay)
                    if life.stopping.is_set():
                        return None
                    delay = min(delay * 2, self._retry_backoff_max_s)
                    continue
                except Exception as exc:  # any other failure is this record's, not the stage's
                    ratio = self._window.add(True)
                    metrics.STAGE_DLQ_RATIO.labels(self.name).set(ratio)
                    metrics.STAGE_RECORDS.labels(self.name, record.topic, "dlq").inc()
                    log.error(
                        "record sent to dead-letter topic",
                        extra={
                            "stage": self.name,
                            "error": f"{type(exc).__name__}: {exc}",
                            "topic": record.topic,
                            "partition": record.partition,
                            "offset": record.offset,
                        },
                    )
                    return [self._dead_letter(record, exc)]
                finally:
                    metrics.STAGE_HANDLE_SECONDS.labels(self.name).observe(time.perf_counter() - began)
                self._window.add(False)
                return [self._continue_trace(o, span, message_id) for o in produced]
        finally:
            trace_id_var.reset(trace_token)
            message_id_var.reset(message_token)

    def _continue_trace(self, output: Output, span: TraceContext, message_id: str) -> Output:
        names = {k for k, _ in output.headers}
        extra: list[tuple[str, bytes]] = []
        if TRACEPARENT not in names:
            extra.append((TRACEPARENT, span.header().encode()))
        if MESSAGE_ID_HEADER not in names and message_id:
            extra.append((MESSAGE_ID_HEADER, message_id.encode()))
        if not extra:
            return output
        return Output(output.topic, output.value, output.key, (*output.headers, *extra))

    def _dead_letter(self, record: Record, exc: BaseException) -> Output:
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
        headers = [
            *[(k, bytes(v)) for k, v in (record.headers or ())],
            ("baton-dlq-stage", self.name.encode()),
            ("baton-dlq-source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("baton-dlq-error", error.encode("utf-8", "replace")),
        ]
        return Output(self._dlq_topic, record.value or b"", record.key, tuple(headers))

    async def _report_lag(self, life: Lifecycle) -> None:
        while not life.stopping.is_set():
            for tp in list(self._consumer.assignment()):
                highwater = self._consumer.highwater(tp)
                committed = self._committed.get(tp)
                if highwater is None:
                    continue
                if committed is None:
                    # Nothing committed by this replica yet: start from what the group committed.
                    with contextlib.suppress(KafkaError):
                        committed = await self._consumer.committed(tp)
                        if committed is not None:
                            self._committed.setdefault(tp, committed)
                metrics.STAGE_LAG.labels(self.name, tp.topic, str(tp.partition)).set(
                    max(0, highwater - (committed or 0))
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(life.stopping.wait(), 5.0)
