"""The router's planner and resolver against a real dnsmasq on 127.0.0.1 (tests/fixtures/dns.py)."""

import asyncio
import random
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import REGISTRY

from baton.settings import Settings
from baton.v1 import delivery_pb2, envelope_pb2, outcome_pb2, verdict_pb2
from services.router.errors import DnsTemporaryError, NoReachableHost, NoSuchDomain
from services.router.planner import Planner
from services.router.resolver import DnsResolver, make_dns_resolver
from services.router.routes import StaticRoutes
from tests.fixtures.dns import Dnsmasq, dnsmasq_unavailable, free_port

pytestmark = pytest.mark.skipif(dnsmasq_unavailable() is not None, reason="dnsmasq is not installed")


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[Dnsmasq]:
    server = Dnsmasq(zones=["test"], ttl=300)
    # Preference order; two hosts share preference 20.
    server.add_mx("pref.test", "mx30.pref.test", 30)
    server.add_mx("pref.test", "mx10.pref.test", 10)
    server.add_mx("pref.test", "mx20a.pref.test", 20)
    server.add_mx("pref.test", "mx20b.pref.test", 20)
    server.add_host("mx10.pref.test", "127.0.0.10", "::1")
    server.add_host("mx20a.pref.test", "127.0.0.20")
    server.add_host("mx20b.pref.test", "127.0.0.21")
    server.add_host("mx30.pref.test", "127.0.0.30")
    server.add_null_mx("nullmx.test")
    # No MX, only an address: the implicit MX.
    server.add_host("implicit.test", "127.0.0.40")
    # MX hosts that do not exist at all.
    server.add_mx("ghost.test", "nothere.ghost.test", 10)
    # MX host that exists (it has a TXT record) but has no address.
    server.add_mx("noaddr.test", "host.noaddr.test", 10)
    server.add_txt("host.noaddr.test", "no address here")
    # One MX host missing, the other fine.
    server.add_mx("half.test", "gone.half.test", 5)
    server.add_mx("half.test", "mx.half.test", 10)
    server.add_host("mx.half.test", "127.0.0.50")
    # Has MX in DNS, but a static route overrides it.
    server.add_mx("static.test", "mx.static.test", 10)
    server.add_host("mx.static.test", "127.0.0.60")
    # Only a TXT record: exists, no MX, no address.
    server.add_txt("txtonly.test", "v=spf1 -all")
    with server:
        yield server


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def planner_for(
    dnsmasq: Dnsmasq, routes: dict[str, str] | None = None, clock_ms: Callable[[], int] = lambda: 1
) -> Planner:
    settings = Settings(dns_nameserver=dnsmasq.nameserver, dns_timeout_s=2.0, routes=routes or {})
    resolver = DnsResolver.from_settings(settings)
    routes_ = StaticRoutes.parse(settings.routes)
    return Planner(resolver, routes_, rng=random.Random(1), allow_loopback=True, clock_ms=clock_ms)


def message(
    *rcpts: str, action: verdict_pb2.Action = verdict_pb2.ACTION_ACCEPT
) -> verdict_pb2.FilteredMessage:
    envelope = envelope_pb2.Envelope(
        message_id="m-1",
        received_at_ms=1_700_000_000_000,
        sender_identity="auth:alice",
        mail_from="alice@sender.test",
        rcpt_to=list(rcpts),
        body=b"Subject: hi\r\n\r\nhello\r\n",
        smtputf8=True,
    )
    verdict = verdict_pb2.Verdict(action=action, score=1.5)
    return verdict_pb2.FilteredMessage(envelope=envelope, verdict=verdict)


def hosts(delivery: delivery_pb2.Delivery) -> list[tuple[str, int, list[str]]]:
    return [(h.name, h.preference, list(h.addresses)) for h in delivery.route.hosts]


async def test_mx_hosts_in_preference_order_with_addresses(dnsmasq: Dnsmasq) -> None:
    plan = await planner_for(dnsmasq).plan(message("bob@pref.test", "Carol@PREF.test"))
    assert plan.bounces == []
    [delivery] = plan.deliveries
    assert delivery.route.kind == delivery_pb2.ROUTE_KIND_MX
    found = hosts(delivery)
    assert found[0] == ("mx10.pref.test", 10, ["127.0.0.10", "::1"])
    assert sorted(found[1:3]) == [
        ("mx20a.pref.test", 20, ["127.0.0.20"]),
        ("mx20b.pref.test", 20, ["127.0.0.21"]),
    ]
    assert found[3] == ("mx30.pref.test", 30, ["127.0.0.30"])
    assert delivery.domain == "pref.test"
    assert list(delivery.recipients) == ["bob@pref.test", "Carol@PREF.test"]
    assert (delivery.message_id, delivery.mail_from, delivery.sender_identity) == (
        "m-1",
        "alice@sender.test",
        "auth:alice",
    )
    assert delivery.body == b"Subject: hi\r\n\r\nhello\r\n"
    assert (delivery.attempt, delivery.accepted_at_ms, delivery.smtputf8) == (1, 1_700_000_000_000, True)


