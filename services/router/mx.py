"""MX selection (RFC 5321 section 5.1, RFC 7505): from an MX answer to the host names to try, in order.

Pure: the resolver supplies the records, the planner resolves the chosen names to addresses.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from itertools import groupby

from baton.v1 import delivery_pb2
from services.router.errors import NoMailHost, NullMx


@dataclass(frozen=True)
class MxRecord:
    preference: int
    # Lowercase, without the final dot; "" is the root name "." (the null MX target).
    exchange: str


@dataclass(frozen=True)
class MxHost:
    name: str
    preference: int


@dataclass(frozen=True)
class MxChoice:
    # ROUTE_KIND_MX, or ROUTE_KIND_IMPLICIT_MX when the domain has no MX records.
    kind: delivery_pb2.RouteKind
    hosts: tuple[MxHost, ...]


def normalise_exchange(text: str) -> str:
    """Lowercase and drop the final dot, so "." becomes "" (the root)."""
    return text.strip().lower().rstrip(".")


def invalid_host_reason(name: str) -> str | None:
    """Why an MX target cannot be used as a host name, or None when it can."""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        # An MX target must be a name (RFC 5321 section 5.1); Exim and Postfix refuse IP-address targets.
        return "is an IP address, not a host name"
    if name == "localhost" or name.endswith(".localhost"):
        # RFC 6761: localhost names always mean this machine; delivering there would loop.
        return "is a localhost name"
    return None


def choose_hosts(domain: str, records: list[MxRecord] | tuple[MxRecord, ...], rng: random.Random) -> MxChoice:
    """Hosts to try for ``domain`` given its MX records (empty when the MX query had no answer).

    Raises ``NullMx`` for an RFC 7505 null MX and ``NoMailHost`` when no record names a usable host.
    NXDOMAIN never gets here: the resolver raises ``NoSuchDomain`` for it.
    """
    if not records:
        # RFC 5321 section 5.1: no MX records means the domain itself is the implicit MX, preference 0.
        return MxChoice(kind=delivery_pb2.ROUTE_KIND_IMPLICIT_MX, hosts=(MxHost(name=domain, preference=0),))
    if len(records) == 1 and records[0].exchange == "":
        raise NullMx(domain, "MX", f"{domain} publishes a null MX (RFC 7505): it accepts no mail")
    # A null MX mixed with real records breaks RFC 7505 section 3; the real records are still usable.
    usable = [r for r in records if r.exchange != "" and invalid_host_reason(r.exchange) is None]
    if not usable:
        problems = ", ".join(
            f"{r.exchange or '.'} {invalid_host_reason(r.exchange) or 'is the root name'}" for r in records
        )
        raise NoMailHost(domain, "MX", f"no usable MX host for {domain}: {problems}")
    # The same host listed twice is tried once, at its best preference.
    best: dict[str, int] = {}
    for r in usable:
        best[r.exchange] = min(r.preference, best.get(r.exchange, r.preference))
    ordered = sorted(best.items(), key=lambda item: item[1])
    hosts: list[MxHost] = []
    for preference, group in groupby(ordered, key=lambda item: item[1]):
        names = sorted(name for name, _ in group)
        # RFC 5321 section 5.1: hosts of equal preference are tried in random order to spread load.
        # Sorting first makes the result depend only on the rng, not on the answer's record order.
        rng.shuffle(names)
        hosts.extend(MxHost(name=name, preference=preference) for name in names)
    return MxChoice(kind=delivery_pb2.ROUTE_KIND_MX, hosts=tuple(hosts))
