"""Routing plan for one filtered message: Delivery records per destination domain, bounce Outcomes.

For each destination domain, in the order its first recipient appears:

1. a static route (``routes`` setting) wins;
2. an address literal (``user@[192.0.2.1]``) goes to that address;
3. otherwise MX: null MX and NXDOMAIN bounce, no MX records means the domain itself (implicit MX);
   every chosen host is resolved to its A and AAAA addresses, and hosts without any are skipped.

A permanent failure bounces that domain's recipients; a retriable one (DNS timeout, SERVFAIL, MX hosts
that do not resolve for now) raises, and the stage loop retries the whole message.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from baton.settings import Settings
from baton.v1 import delivery_pb2, envelope_pb2, outcome_pb2, verdict_pb2
from services.router import metrics
from services.router.addresses import Recipient, address_literal_ip, group_recipients
from services.router.errors import (
    BounceReason,
    DnsError,
    DnsPermanentError,
    DnsTemporaryError,
    InvalidMessage,
    NoAddress,
    NoMailHost,
    NoReachableHost,
    NoSuchDomain,
)
from services.router.mx import choose_hosts
from services.router.resolver import DnsResolver
from services.router.routes import StaticRoutes

STAGE = "router"

_KIND_LABEL = {
    delivery_pb2.ROUTE_KIND_MX: "mx",
    delivery_pb2.ROUTE_KIND_IMPLICIT_MX: "implicit_mx",
    delivery_pb2.ROUTE_KIND_STATIC: "static",
}
_ACTION_LABEL = {verdict_pb2.ACTION_REJECT: "reject", verdict_pb2.ACTION_TEMPFAIL: "tempfail"}


@dataclass
class Plan:
    # Key each on the `routed` topic by Delivery.domain.
    deliveries: list[delivery_pb2.Delivery] = field(default_factory=list)
    # Key each on the `result` topic by Outcome.sender_identity.
    bounces: list[outcome_pb2.Outcome] = field(default_factory=list)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def usable_address(text: str, *, allow_loopback: bool) -> bool:
    """Whether a resolved address may be connected to.

    Unspecified (0.0.0.0, ::) and multicast addresses never can. Loopback would make the relay
    deliver to itself (a mail loop, or a way to reach local services), so it is refused unless
    allowed, which tests and development need because their sinks listen on 127.0.0.1.
    """
    ip = ipaddress.ip_address(text)
    if ip.is_unspecified or ip.is_multicast:
        return False
    return allow_loopback or not ip.is_loopback


class Planner:
    def __init__(
        self,
        resolver: DnsResolver,
        routes: StaticRoutes | None = None,
        *,
        allow_loopback: bool = False,
        rng: random.Random | None = None,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self._resolver = resolver
        self._routes = routes or StaticRoutes.parse({})
        self._allow_loopback = allow_loopback
        self._rng = rng or random.Random()
        self._clock_ms = clock_ms

    @classmethod
    def from_settings(cls, settings: Settings) -> Planner:
        return cls(
            DnsResolver.from_settings(settings),
            StaticRoutes.parse(settings.routes),
            allow_loopback=settings.router_allow_loopback,
        )

    async def plan(self, msg: verdict_pb2.FilteredMessage) -> Plan:
        """Raises ``InvalidMessage`` (DLQ) or a ``DnsTemporaryError`` (retry the record later)."""
        if not msg.HasField("envelope") or not msg.envelope.message_id:
            raise InvalidMessage("filtered record has no envelope or no message id")
        env = msg.envelope
        action = msg.verdict.action
        if action == verdict_pb2.ACTION_UNSPECIFIED:
            raise InvalidMessage(f"message {env.message_id}: verdict action is unspecified")
        if action != verdict_pb2.ACTION_ACCEPT:
            return Plan(bounces=self._rejections(msg))

        groups = group_recipients(list(env.rcpt_to))
        plan = Plan()
        for bad in groups.invalid:
            metrics.RECIPIENTS_BOUNCED.labels(BounceReason.BAD_ADDRESS).inc()
            plan.bounces.append(
                self._outcome(
                    env,
                    bad.address,
                    "",
                    "5.1.3",
                    f"bad recipient address {bad.address!r}: {bad.problem}",
                    failure_class="address",
                )
            )
        domains = list(groups.by_domain.items())
        results = await asyncio.gather(
            *(self._route(domain) for domain, _ in domains), return_exceptions=True
        )
        for (domain, rcpts), result in zip(domains, results, strict=True):
            if isinstance(result, DnsPermanentError):
                metrics.RECIPIENTS_BOUNCED.labels(result.reason).inc(len(rcpts))
                plan.bounces.extend(self._bounce(env, domain, r, result) for r in rcpts)
            elif isinstance(result, BaseException):
                # The first retriable failure (or bug) wins; nothing of this message is produced yet,
                # so a retry of the whole record is safe.
                raise result
            else:
                metrics.DELIVERIES_PLANNED.labels(_KIND_LABEL.get(result.kind, "literal")).inc()
                plan.deliveries.append(self._delivery(env, domain, rcpts, result))
        return plan

    # --- routing ---------------------------------------------------------------------------------

    async def _route(self, domain: str) -> delivery_pb2.Route:
        static = self._routes.lookup(domain)
        if static is not None:
            return static
        literal = address_literal_ip(domain)
        if literal is not None:
            if not usable_address(literal, allow_loopback=self._allow_loopback):
                raise NoAddress(domain, "", f"address literal {domain} is not a usable destination")
            target = delivery_pb2.Host(name=domain, addresses=[literal])
            return delivery_pb2.Route(kind=delivery_pb2.ROUTE_KIND_IMPLICIT_MX, hosts=[target])

        mx = await self._resolver.mx(domain)  # NoSuchDomain propagates: the domain bounces
        choice = choose_hosts(domain, mx.records, self._rng)
        resolved = await asyncio.gather(
            *(self._addresses(h.name) for h in choice.hosts), return_exceptions=True
        )
        hosts: list[delivery_pb2.Host] = []
        nxdomain = 0
        temporary: DnsError | None = None
        for host, addresses in zip(choice.hosts, resolved, strict=True):
            if isinstance(addresses, NoSuchDomain):
                nxdomain += 1
            elif isinstance(addresses, DnsTemporaryError):
                temporary = temporary or addresses
            elif isinstance(addresses, BaseException):
                raise addresses
            elif addresses:
                hosts.append(
                    delivery_pb2.Host(name=host.name, preference=host.preference, addresses=addresses)
                )
        if hosts:
            return delivery_pb2.Route(kind=choice.kind, hosts=hosts)
        if temporary is not None:
            text = f"no address for any mail host of {domain}: {temporary}"
            raise NoReachableHost(domain, temporary.rdtype, text)
        if choice.kind == delivery_pb2.ROUTE_KIND_IMPLICIT_MX:
            # The domain exists (its MX query was NODATA) but has no A/AAAA either: not mail-capable.
            # Postfix and Exim bounce this too.
            raise NoAddress(domain, "A", f"{domain} has no MX and no A/AAAA records")
        if nxdomain == len(choice.hosts):
            names = ", ".join(h.name for h in choice.hosts)
            raise NoMailHost(domain, "A", f"no MX host of {domain} exists: {names}")
        # Some hosts exist without (usable) addresses: maybe mid-change, maybe loopback-only; try later.
        raise NoReachableHost(domain, "A", f"no usable address for any MX host of {domain}")

    async def _addresses(self, name: str) -> list[str]:
        """A then AAAA addresses of ``name``; NXDOMAIN raises, a failure of only one family is tolerated."""
        a, aaaa = await asyncio.gather(
            self._resolver.a(name), self._resolver.aaaa(name), return_exceptions=True
        )
        for result in (a, aaaa):
            if isinstance(result, BaseException) and not isinstance(result, DnsError):
                raise result
        for result in (a, aaaa):
            if isinstance(result, NoSuchDomain):
                raise result
        found = [
            addr
            for result in (a, aaaa)
            if not isinstance(result, BaseException)
            for addr in result.records
            if usable_address(addr, allow_loopback=self._allow_loopback)
        ]
        if not found:
            for result in (a, aaaa):
                if isinstance(result, DnsTemporaryError):
                    raise result
        return found

    # --- records ---------------------------------------------------------------------------------

    def _delivery(
        self, env: envelope_pb2.Envelope, domain: str, rcpts: list[Recipient], route: delivery_pb2.Route
    ) -> delivery_pb2.Delivery:
        return delivery_pb2.Delivery(
            message_id=env.message_id,
            domain=domain,
            route=route,
            recipients=[r.address for r in rcpts],
            mail_from=env.mail_from,
            body=env.body,
            sender_identity=env.sender_identity,
            attempt=1,
            accepted_at_ms=env.received_at_ms,
            smtputf8=env.smtputf8,
        )

    def _bounce(
        self, env: envelope_pb2.Envelope, domain: str, rcpt: Recipient, error: DnsPermanentError
    ) -> outcome_pb2.Outcome:
        return self._outcome(
            env, rcpt.address, domain, error.enhanced_status, str(error), failure_class="dns"
        )

    def _outcome(
        self,
        env: envelope_pb2.Envelope,
        recipient: str,
        domain: str,
        enhanced_status: str,
        text: str,
        *,
        failure_class: str,
        status: outcome_pb2.OutcomeStatus = outcome_pb2.OUTCOME_STATUS_BOUNCED,
    ) -> outcome_pb2.Outcome:
        return outcome_pb2.Outcome(
            message_id=env.message_id,
            recipient=recipient,
            status=status,
            sender_identity=env.sender_identity,
            stage=STAGE,
            domain=domain,
            smtp_code=0,
            enhanced_status=enhanced_status,
            text=text,
            failure_class=failure_class,
            attempt=1,
            at_ms=self._clock_ms(),
        )

    def _rejections(self, msg: verdict_pb2.FilteredMessage) -> list[outcome_pb2.Outcome]:
        env = msg.envelope
        verdict = msg.verdict
        label = _ACTION_LABEL.get(verdict.action, str(verdict.action))
        reasons = "; ".join(f"{r.rule}: {r.detail}" if r.detail else r.rule for r in verdict.reasons)
        text = f"filter verdict {label} (score {verdict.score:g})" + (f": {reasons}" if reasons else "")
        metrics.RECIPIENTS_REJECTED.labels(label).inc(len(env.rcpt_to))
        outcomes = []
        for address in env.rcpt_to:
            domain = address.rpartition("@")[2].lower()
            outcomes.append(
                self._outcome(
                    env,
                    address,
                    domain,
                    "5.7.1",
                    text,
                    failure_class="policy",
                    status=outcome_pb2.OUTCOME_STATUS_REJECTED,
                )
            )
        return outcomes
