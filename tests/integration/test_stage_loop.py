"""The shared stage loop against a real broker: flow, DLQ, ratio limit, replay, trace context."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import pytest

from baton.bootstrap import Lifecycle
from baton.dev.broker import Broker
from baton.kafka.stage import DlqLimitExceeded, Output, Record, RetriableError, Stage, header
from baton.kafka.topics import dlq_topic, ensure_topics
from baton.tracing import TraceContext
from tests.fixtures.kafka import produce, read_topic, unique_settings


def _stage_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


class Echo:
    """Copies each record to the output topic; fails as told."""

    def __init__(
        self, out: str, bad: set[bytes] = frozenset(), flaky: dict[bytes, int] | None = None
    ) -> None:
        self.out = out
        self.bad = bad
        self.flaky = flaky or {}
        self.calls = 0

    async def __call__(self, record: Record) -> Sequence[Output]:
        self.calls += 1
        if record.value in self.bad:
            raise ValueError("cannot handle this one")
        if self.flaky.get(record.value, 0) > 0:
            self.flaky[record.value] -= 1
            raise RetriableError("not yet")
        return [Output(self.out, record.value, key=record.key)]


async def _wait_assigned(stage: Stage, timeout_s: float = 60) -> None:
    """Until the group gave ``stage`` partitions (a new member waits out the old one's session)."""
    for _ in range(int(timeout_s * 10)):
        if stage.assignment():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("stage never got partitions")


async def _ensure(settings, *extra_dlq: str) -> None:
    await ensure_topics(settings)
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(dlq_topic(s), 2, 1) for s in extra_dlq])
    finally:
        await admin.close()


async def test_records_flow_and_offsets_are_committed(kafka: Broker) -> None:
    settings = unique_settings(kafka.bootstrap)
    name = _stage_name()
    await _ensure(settings, name)
    values = [f"m{i}".encode() for i in range(60)]
    await produce(kafka.bootstrap, settings.topic_accepted, [(v, v) for v in values])

    life = Lifecycle()
    stage = Stage(name, settings, [settings.topic_accepted], Echo(settings.topic_filtered))
    task = asyncio.create_task(stage.run(life))
    out = await read_topic(kafka.bootstrap, settings.topic_filtered, len(values))
    life.stop()
    await task

    assert sorted(r.value for r in out) == sorted(values)
    # A second replica of the same group finds nothing left to do: every offset was committed.
    life2 = Lifecycle()
    echo2 = Echo(settings.topic_filtered)
    stage2 = Stage(name, settings, [settings.topic_accepted], echo2)
    task2 = asyncio.create_task(stage2.run(life2))
    await _wait_assigned(stage2)
    await asyncio.sleep(2)
    life2.stop()
    await task2
    assert echo2.calls == 0


async def test_bad_record_goes_to_dlq_and_partition_moves_on(kafka: Broker) -> None:
    settings = unique_settings(kafka.bootstrap)
    name = _stage_name()
    await _ensure(settings, name)
    values = [f"ok{i}".encode() for i in range(30)] + [b"poison"]
    await produce(kafka.bootstrap, settings.topic_accepted, [(b"k", v) for v in values])

    life = Lifecycle()
    stage = Stage(name, settings, [settings.topic_accepted], Echo(settings.topic_filtered, bad={b"poison"}))
    task = asyncio.create_task(stage.run(life))
    out = await read_topic(kafka.bootstrap, settings.topic_filtered, 30)
    dead = await read_topic(kafka.bootstrap, dlq_topic(name), 1)
    life.stop()
    await task

    assert len(out) == 30
    assert [r.value for r in dead] == [b"poison"]
    error = header(dead[0], "baton-dlq-error")
    assert error is not None
    assert b"cannot handle this one" in error
    assert header(dead[0], "baton-dlq-source") is not None


