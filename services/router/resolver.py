"""DNS lookups for the router: dnspython's async resolver behind a TTL cache and in-flight dedupe.

Every lookup returns an ``Answer`` (empty records for NODATA) or raises from ``services.router.errors``:
``NoSuchDomain`` (permanent, NXDOMAIN), ``DnsTimeout`` / ``DnsServerFailure`` (retriable). Positive
and negative answers are cached; failures are not, so the stage loop's retry asks again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.SOA import SOA

from baton.settings import Settings
from services.router import metrics
from services.router.cache import TtlCache, TtlPolicy
from services.router.errors import DnsServerFailure, DnsTimeout, NoSuchDomain
from services.router.mx import MxRecord, normalise_exchange
from services.router.routes import parse_host_port

T = TypeVar("T")


@dataclass(frozen=True)
class Answer(Generic[T]):
    name: str
    rdtype: str
    # Empty for NODATA (the name exists, but has no record of this type).
    records: tuple[T, ...]
    # Seconds the answer may be cached, after the cache's floor and cap.
    ttl: float


@dataclass(frozen=True)
class _NxDomain:
    ttl: float


_Cached = Answer[MxRecord] | Answer[str] | _NxDomain
_Key = tuple[str, str]


def make_dns_resolver(nameserver: str, timeout_s: float) -> dns.asyncresolver.Resolver:
    """A dnspython resolver: ``nameserver`` ("ip", "ip:port", "[ipv6]:port") or, if empty, the system's."""
    resolver = dns.asyncresolver.Resolver(configure=not nameserver)
    if nameserver:
        host, port = parse_host_port(nameserver)
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise ValueError(f"dns_nameserver must be an IP address, got {nameserver!r}") from exc
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port or 53)]
    # `lifetime` bounds the whole lookup (what dns_timeout_s means); `timeout` one try, so a lost
    # UDP datagram is retried within the lifetime.
    resolver.lifetime = timeout_s
    resolver.timeout = min(2.0, timeout_s)
    return resolver


def _soa_ttl(response: dns.message.Message | None) -> tuple[float | None, float | None]:
    if response is None:
        return None, None
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            for rdata in rrset:
                if isinstance(rdata, SOA):
                    return float(rrset.ttl), float(rdata.minimum)
    return None, None


class DnsResolver:
    """MX, A and AAAA lookups with caching; concurrent lookups of one (name, type) share one query."""

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        *,
        cache: TtlCache[_Key, _Cached] | None = None,
        policy: TtlPolicy | None = None,
    ) -> None:
        self._resolver = resolver
        self._cache: TtlCache[_Key, _Cached] = cache if cache is not None else TtlCache()
        self._policy = policy or TtlPolicy()
        self._inflight: dict[_Key, asyncio.Future[_Cached]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> DnsResolver:
        policy = TtlPolicy(
            min_ttl_s=settings.dns_cache_min_ttl_s,
            max_ttl_s=settings.dns_cache_max_ttl_s,
            negative_ttl_s=settings.dns_negative_ttl_s,
            max_negative_ttl_s=settings.dns_max_negative_ttl_s,
        )
        return cls(
            make_dns_resolver(settings.dns_nameserver, settings.dns_timeout_s),
            cache=TtlCache(settings.dns_cache_size),
            policy=policy,
        )

    async def mx(self, domain: str) -> Answer[MxRecord]:
        """MX records of ``domain`` (empty: NODATA); ``NoSuchDomain`` on NXDOMAIN."""
        return await self._lookup(domain, "MX")

    async def a(self, name: str) -> Answer[str]:
        """IPv4 addresses of ``name`` as text (empty: NODATA); ``NoSuchDomain`` on NXDOMAIN."""
        return await self._lookup(name, "A")

    async def aaaa(self, name: str) -> Answer[str]:
        """IPv6 addresses of ``name`` as text (empty: NODATA); ``NoSuchDomain`` on NXDOMAIN."""
        return await self._lookup(name, "AAAA")

    async def _lookup(self, name: str, rdtype: str) -> Answer[Any]:
        key = (name.lower().rstrip("."), rdtype)
        cached = self._cache.get(key)
        if cached is not None:
            metrics.DNS_CACHE_HITS.labels(rdtype).inc()
            return self._raise_nx(key, cached)
        metrics.DNS_CACHE_MISSES.labels(rdtype).inc()
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._query(key))
            self._inflight[key] = future
            future.add_done_callback(lambda f: self._query_done(key, f))
        else:
            metrics.DNS_INFLIGHT_JOINS.labels(rdtype).inc()
        # shield: one caller being cancelled must not cancel the query the others wait for.
        return self._raise_nx(key, await asyncio.shield(future))

    def _query_done(self, key: _Key, future: asyncio.Future[_Cached]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            # Marks the exception retrieved when every waiter was cancelled before it arrived.
            future.exception()

    @staticmethod
    def _raise_nx(key: _Key, result: _Cached) -> Answer[Any]:
        if isinstance(result, _NxDomain):
            raise NoSuchDomain(key[0], key[1], f"{key[0]} does not exist (NXDOMAIN)")
        return result

    async def _query(self, key: _Key) -> _Cached:
        name, rdtype = key
        started = time.monotonic()
        try:
            result = await self._send(name, rdtype)
        except DnsTimeout:
            metrics.DNS_LOOKUPS.labels(rdtype, "timeout").inc()
            raise
        except DnsServerFailure:
            metrics.DNS_LOOKUPS.labels(rdtype, "servfail").inc()
            raise
        finally:
            metrics.DNS_LOOKUP_SECONDS.labels(rdtype).observe(time.monotonic() - started)
        outcome = "nxdomain" if isinstance(result, _NxDomain) else "ok" if result.records else "nodata"
        metrics.DNS_LOOKUPS.labels(rdtype, outcome).inc()
        self._cache.put(key, result, result.ttl)
        return result

    async def _send(self, name: str, rdtype: str) -> _Cached:
        qname = dns.name.from_text(name)  # absolute: no search list, ever
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            # exc.responses() is untyped; it returns this same dict of qname -> response.
            responses: dict[dns.name.Name, dns.message.Message] = exc.kwargs.get("responses", {})
            soa_ttl, soa_min = _soa_ttl(responses.get(qname))
            return _NxDomain(ttl=self._policy.negative(soa_ttl, soa_min))
        except dns.exception.Timeout as exc:
            raise DnsTimeout(name, rdtype, f"DNS {rdtype} lookup of {name} timed out") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsServerFailure(name, rdtype, f"DNS {rdtype} lookup of {name} failed: {exc}") from exc
        except dns.exception.DNSException as exc:
            # YXDOMAIN, a bad response, ...: nothing says the next try fails too.
            raise DnsServerFailure(name, rdtype, f"DNS {rdtype} lookup of {name} failed: {exc}") from exc
        rrset = answer.rrset
        if rrset is None:
            soa_ttl, soa_min = _soa_ttl(answer.response)
            return Answer(name=name, rdtype=rdtype, records=(), ttl=self._policy.negative(soa_ttl, soa_min))
        ttl = self._policy.positive(float(rrset.ttl))
        if rdtype == "MX":
            mx = tuple(
                MxRecord(preference=r.preference, exchange=normalise_exchange(r.exchange.to_text()))
                for r in rrset
                if isinstance(r, MX)
            )
            return Answer(name=name, rdtype=rdtype, records=mx, ttl=ttl)
        return Answer(name=name, rdtype=rdtype, records=tuple(r.to_text() for r in rrset), ttl=ttl)
