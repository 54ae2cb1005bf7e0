"""Recipient parsing: split each address into local part and destination domain, group by domain.

The local part is kept exactly as given (it is case-sensitive per RFC 5321 section 2.4); the domain
is lowercased and IDNA-encoded (A-labels), because that is the key of the ``routed`` topic and what
DNS is asked about. Address literals (``user@[192.0.2.1]``, ``user@[IPv6:2001:db8::1]``) are kept
as a normalised literal and routed to that address directly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from baton.addresses import encode_domain as encode_domain  # re-exported: the router's callers use it here


@dataclass(frozen=True)
class Recipient:
    # The address exactly as the client gave it; Delivery.recipients and Outcome.recipient use it.
    address: str
    local_part: str
    # Lowercase A-label domain, or a normalised address literal such as "[192.0.2.1]".
    domain: str


@dataclass(frozen=True)
class BadRecipient:
    address: str
    # Why it cannot be routed, for the bounce text.
    problem: str


@dataclass(frozen=True)
class RecipientGroups:
    # Destination domain -> its recipients, both in first-seen order.
    by_domain: dict[str, list[Recipient]]
    invalid: list[BadRecipient]


def address_literal_ip(domain: str) -> str | None:
    """The IP of an address literal domain ("[192.0.2.1]", "[IPv6:2001:db8::1]"), else None."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner.lower().startswith("ipv6:"):
        return str(ipaddress.IPv6Address(inner[5:]))
    return str(ipaddress.IPv4Address(inner))


def parse_recipient(address: str) -> Recipient:
    """Split at the last "@" (a quoted local part may contain "@"); ``ValueError`` when unroutable."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("address has no local part or no domain")
    if domain.startswith("["):
        try:
            ip = address_literal_ip(domain)
        except ValueError as exc:
            raise ValueError(f"invalid address literal {domain!r}") from exc
        if ip is None:
            raise ValueError(f"invalid address literal {domain!r}")
        literal = f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"
        return Recipient(address=address, local_part=local, domain=literal)
    return Recipient(address=address, local_part=local, domain=encode_domain(domain))


def group_recipients(addresses: list[str] | tuple[str, ...]) -> RecipientGroups:
    """Group by destination domain, preserving first-seen order; exact duplicates are dropped."""
    by_domain: dict[str, list[Recipient]] = {}
    invalid: list[BadRecipient] = []
    seen: set[str] = set()
    for address in addresses:
        if address in seen:
            continue
        seen.add(address)
        try:
            rcpt = parse_recipient(address)
        except ValueError as exc:
            invalid.append(BadRecipient(address=address, problem=str(exc)))
            continue
        by_domain.setdefault(rcpt.domain, []).append(rcpt)
    return RecipientGroups(by_domain=by_domain, invalid=invalid)
