"""Relay policy and address checks: pure functions that decide the SMTP answer, no I/O.

The server calls these from its MAIL and RCPT hooks; a ``None`` result means "continue".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from baton.addresses import encode_domain

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
    # A command the protocol does not allow here: syntax error, unknown command or parameter,
    # wrong order (RCPT before MAIL), bad HELO name, control characters in an argument.
    BAD_COMMAND = "bad_command"
    # A command line over 512 octets or a message line over 1000 octets (RFC 5321 4.5.3.1).
    LINE_TOO_LONG = "line_too_long"
    # Message content Baton will not carry: NUL bytes, 8-bit headers without 8BITMIME/SMTPUTF8.
    BAD_CONTENT = "bad_content"
    # The client talked before the greeting (a bot that does not wait for the server).
    EARLY_TALKER = "early_talker"
    # Idle past smtp_timeout_s or connected past smtp_session_timeout_s.
    TIMEOUT = "timeout"
    # More concurrent connections from one IP than smtp_max_connections_per_ip.
    TOO_MANY_CONNECTIONS = "too_many_connections"
    # AUTH refused unchecked because the IP or username failed too often recently.
    AUTH_THROTTLED = "auth_throttled"


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
# RFC 5321 4.5.3.1.4 and 4.5.3.1.6; Postfix's wording.
COMMAND_TOO_LONG = Reply(500, "5.5.2", "line too long", RejectReason.LINE_TOO_LONG)
TEXT_LINE_TOO_LONG = Reply(
    500, "5.5.2", "line too long (over 998 octets in message)", RejectReason.LINE_TOO_LONG
)
NUL_IN_DATA = Reply(550, "5.6.0", "NUL character not allowed in message", RejectReason.BAD_CONTENT)
EIGHT_BIT_HEADER = Reply(
    550, "5.6.0", "8-bit header requires BODY=8BITMIME or SMTPUTF8", RejectReason.BAD_CONTENT
)
CONTROL_IN_COMMAND = Reply(501, "5.5.2", "control character in command", RejectReason.BAD_COMMAND)
BAD_HELO = Reply(501, "5.5.2", "invalid HELO name", RejectReason.BAD_COMMAND)
EARLY_TALKER = Reply(554, "5.5.1", "protocol error: talked before the greeting", RejectReason.EARLY_TALKER)
# RFC 3463 X.4.2 "bad connection"; the same answer for idle and for the session deadline.
TIMEOUT = Reply(421, "4.4.2", "timeout exceeded", RejectReason.TIMEOUT)
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "too many connections", RejectReason.TOO_MANY_CONNECTIONS)
AUTH_THROTTLED = Reply(
    454, "4.7.0", "too many authentication failures, try later", RejectReason.AUTH_THROTTLED
)


def check_reverse_path(address: str, *, smtputf8: bool) -> Reply | None:
    """MAIL FROM: the null sender ``<>`` is allowed (bounces), anything else must be a valid mailbox."""
    if address == NULL_SENDER:
        return None
    return check_mailbox(address, smtputf8=smtputf8)


def check_forward_path(address: str, *, smtputf8: bool) -> Reply | None:
    """RCPT TO: a valid mailbox with a domain; an address literal must be a public address.

    ``user@[127.0.0.1]`` or ``user@[10.0.0.5]`` would make the relay deliver to itself (a loop) or
    into the network it runs in, which no sending application legitimately needs.
    """
    if address == NULL_SENDER:
        return _bad("null recipient not allowed")
    refusal = check_mailbox(address, smtputf8=smtputf8)
    if refusal is not None:
        return refusal
    domain = address.rpartition("@")[2]
    if domain.startswith("["):
        literal = domain[1:-1]
        ip = ipaddress.ip_address(literal[5:] if literal[:5].lower() == "ipv6:" else literal)
        if not ip.is_global:
            return _bad("address literal of a non-public address not allowed")
    return None


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
    if " " in local and not (local.startswith('"') and local.endswith('"')):
        # Unquoted whitespace is no RFC 5321 dot-string; the router would strip or refuse it.
        return _bad("whitespace in local part not allowed")
    if not _valid_domain(domain):
        return _bad("invalid domain")
    return None


def _valid_domain(domain: str) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        try:
            if literal[:5].lower() == "ipv6:":
                # No zone ids ("%eth0"): they name an interface of this host, never a destination.
                return "%" not in literal and ipaddress.ip_address(literal[5:]).version == 6
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
    if not domain.isascii():
        # U-labels must also be valid IDNA (bidi and joiner rules), or the router could not route it.
        try:
            encode_domain(domain)
        except ValueError:
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


def check_helo(name: str) -> Reply | None:
    """HELO/EHLO argument: a hostname (underscores tolerated, as Postfix does) or an address literal.

    Anything else (spaces, control characters, ``<>``, non-ASCII) is refused: the name is copied
    into the Received header, and a client that cannot name itself is not a mail client.
    """
    if name.startswith("[") and name.endswith("]"):
        return None if _valid_domain(name) else BAD_HELO
    if not name.isascii() or len(name) > MAX_DOMAIN:
        return BAD_HELO
    labels = name.removesuffix(".").split(".")
    for label in labels:
        if not label or len(label) > MAX_LABEL or not all(c.isalnum() or c in "-_" for c in label):
            return BAD_HELO
        if label.startswith("-") or label.endswith("-"):
            return BAD_HELO
    return None


def check_command_argument(arg: str | None) -> Reply | None:
    """Refuse NUL, CR and other control characters (tab excepted) in a command's argument.

    aiosmtpd splits commands on LF only, so a CR inside a line reaches the argument; nothing
    legitimate puts one there, and it must never reach a header.
    """
    if arg is not None and any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in arg):
        return CONTROL_IN_COMMAND
    return None
