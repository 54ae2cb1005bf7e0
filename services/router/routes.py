"""Static routes (the ``routes`` setting), like Postfix transport maps without the transport.

Keys are matched in this order, first match wins:

1. the exact destination domain, ``example.com``;
2. a parent-domain key with a leading dot, ``.example.com``, matching every subdomain of example.com
   (but not example.com itself, as with Postfix ``transport_maps`` when ``parent_domain_matches_subdomains``
   does not list it); the longest matching parent wins;
3. ``*``, the default smarthost for every domain.

A value is a comma-separated list of ``host``, ``host:port``, ``ipv4:port``, ``[ipv6]``, ``[ipv6]:port``
(a bare IPv6 address is accepted without a port). Hosts are tried in list order. A host given as an IP
address gets that address in ``Host.addresses``; a name is left for the sender to resolve, so that
cluster-local names such as ``relay.mail.svc`` work through the system resolver.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from baton.addresses import encode_domain
from baton.v1 import delivery_pb2


def parse_host_port(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[ipv6]:port`` or a bare IPv6 address -> (host, port); port 0 if none."""
    text = text.strip()
    if not text:
        raise ValueError("empty host")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"unclosed '[' in {text!r}")
        ipaddress.IPv6Address(host)
        if not rest:
            return host, 0
        if not rest.startswith(":"):
            raise ValueError(f"junk after ']' in {text!r}")
        return host, _port(rest[1:], text)
    if text.count(":") > 1:
        # Only an IPv6 address has several colons; it needs brackets to carry a port.
        return str(ipaddress.IPv6Address(text)), 0
    host, sep, port = text.partition(":")
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, _port(port, text) if sep else 0


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"invalid port in {whole!r}")
    return int(text)


def _host_message(text: str, index: int) -> delivery_pb2.Host:
    host, port = parse_host_port(text)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = []
        host = encode_domain(host)
    return delivery_pb2.Host(name=host, preference=index, addresses=addresses, port=port)


def parse_route(value: str) -> delivery_pb2.Route:
    parts = [p for p in (s.strip() for s in value.split(",")) if p]
    if not parts:
        raise ValueError("route lists no host")
    hosts = [_host_message(p, i) for i, p in enumerate(parts)]
    return delivery_pb2.Route(kind=delivery_pb2.ROUTE_KIND_STATIC, hosts=hosts)


@dataclass(frozen=True)
class StaticRoutes:
    exact: Mapping[str, delivery_pb2.Route]
    # Parent domain without its leading dot -> route for its subdomains.
    parents: Mapping[str, delivery_pb2.Route]
    default: delivery_pb2.Route | None

    @classmethod
    def parse(cls, routes: Mapping[str, str]) -> StaticRoutes:
        """Validate the whole setting at start-up; ``ValueError`` names the bad key."""
        exact: dict[str, delivery_pb2.Route] = {}
        parents: dict[str, delivery_pb2.Route] = {}
        default = None
        for key, value in routes.items():
            try:
                route = parse_route(value)
                if key.strip() == "*":
                    default = route
                elif key.strip().startswith("."):
                    parents[encode_domain(key.strip()[1:])] = route
                else:
                    exact[encode_domain(key)] = route
            except ValueError as exc:
                raise ValueError(f"routes[{key!r}]: {exc}") from exc
        return cls(exact=exact, parents=parents, default=default)

    def lookup(self, domain: str) -> delivery_pb2.Route | None:
        """The static route for an encoded domain, or None when DNS decides. Returns a fresh copy."""
        route = self.exact.get(domain)
        if route is None:
            labels = domain.split(".")
            for i in range(1, len(labels)):
                route = self.parents.get(".".join(labels[i:]))
                if route is not None:
                    break
        if route is None:
            route = self.default
        if route is None:
            return None
        copy = delivery_pb2.Route()
        copy.CopyFrom(route)
        return copy
