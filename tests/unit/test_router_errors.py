import pytest

from baton.kafka.stage import InvalidRecord, RetriableError
from baton.v1 import envelope_pb2, verdict_pb2
from services.router.errors import DnsTimeout, InvalidMessage, NoReachableHost, NoSuchDomain, NullMx
from services.router.planner import Planner
from services.router.resolver import DnsResolver, make_dns_resolver


def test_retriable_errors_are_the_stage_loops_retriable_errors() -> None:
    for error in (DnsTimeout("a.test", "MX", "t"), NoReachableHost("a.test", "A", "n")):
        assert isinstance(error, RetriableError)
        assert error.retriable
    for permanent in (NoSuchDomain("a.test", "MX", "n"), NullMx("a.test", "MX", "n")):
        assert not isinstance(permanent, RetriableError)
        assert not permanent.retriable
    assert isinstance(InvalidMessage("x"), InvalidRecord)


def planner() -> Planner:
    # Never queried: these records are refused before any lookup (port 9 is discard, nothing listens).
    return Planner(DnsResolver(make_dns_resolver("127.0.0.1:9", 0.1)))


async def test_record_without_envelope_is_invalid() -> None:
    with pytest.raises(InvalidMessage):
        await planner().plan(verdict_pb2.FilteredMessage())


async def test_unspecified_verdict_is_invalid() -> None:
    msg = verdict_pb2.FilteredMessage(envelope=envelope_pb2.Envelope(message_id="m", rcpt_to=["a@b.test"]))
    with pytest.raises(InvalidMessage):
        await planner().plan(msg)


async def test_tempfail_verdict_rejects_every_recipient_without_lookups() -> None:
    msg = verdict_pb2.FilteredMessage(
        envelope=envelope_pb2.Envelope(message_id="m", rcpt_to=["a@b.test", "c@d.test"]),
        verdict=verdict_pb2.Verdict(
            action=verdict_pb2.ACTION_TEMPFAIL,
            score=9,
            reasons=[verdict_pb2.Reason(rule="rbl", detail="listed")],
        ),
    )
    plan = await planner().plan(msg)
    assert plan.deliveries == []
    assert [(o.recipient, o.domain, o.enhanced_status) for o in plan.bounces] == [
        ("a@b.test", "b.test", "5.7.1"),
        ("c@d.test", "d.test", "5.7.1"),
    ]
    assert "tempfail" in plan.bounces[0].text
    assert "rbl: listed" in plan.bounces[0].text