async def test_dlq_ratio_limit_stops_the_stage(kafka: Broker) -> None:
    settings = unique_settings(kafka.bootstrap, dlq_min_records=10, dlq_max_ratio=0.5, max_in_flight=10)
    name = _stage_name()
    await _ensure(settings, name)
    await produce(kafka.bootstrap, settings.topic_accepted, [(b"k", b"bad") for _ in range(40)])

    life = Lifecycle()
    stage = Stage(name, settings, [settings.topic_accepted], Echo(settings.topic_filtered, bad={b"bad"}))
    with pytest.raises(DlqLimitExceeded):
        await asyncio.wait_for(stage.run(life), 60)


async def test_stop_while_retrying_commits_nothing_and_replays(kafka: Broker) -> None:
    settings = unique_settings(kafka.bootstrap, max_in_flight=5)
    name = _stage_name()
    await _ensure(settings, name)
    await produce(kafka.bootstrap, settings.topic_accepted, [(b"k", b"stuck")])

    life = Lifecycle()
    flaky = Echo(settings.topic_filtered, flaky={b"stuck": 10_000})
    task = asyncio.create_task(Stage(name, settings, [settings.topic_accepted], flaky).run(life))
    for _ in range(200):
        if flaky.calls >= 2:
            break
        await asyncio.sleep(0.1)
    life.stop()
    await task
    assert flaky.calls >= 2

    # The next replica of the group gets the record again and handles it.
    life2 = Lifecycle()
    task2 = asyncio.create_task(
        Stage(name, settings, [settings.topic_accepted], Echo(settings.topic_filtered)).run(life2)
    )
    out = await read_topic(kafka.bootstrap, settings.topic_filtered, 1, timeout_s=60)
    life2.stop()
    await task2
    assert [r.value for r in out] == [b"stuck"]


async def test_trace_context_and_message_id_travel(kafka: Broker) -> None:
    settings = unique_settings(kafka.bootstrap)
    name = _stage_name()
    await _ensure(settings, name)
    parent = TraceContext.new()
    await produce(
        kafka.bootstrap,
        settings.topic_accepted,
        [(b"k", b"v")],
        headers=[("traceparent", parent.header().encode()), ("baton-message-id", b"MSG1")],
    )
    life = Lifecycle()
    task = asyncio.create_task(
        Stage(name, settings, [settings.topic_accepted], Echo(settings.topic_filtered)).run(life)
    )
    out = await read_topic(kafka.bootstrap, settings.topic_filtered, 1)
    life.stop()
    await task

    child = TraceContext.parse(header(out[0], "traceparent"))
    assert child is not None
    assert child.trace_id == parent.trace_id
    assert child.span_id != parent.span_id
    assert header(out[0], "baton-message-id") == b"MSG1"


async def test_records_wait_for_their_not_before_time(kafka: Broker) -> None:
    settings = unique_settings(kafka.bootstrap, topic_partitions=1)
    name = _stage_name()
    await _ensure(settings, name)
    due_ms = int((time.time() + 4) * 1000)
    await produce(
        kafka.bootstrap,
        settings.topic_accepted,
        [(b"k", b"late1"), (b"k", b"late2")],
        headers=[("baton-not-before", str(due_ms).encode())],
    )
    life = Lifecycle()
    echo = Echo(settings.topic_filtered)
    stage = Stage(name, settings, [settings.topic_accepted], echo)
    task = asyncio.create_task(stage.run(life))
    await _wait_assigned(stage)
    early = await read_topic(kafka.bootstrap, settings.topic_filtered, 1, timeout_s=1)
    out = await read_topic(kafka.bootstrap, settings.topic_filtered, 2, timeout_s=30)
    handled_at = time.time()
    life.stop()
    await task

    assert early == [] or time.time() * 1000 >= due_ms
    assert sorted(r.value for r in out) == [b"late1", b"late2"]
    assert handled_at * 1000 >= due_ms
    assert echo.calls == 2  # held back without being handled, then handled once each