async def test_null_mx_bounces_with_5_1_10(dnsmasq: Dnsmasq) -> None:
    before = sample("baton_router_recipients_bounced_total", reason="null_mx")
    plan = await planner_for(dnsmasq, clock_ms=lambda: 42).plan(message("a@nullmx.test", "b@nullmx.test"))
    assert plan.deliveries == []
    assert [b.recipient for b in plan.bounces] == ["a@nullmx.test", "b@nullmx.test"]
    bounce = plan.bounces[0]
    assert bounce.status == outcome_pb2.OUTCOME_STATUS_BOUNCED
    assert (bounce.stage, bounce.smtp_code, bounce.enhanced_status) == ("router", 0, "5.1.10")
    assert (bounce.failure_class, bounce.domain, bounce.sender_identity) == (
        "dns",
        "nullmx.test",
        "auth:alice",
    )
    assert (bounce.message_id, bounce.attempt, bounce.at_ms) == ("m-1", 1, 42)
    assert "null MX" in bounce.text
    assert sample("baton_router_recipients_bounced_total", reason="null_mx") == before + 2


async def test_nxdomain_bounces_with_5_1_2(dnsmasq: Dnsmasq) -> None:
    plan = await planner_for(dnsmasq).plan(message("a@doesnotexist.test"))
    assert plan.deliveries == []
    [bounce] = plan.bounces
    assert bounce.enhanced_status == "5.1.2"
    assert "does not exist" in bounce.text


async def test_no_mx_falls_back_to_the_domains_own_address(dnsmasq: Dnsmasq) -> None:
    plan = await planner_for(dnsmasq).plan(message("a@implicit.test"))
    [delivery] = plan.deliveries
    assert delivery.route.kind == delivery_pb2.ROUTE_KIND_IMPLICIT_MX
    assert hosts(delivery) == [("implicit.test", 0, ["127.0.0.40"])]


async def test_no_mx_and_no_address_bounces(dnsmasq: Dnsmasq) -> None:
    plan = await planner_for(dnsmasq).plan(message("a@txtonly.test"))
    [bounce] = plan.bounces
    assert bounce.enhanced_status == "5.4.4"


async def test_mx_hosts_that_all_do_not_exist_bounce(dnsmasq: Dnsmasq) -> None:
    plan = await planner_for(dnsmasq).plan(message("a@ghost.test"))
    [bounce] = plan.bounces
    assert bounce.enhanced_status == "5.4.4"
    assert "nothere.ghost.test" in bounce.text


async def test_missing_mx_host_is_skipped(dnsmasq: Dnsmasq) -> None:
    plan = await planner_for(dnsmasq).plan(message("a@half.test"))
    [delivery] = plan.deliveries
    assert hosts(delivery) == [("mx.half.test", 10, ["127.0.0.50"])]


async def test_mx_host_without_address_is_retriable(dnsmasq: Dnsmasq) -> None:
    with pytest.raises(NoReachableHost) as info:
        await planner_for(dnsmasq).plan(message("a@noaddr.test"))
    assert info.value.retriable


async def test_loopback_addresses_are_refused_unless_allowed(dnsmasq: Dnsmasq) -> None:
    settings = Settings(dns_nameserver=dnsmasq.nameserver)
    planner = Planner(DnsResolver.from_settings(settings), allow_loopback=False)
    with pytest.raises(NoReachableHost):
        await planner.plan(message("a@pref.test"))


async def test_static_route_overrides_dns_without_a_query(dnsmasq: Dnsmasq) -> None:
    before = len(dnsmasq.queries())
    planner = planner_for(dnsmasq, routes={"static.test": "127.0.0.99:2525,[::1]:2526"})
    plan = await planner.plan(message("a@static.test"))
    [delivery] = plan.deliveries
    assert delivery.route.kind == delivery_pb2.ROUTE_KIND_STATIC
    assert [(h.name, h.port, list(h.addresses)) for h in delivery.route.hosts] == [
        ("127.0.0.99", 2525, ["127.0.0.99"]),
        ("::1", 2526, ["::1"]),
    ]
    await asyncio.sleep(0.1)
    assert len(dnsmasq.queries()) == before


async def test_default_route_catches_every_domain(dnsmasq: Dnsmasq) -> None:
    plan = await planner_for(dnsmasq, routes={"*": "127.0.0.98"}).plan(message("a@doesnotexist.test"))
    assert [d.route.hosts[0].name for d in plan.deliveries] == ["127.0.0.98"]


