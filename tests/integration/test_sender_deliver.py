"""The sender's delivery logic against real SMTP sinks on loopback, with a SQLite dedupe log."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from baton.store import SentRecord
from baton.v1 import delivery_pb2, outcome_pb2
from services.sender.dedupe import DedupeLog
from services.sender.deliver import Deliverer
from tests.fixtures.sender import make_pool
from tests.fixtures.sink import STANDARD_RCPT_REPLIES, RecordingSink

DELIVERED = outcome_pb2.OUTCOME_STATUS_DELIVERED
DEFERRED = outcome_pb2.OUTCOME_STATUS_DEFERRED
BOUNCED = outcome_pb2.OUTCOME_STATUS_BOUNCED

BODY = b"Message-ID: <m-1@baton.test>\r\nFrom: a@sender.test\r\nSubject: hello\r\n\r\nHello there.\r\n"

SinkFactory = Callable[..., RecordingSink]


@pytest.fixture
def make_sink() -> Iterator[SinkFactory]:
    sinks: list[RecordingSink] = []

    def make(host: str = "127.0.0.1", **kwargs: Any) -> RecordingSink:
        sink = RecordingSink(host, **kwargs).start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
async def deliverer(engine: Engine) -> AsyncIterator[Deliverer]:
    deliverer = Deliverer(make_pool(), DedupeLog(engine), default_port=free_port())
    yield deliverer
    await deliverer.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def delivery(
    hosts: list[tuple[str, list[str], int]],
    recipients: list[str],
    *,
    message_id: str = "m-1",
    body: bytes = BODY,
    **fields: Any,
) -> delivery_pb2.Delivery:
    d = delivery_pb2.Delivery(
        message_id=message_id,
        domain="example.test",
        recipients=recipients,
        mail_from="a@sender.test",
        body=body,
        sender_identity="auth:alice",
        attempt=1,
        **fields,
    )
    d.route.kind = delivery_pb2.ROUTE_KIND_MX
    for preference, (name, addresses, port) in enumerate(hosts):
        d.route.hosts.add(name=name, preference=preference * 10, addresses=addresses, port=port)
    return d


def sent_rows(engine: Engine) -> dict[tuple[str, str], outcome_pb2.Outcome]:
    with Session(engine) as session:
        rows = session.execute(select(SentRecord.message_id, SentRecord.recipient, SentRecord.outcome))
        return {(m, r): outcome_pb2.Outcome.FromString(o) for m, r, o in rows}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- routing and fallback --------------------------------------------------------------------------


async def test_delivers_to_the_first_host(
    make_sink: SinkFactory, deliverer: Deliverer, engine: Engine
) -> None:
    first = make_sink("127.0.0.2")
    second = make_sink("127.0.0.3")
    d = delivery(
        [("mx1.example.test", ["127.0.0.2"], first.port), ("mx2.example.test", ["127.0.0.3"], second.port)],
        ["bob@example.test", "carol@example.test"],
    )

    outcomes = await deliverer.deliver(d)

    [message] = await first.wait_for_async(1)
    assert message.mail_from == "a@sender.test"
    assert message.rcpt_tos == ("bob@example.test", "carol@example.test")
    assert message.data == BODY
    assert message.message_id == "<m-1@baton.test>"
    assert message.helo == "relay.baton.test"
    assert second.connections == 0
    assert [o.recipient for o in outcomes] == ["bob@example.test", "carol@example.test"]
    for o in outcomes:
        assert o.status == DELIVERED
        assert o.message_id == "m-1"
        assert o.sender_identity == "auth:alice"
        assert o.stage == "sender"
        assert o.domain == "example.test"
        assert o.remote_host == f"mx1.example.test[127.0.0.2]:{first.port}"
        assert o.smtp_code == 250
        assert o.enhanced_status == "2.0.0"
        assert o.text.startswith("2.0.0 OK")
        assert o.failure_class == ""
        assert o.attempt == 1
        assert o.at_ms > 0
    assert set(sent_rows(engine)) == {("m-1", "bob@example.test"), ("m-1", "carol@example.test")}


async def test_port_zero_means_the_configured_delivery_port(make_sink: SinkFactory, engine: Engine) -> None:
    sink = make_sink()
    deliverer = Deliverer(make_pool(), DedupeLog(engine), default_port=sink.port)
    try:
        [outcome] = await deliverer.deliver(delivery([("mx", ["127.0.0.1"], 0)], ["bob@example.test"]))
    finally:
        await deliverer.close()
    assert outcome.status == DELIVERED
    assert len(sink.messages) == 1


async def test_falls_back_when_the_first_host_refuses_connections(
    make_sink: SinkFactory, deliverer: Deliverer
) -> None:
    second = make_sink("127.0.0.3")
    d = delivery(
        [
            ("mx1.example.test", ["127.0.0.2"], free_port("127.0.0.2")),
            ("mx2.example.test", ["127.0.0.3"], second.port),
        ],
        ["bob@example.test"],
    )

    [outcome] = await deliverer.deliver(d)

    assert outcome.status == DELIVERED
    assert outcome.remote_host.startswith("mx2.example.test[127.0.0.3]")
    assert len(second.messages) == 1


async def test_tries_each_address_of_a_host_in_order(make_sink: SinkFactory, deliverer: Deliverer) -> None:
    sink = make_sink("127.0.0.3")
    # Both addresses share the host's port: the first address has nothing listening on it.
    d = delivery([("mx1.example.test", ["127.0.0.2", "127.0.0.3"], sink.port)], ["bob@example.test"])

    [outcome] = await deliverer.deliver(d)

    assert outcome.status == DELIVERED
    assert outcome.remote_host.startswith("mx1.example.test[127.0.0.3]")


async def test_falls_back_when_the_first_host_greets_with_421(
    make_sink: SinkFactory, deliverer: Deliverer
) -> None:
    busy = make_sink("127.0.0.2", greeting="421 4.3.2 mx1 busy, try later")
    second = make_sink("127.0.0.3")
    d = delivery(
        [("mx1.example.test", ["127.0.0.2"], busy.port), ("mx2.example.test", ["127.0.0.3"], second.port)],
        ["bob@example.test"],
    )

    [outcome] = await deliverer.deliver(d)

    assert busy.connections == 1
    assert outcome.status == DELIVERED
    assert outcome.remote_host.startswith("mx2.example.test")
    assert len(second.messages) == 1


async def test_falls_back_when_mail_from_gets_a_4xx(make_sink: SinkFactory, deliverer: Deliverer) -> None:
    first = make_sink("127.0.0.2", mail_reply="451 4.3.0 queue full")
    second = make_sink("127.0.0.3")
    d = delivery(
        [("mx1.example.test", ["127.0.0.2"], first.port), ("mx2.example.test", ["127.0.0.3"], second.port)],
        ["bob@example.test"],
    )

    [outcome] = await deliverer.deliver(d)

    assert outcome.status == DELIVERED
    assert outcome.remote_host.startswith("mx2.example.test")
    assert first.messages == []


async def test_every_host_failing_defers_with_the_last_error(
    make_sink: SinkFactory, deliverer: Deliverer, engine: Engine
) -> None:
    busy = make_sink("127.0.0.3", greeting="421 4.7.0 Too many connections, slow down")
    d = delivery(
        [
            ("mx1.example.test", ["127.0.0.2"], free_port("127.0.0.2")),
            ("mx2.example.test", ["127.0.0.3"], busy.port),
        ],
        ["bob@example.test", "carol@example.test"],
    )

    outcomes = await deliverer.deliver(d)

    for o in outcomes:
        assert o.status == DEFERRED
        assert o.remote_host.startswith("mx2.example.test[127.0.0.3]")
        assert o.smtp_code == 421
        assert o.enhanced_status == "4.7.0"
        assert o.failure_class == "rate_limit"
        assert "Too many connections" in o.text
    # Deferred recipients are retried later, so nothing is recorded.
    assert sent_rows(engine) == {}


async def test_unreachable_host_defers_as_a_connection_failure(deliverer: Deliverer) -> None:
    d = delivery([("mx1.example.test", ["127.0.0.2"], free_port("127.0.0.2"))], ["bob@example.test"])

    [outcome] = await deliverer.deliver(d)

    assert outcome.status == DEFERRED
    assert outcome.smtp_code == 0
    assert outcome.enhanced_status == "4.4.1"
    assert outcome.failure_class == "connection"
    assert outcome.text


async def test_an_empty_route_defers(deliverer: Deliverer) -> None:
    [outcome] = await deliverer.deliver(delivery([], ["bob@example.test"]))
    assert outcome.status == DEFERRED
    assert outcome.remote_host == ""
    assert outcome.failure_class == "connection"


async def test_a_named_host_without_addresses_is_resolved_at_connect(
    make_sink: SinkFactory, deliverer: Deliverer
) -> None:
    # Static routes may name a smarthost (e.g. a cluster service) and leave resolution to the sender.
    sink = make_sink()
    [outcome] = await deliverer.deliver(delivery([("localhost", [], sink.port)], ["bob@example.test"]))
    assert outcome.status == DELIVERED
    assert len(sink.messages) == 1


# --- per-recipient answers -------------------------------------------------------------------------


async def test_per_recipient_refusals_mixed_with_accepted(
    make_sink: SinkFactory, deliverer: Deliverer, engine: Engine
) -> None:
    sink = make_sink(rcpt_replies=STANDARD_RCPT_REPLIES)
    d = delivery(
        [("mx1.example.test", ["127.0.0.1"], sink.port)],
        ["bob@example.test", "bounce@example.test", "defer@example.test", "carol@example.test"],
    )

    outcomes = {o.recipient: o for o in await deliverer.deliver(d)}

    [message] = sink.messages
    assert message.rcpt_tos == ("bob@example.test", "carol@example.test")
    assert outcomes["bob@example.test"].status == DELIVERED
    assert outcomes["carol@example.test"].status == DELIVERED
    bounced = outcomes["bounce@example.test"]
    assert (bounced.status, bounced.smtp_code, bounced.enhanced_status, bounced.failure_class) == (
        BOUNCED,
        550,
        "5.1.1",
        "mailbox",
    )
    deferred = outcomes["defer@example.test"]
    assert (deferred.status, deferred.smtp_code, deferred.enhanced_status) == (DEFERRED, 451, "4.2.0")
    assert set(sent_rows(engine)) == {
        ("m-1", "bob@example.test"),
        ("m-1", "carol@example.test"),
        ("m-1", "bounce@example.test"),
    }


async def test_all_recipients_refused_sends_no_data(make_sink: SinkFactory, deliverer: Deliverer) -> None:
    sink = make_sink(rcpt_replies=STANDARD_RCPT_REPLIES)
    d = delivery([("mx", ["127.0.0.1"], sink.port)], ["bounce@example.test", "defer@example.test"])

    outcomes = await deliverer.deliver(d)

    assert [o.status for o in outcomes] == [BOUNCED, DEFERRED]
    assert sink.messages == []
    # The session stays usable for the next message (the pool sends RSET first).
    [outcome] = await deliverer.deliver(
        delivery([("mx", ["127.0.0.1"], sink.port)], ["bob@example.test"], message_id="m-2")
    )
    assert outcome.status == DELIVERED
    assert sink.connections == 1


@pytest.mark.parametrize(
    ("reply", "status", "failure_class"),
    [("554 5.6.0 Message content rejected", BOUNCED, "content"), ("451 4.3.0 try again", DEFERRED, "other")],
)
async def test_the_data_reply_decides_the_accepted_recipients(
    make_sink: SinkFactory, deliverer: Deliverer, reply: str, status: int, failure_class: str
) -> None:
    sink = make_sink(data_reply=reply, rcpt_replies=STANDARD_RCPT_REPLIES)
    d = delivery([("mx", ["127.0.0.1"], sink.port)], ["bob@example.test", "bounce@example.test"])

    outcomes = await deliverer.deliver(d)

    assert outcomes[0].status == status
    assert outcomes[0].smtp_code == int(reply[:3])
    assert outcomes[0].failure_class == failure_class
    assert outcomes[1].status == BOUNCED
    assert outcomes[1].smtp_code == 550


async def test_a_5xx_to_mail_from_bounces_every_recipient(
    make_sink: SinkFactory, deliverer: Deliverer
) -> None:
    first = make_sink("127.0.0.2", mail_reply="550 5.7.1 Sender blocked by policy")
    second = make_sink("127.0.0.3")
    d = delivery(
        [("mx1", ["127.0.0.2"], first.port), ("mx2", ["127.0.0.3"], second.port)],
        ["bob@example.test", "carol@example.test"],
    )

    outcomes = await deliverer.deliver(d)

    assert [(o.status, o.smtp_code, o.failure_class) for o in outcomes] == [(BOUNCED, 550, "policy")] * 2
    assert second.connections == 0


async def test_smtputf8_is_used_when_asked_and_offered(make_sink: SinkFactory, deliverer: Deliverer) -> None:
    sink = make_sink()
    d = delivery([("mx", ["127.0.0.1"], sink.port)], ["jörg@example.test"], smtputf8=True)

    [outcome] = await deliverer.deliver(d)

    assert outcome.status == DELIVERED
    [message] = sink.messages
    assert "SMTPUTF8" in message.mail_options
    assert message.rcpt_tos == ("jörg@example.test",)


async def test_duplicate_recipients_get_one_outcome(make_sink: SinkFactory, deliverer: Deliverer) -> None:
    sink = make_sink()
    d = delivery([("mx", ["127.0.0.1"], sink.port)], ["bob@example.test", "bob@example.test"])

    outcomes = await deliverer.deliver(d)

    assert [o.recipient for o in outcomes] == ["bob@example.test"]
    assert sink.messages[0].rcpt_tos == ("bob@example.test",)


# --- dedupe --------------------------------------------------------------------------------------


async def test_a_replayed_delivery_is_delivered_once(
    make_sink: SinkFactory, deliverer: Deliverer, engine: Engine
) -> None:
    sink = make_sink()
    d = delivery([("mx", ["127.0.0.1"], sink.port)], ["bob@example.test", "carol@example.test"])
    hits = metric("baton_sender_dedupe_hits_total")

    first = await deliverer.deliver(d)
    second = await deliverer.deliver(d)

    assert len(sink.messages) == 1
    assert [o.SerializeToString() for o in second] == [o.SerializeToString() for o in first]
    assert metric("baton_sender_dedupe_hits_total") == hits + 2


async def test_copies_of_one_delivery_in_one_batch_are_delivered_once(
    make_sink: SinkFactory, deliverer: Deliverer
) -> None:
    # A replay upstream can hand the sender the same Delivery twice at once (one stage batch).
    sink = make_sink()
    d = delivery([("mx", ["127.0.0.1"], sink.port)], ["bob@example.test"])

    results = await asyncio.gather(*(deliverer.deliver(d) for _ in range(3)))

    assert len(sink.messages) == 1
    assert {r[0].SerializeToString() for r in results} == {results[0][0].SerializeToString()}


async def test_a_replay_after_a_crash_with_a_fresh_deliverer_sends_nothing(
    make_sink: SinkFactory, engine: Engine
) -> None:
    sink = make_sink()
    d = delivery([("mx", ["127.0.0.1"], sink.port)], ["bob@example.test"])
    for _ in range(2):
        deliverer = Deliverer(make_pool(), DedupeLog(engine), default_port=25)
        try:
            [outcome] = await deliverer.deliver(d)
        finally:
            await deliverer.close()
        assert outcome.status == DELIVERED
    assert len(sink.messages) == 1
    assert sink.connections == 1


async def test_only_recipients_without_a_record_are_sent(
    make_sink: SinkFactory, deliverer: Deliverer, engine: Engine
) -> None:
    sink = make_sink()
    recorded = outcome_pb2.Outcome(
        message_id="m-1", recipient="bob@example.test", status=DELIVERED, stage="sender", smtp_code=250
    )
    await DedupeLog(engine).record([recorded])
    d = delivery([("mx", ["127.0.0.1"], sink.port)], ["bob@example.test", "carol@example.test"])

    outcomes = await deliverer.deliver(d)

    assert outcomes[0] == recorded
    assert outcomes[1].status == DELIVERED
    assert sink.messages[0].rcpt_tos == ("carol@example.test",)


async def test_deferred_recipients_are_tried_again(make_sink: SinkFactory, deliverer: Deliverer) -> None:
    sink = make_sink(rcpt_replies={"defer@": "451 4.2.0 later"})
    d = delivery([("mx", ["127.0.0.1"], sink.port)], ["bob@example.test", "defer@example.test"])

    await deliverer.deliver(d)
    sink.set_rcpt_reply("defer@", None)
    outcomes = await deliverer.deliver(d)

    assert [o.status for o in outcomes] == [DELIVERED, DELIVERED]
    assert [m.rcpt_tos for m in sink.messages] == [("bob@example.test",), ("defer@example.test",)]


async def test_recording_tolerates_rows_that_already_exist(engine: Engine) -> None:
    log = DedupeLog(engine)
    first = outcome_pb2.Outcome(
        message_id="m-1", recipient="bob@example.test", status=DELIVERED, text="first"
    )
    await log.record([first])

    again = outcome_pb2.Outcome(
        message_id="m-1", recipient="bob@example.test", status=DELIVERED, text="again"
    )
    other = outcome_pb2.Outcome(message_id="m-1", recipient="carol@example.test", status=BOUNCED)
    await log.record([again, other])

    found = await log.lookup("m-1", ["bob@example.test", "carol@example.test", "dave@example.test"])
    assert found == {"bob@example.test": first, "carol@example.test": other}


# --- connection reuse ------------------------------------------------------------------------------


async def test_two_deliveries_to_one_sink_share_a_connection(
    make_sink: SinkFactory, deliverer: Deliverer
) -> None:
    sink = make_sink()
    route = [("mx", ["127.0.0.1"], sink.port)]
    reused = metric("baton_sender_connections_reused_total")

    await deliverer.deliver(delivery(route, ["bob@example.test"], message_id="m-1"))
    await deliverer.deliver(delivery(route, ["carol@example.test"], message_id="m-2"))

    messages = await sink.wait_for_async(2)
    assert sink.connections == 1
    assert [m.connection for m in messages] == [1, 1]
    assert metric("baton_sender_connections_reused_total") == reused + 1


async def test_concurrent_deliveries_stay_within_the_pool_size(
    make_sink: SinkFactory, engine: Engine
) -> None:
    sink = make_sink()
    route = [("mx", ["127.0.0.1"], sink.port)]
    deliverer = Deliverer(make_pool(size=2), DedupeLog(engine))
    try:
        results = await asyncio.gather(
            *(deliverer.deliver(delivery(route, ["bob@example.test"], message_id=f"m-{i}")) for i in range(6))
        )
    finally:
        await deliverer.close()
    assert all(o.status == DELIVERED for [o] in results)
    assert len(sink.messages) == 6
    assert 1 <= sink.connections <= 2


async def test_a_421_to_rcpt_moves_the_undecided_recipients_to_the_next_host(
    make_sink: SinkFactory, deliverer: Deliverer
) -> None:
    first = make_sink(
        "127.0.0.2", rcpt_replies={"bounce@": "550 5.1.1 no", "carol@": "421 4.3.2 shutting down"}
    )
    second = make_sink("127.0.0.3")
    d = delivery(
        [("mx1", ["127.0.0.2"], first.port), ("mx2", ["127.0.0.3"], second.port)],
        ["bounce@example.test", "bob@example.test", "carol@example.test"],
    )

    outcomes = await deliverer.deliver(d)

    assert [(o.status, o.remote_host.split("[")[0]) for o in outcomes] == [
        (BOUNCED, "mx1"),
        (DELIVERED, "mx2"),
        (DELIVERED, "mx2"),
    ]
    assert first.messages == []
    assert second.messages[0].rcpt_tos == ("bob@example.test", "carol@example.test")


async def test_cancellation_mid_transaction_drops_the_session(
    make_sink: SinkFactory, deliverer: Deliverer
) -> None:
    slow = make_sink(data_delay_s=1.0)
    task = asyncio.create_task(
        deliverer.deliver(delivery([("mx", ["127.0.0.1"], slow.port)], ["bob@example.test"]))
    )
    # Shut down while the remote is still chewing on DATA.
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deliverer.pool.idle_count() == 0
    # The pool slot was given back and nothing was recorded: the replay goes out again.
    slow.data_delay_s = 0.0
    d = delivery([("mx", ["127.0.0.1"], slow.port)], ["bob@example.test"])
    [outcome] = await asyncio.wait_for(deliverer.deliver(d), 5)
    assert outcome.status == DELIVERED
    assert slow.connections == 2
