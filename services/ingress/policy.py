"""Relay policy and address checks: pure functions that decide the SMTP answer, no I/O.

The server calls these from its MAIL and RCPT hooks; a ``None`` result means "continue".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

# RFC 5321 4.5.3.1: limits in octets.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
# The path includes the angle brackets.
MAX_PATH = 256
MAX_LABEL = 63

NULL_SENDER = "<>"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RejectReason(StrEnum):
    """Why ingress refused something; the ``reason`` label of the rejections metric."""

    # RCPT from a client that is neither authenticated nor in a trusted network.
    RELAY_DENIED = "relay_denied"
    # AUTH with a wrong user or password, or a disabled account.
    AUTH_FAILED = "auth_failed"
    # Declared SIZE or actual DATA over smtp_max_message_bytes.
    TOO_BIG = "too_big"
    # Kafka did not acknowledge the Envelope in time (temporary).
    TEMPFAIL_KAFKA = "tempfail_kafka"
    # Too many transactions waiting for Kafka at once (temporary).
    BACKPRESSURE = "backpressure"
    # Malformed or relay-trick address (source route, %-hack, bang path, too long, non-ASCII).
    BAD_ADDRESS = "bad_address"
    # DATA had a bare LF or bare CR line ending (SMTP smuggling defence).
    BARE_NEWLINE = "bare_newline"
    # More RCPTs than smtp_max_recipients in one transaction (temporary for the extra ones).
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    # The server is draining for shutdown (temporary).
    SHUTTING_DOWN = "shutting_down"


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP answer: basic code, enhanced status code (RFC 3463) and text."""

    code: int
    status: str
    text: str
    reason: RejectReason | None = None

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"


def _bad(text: str) -> Reply:
    return Reply(553, "5.1.3", text, RejectReason.BAD_ADDRESS)


RELAY_DENIED = Reply(550, "5.7.1", "relay denied", RejectReason.RELAY_DENIED)
# RFC 5321 4.5.3.1.10: "too many recipients" should be a 452 so the client sends the rest in a
# later transaction instead of bouncing them; X.5.3 is the enhanced code for it.
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "too many recipients", RejectReason.TOO_MANY_RECIPIENTS)
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "message too big", RejectReason.TOO_BIG)
BARE_NEWLINE = Reply(550, "5.5.2", "bare newline not allowed", RejectReason.BARE_NEWLINE)
TEMPFAIL_KAFKA = Reply(451, "4.3.0", "temporary failure, try again later", RejectReason.TEMPFAIL_KAFKA)
BACKPRESSURE = Reply(451, "4.3.0", "server busy, try again later", RejectReason.BACKPRESSURE)
SHUTTING_DOWN = Reply(421, "4.3.2", "service shutting down", RejectReason.SHUTTING_DOWN)
NEEDS_SMTPUTF8 = Reply(553, "5.6.7", "non-ASCII address requires SMTPUTF8", RejectReason.BAD_ADDRESS)


def check_reverse_path(address: str, *, smtputf8: bool) -> Reply | None:
    """MAIL FROM: the null sender ``<>`` is allowed (bounces), anything else must be a valid mailbox."""
    if address == NULL_SENDER:
        return None
    return check_mailbox(address, smtputf8=smtputf8)


def check_forward_path(address: str, *, smtputf8: bool) -> Reply | None:
    """RCPT TO: a valid mailbox with a domain."""
    if address == NULL_SENDER:
        return _bad("null recipient not allowed")
    return check_mailbox(address, smtputf8=smtputf8)


def check_mailbox(address: str, *, smtputf8: bool) -> Reply | None:
    """Reject malformed addresses and the forms that trick relays into forwarding mail elsewhere.

    ``address`` is the path without angle brackets, as aiosmtpd parsed it (a source route is kept
    by the server precisely so it can be refused here).
    """
    if address.startswith("@"):
        return _bad("source routes not allowed")
    try:
        octets = address.encode("utf-8")
    except UnicodeEncodeError:
        # aiosmtpd decodes with surrogateescape, so invalid UTF-8 shows up as lone surrogates.
        return _bad("address is not valid UTF-8")
    if not address.isascii() and not smtputf8:
        return NEEDS_SMTPUTF8
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in address):
        return _bad("control characters in address")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return _bad("address must have a local part and a domain")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        return _bad("local part too long")
    if len(domain.encode("utf-8")) > MAX_DOMAIN:
        return _bad("domain too long")
    if len(octets) + 2 > MAX_PATH:
        return _bad("address too long")
    # These characters in the local part (even quoted) would route the message onwards on some
    # downstream MTA: user%other@relay, a!b@relay, "a@b"@relay.
    if "%" in local:
        return _bad("percent hack not allowed")
    if "!" in local:
        return _bad("bang paths not allowed")
    if "@" in local or ":" in local or "," in local:
        return _bad("routing characters in local part not allowed")
    if not _valid_domain(domain):
        return _bad("invalid domain")
    return None


def _valid_domain(domain: str) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        try:
            if literal[:5].lower() == "ipv6:":
                return ipaddress.ip_address(literal[5:]).version == 6
            return ipaddress.ip_address(literal).version == 4
        except ValueError:
            return False
    # A bang or percent in the domain can never be a hostname either; labels are LDH, or
    # U-labels when SMTPUTF8 was given (the caller already refused non-ASCII otherwise).
    for label in domain.split("."):
        if not label or len(label.encode("utf-8")) > MAX_LABEL:
            return False
        if label.startswith("-") or label.endswith("-"):
            return False
        if not all(c.isalnum() or c == "-" for c in label):
            return False
    return True


def is_trusted(client_ip: str, networks: Sequence[Network]) -> bool:
    """Whether ``client_ip`` lies in one of the trusted networks (IPv4-mapped IPv6 counts as IPv4)."""
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def check_relay(*, authenticated: bool, client_ip: str, trusted: Sequence[Network]) -> Reply | None:
    """A RCPT is relayed only for an authenticated session or a client in a trusted network."""
    if authenticated or is_trusted(client_ip, trusted):
        return None
    return RELAY_DENIED


def check_recipient_count(current: int, limit: int) -> Reply | None:
    """``current`` recipients are already accepted; one more is allowed while under ``limit``."""
    if current >= limit:
        return TOO_MANY_RECIPIENTS
    return None