async def test_second_plan_is_served_from_the_cache(dnsmasq: Dnsmasq) -> None:
    planner = planner_for(dnsmasq)
    rcpts = ("a@implicit.test", "b@doesnotexist2.test")
    hits = sample("baton_router_dns_cache_hits_total", type="MX")
    start = len(dnsmasq.queries())
    first = await planner.plan(message(*rcpts))
    # MX of both, A and AAAA of implicit.test.
    after_first = dnsmasq.wait_queries(start + 4)
    assert sorted(after_first[start:]) == sorted(
        [
            ("MX", "implicit.test"),
            ("MX", "doesnotexist2.test"),
            ("A", "implicit.test"),
            ("AAAA", "implicit.test"),
        ]
    )
    second = await planner.plan(message(*rcpts))
    await asyncio.sleep(0.1)
    assert len(dnsmasq.queries()) == len(after_first)
    assert second.deliveries == first.deliveries
    assert [b.enhanced_status for b in second.bounces] == ["5.1.2"]
    assert sample("baton_router_dns_cache_hits_total", type="MX") == hits + 2


async def test_several_domains_give_several_deliveries(dnsmasq: Dnsmasq) -> None:
    plan = await planner_for(dnsmasq).plan(
        message("a@implicit.test", "b@pref.test", "c@nullmx.test", "d@IMPLICIT.test", "not-an-address")
    )
    assert [(d.domain, list(d.recipients)) for d in plan.deliveries] == [
        ("implicit.test", ["a@implicit.test", "d@IMPLICIT.test"]),
        ("pref.test", ["b@pref.test"]),
    ]
    assert [(b.recipient, b.enhanced_status) for b in plan.bounces] == [
        ("not-an-address", "5.1.3"),
        ("c@nullmx.test", "5.1.10"),
    ]


async def test_rejected_verdict_gives_rejected_outcomes_and_no_lookup(dnsmasq: Dnsmasq) -> None:
    start = len(dnsmasq.queries())
    plan = await planner_for(dnsmasq).plan(
        message("a@pref.test", "b@x.test", action=verdict_pb2.ACTION_REJECT)
    )
    assert plan.deliveries == []
    assert [(o.recipient, o.status, o.failure_class) for o in plan.bounces] == [
        ("a@pref.test", outcome_pb2.OUTCOME_STATUS_REJECTED, "policy"),
        ("b@x.test", outcome_pb2.OUTCOME_STATUS_REJECTED, "policy"),
    ]
    await asyncio.sleep(0.1)
    assert len(dnsmasq.queries()) == start


async def test_concurrent_lookups_share_one_query(dnsmasq: Dnsmasq) -> None:
    resolver = DnsResolver(make_dns_resolver(dnsmasq.nameserver, 2.0))
    start = len(dnsmasq.queries())
    answers = await asyncio.gather(*(resolver.mx("pref.test") for _ in range(10)))
    assert all(a == answers[0] for a in answers)
    assert len(answers[0].records) == 4
    await asyncio.sleep(0.1)
    assert dnsmasq.queries()[start:] == [("MX", "pref.test")]


async def test_nxdomain_is_cached_negatively(dnsmasq: Dnsmasq) -> None:
    resolver = DnsResolver(make_dns_resolver(dnsmasq.nameserver, 2.0))
    for _ in range(2):
        with pytest.raises(NoSuchDomain):
            await resolver.a("missing-cached.test")
    await asyncio.sleep(0.1)
    assert dnsmasq.queries().count(("A", "missing-cached.test")) == 1


async def test_refused_name_is_a_retriable_error(dnsmasq: Dnsmasq) -> None:
    # dnsmasq REFUSES names outside its zones, as a broken upstream would.
    with pytest.raises(DnsTemporaryError) as info:
        await planner_for(dnsmasq).plan(message("a@outside.invalid"))
    assert info.value.retriable


async def test_unreachable_nameserver_is_a_retriable_error() -> None:
    # Nobody listens on a fresh free port: the query is refused or times out.
    resolver = DnsResolver(make_dns_resolver(f"127.0.0.1:{free_port()}", 0.5))
    with pytest.raises(DnsTemporaryError):
        await resolver.mx("pref.test")


async def test_a_cancelled_waiter_does_not_cancel_the_shared_query(dnsmasq: Dnsmasq) -> None:
    resolver = DnsResolver(make_dns_resolver(dnsmasq.nameserver, 2.0))
    first = asyncio.ensure_future(resolver.a("mx10.pref.test"))
    second = asyncio.ensure_future(resolver.a("mx10.pref.test"))
    await asyncio.sleep(0)
    first.cancel()
    answer = await second
    assert answer.records == ("127.0.0.10",)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert sample("baton_router_dns_inflight_joins_total", type="A") >= 1
