"""Map an SMTP reply or a local failure to an Outcome status, enhanced status and coarse failure class.

Pure: no I/O, no clock. This is deliberately small and honest — it looks at the reply code, an RFC 3463
enhanced status at the start of the text, and a handful of unmistakable keywords. The real bounce
classifier (per-provider rules, "5xx that is really transient") is a later piece of work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from baton.v1 import outcome_pb2

DELIVERED = outcome_pb2.OUTCOME_STATUS_DELIVERED
DEFERRED = outcome_pb2.OUTCOME_STATUS_DEFERRED
BOUNCED = outcome_pb2.OUTCOME_STATUS_BOUNCED


class FailureClass(StrEnum):
    """Coarse reason a recipient was not delivered; the value is written to ``Outcome.failure_class``."""

    # Delivered: no failure (written as the empty string).
    NONE = ""
    # No usable SMTP session: connection refused or reset, the host closed the channel (421), x.4.x.
    CONNECTION = "connection"
    # A connect, reply or DATA timeout; nothing was refused, the remote was just too slow.
    TIMEOUT = "timeout"
    # STARTTLS negotiation failed (handshake error, x.7.5 style crypto failures on our side).
    TLS = "tls"
    # Refused by the remote's policy: spam, blocklists, sender reputation, relaying denied, x.7.x.
    POLICY = "policy"
    # The remote asks us to slow down: rate limits, too many connections or messages.
    RATE_LIMIT = "rate_limit"
    # The recipient's mailbox: unknown user, disabled, full (x.1.x, x.2.x).
    MAILBOX = "mailbox"
    # The SMTP dialogue itself went wrong: syntax errors, bad sequence, unexpected replies, x.5.x.
    PROTOCOL = "protocol"
    # The message was refused for what it is: too large, virus, media not supported (x.6.x, x.3.4).
    CONTENT = "content"
    # A failure none of the above recognises.
    OTHER = "other"


class LocalFailure(StrEnum):
    """A failure on our side of the wire, where the remote gave no SMTP reply."""

    # TCP connect refused, unreachable, or reset before a greeting.
    CONNECT = "connect"
    # The connection dropped in the middle of a dialogue.
    DISCONNECTED = "disconnected"
    # No answer within the connect or command timeout.
    TIMEOUT = "timeout"
    # STARTTLS handshake failed.
    TLS = "tls"
    # The remote sent something we cannot use (garbled reply, unexpected code).
    PROTOCOL = "protocol"


@dataclass(frozen=True, slots=True)
class Classification:
    status: outcome_pb2.OutcomeStatus
    # RFC 3463 "c.s.d"; parsed from the reply, else derived from the reply code.
    enhanced_status: str
    failure_class: FailureClass


_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")

# Local failures never have an SMTP reply; these RFC 3463 codes are what MTAs conventionally report.
_LOCAL: dict[LocalFailure, tuple[str, FailureClass]] = {
    LocalFailure.CONNECT: ("4.4.1", FailureClass.CONNECTION),  # no answer from host
    LocalFailure.DISCONNECTED: ("4.4.2", FailureClass.CONNECTION),  # bad connection
    LocalFailure.TIMEOUT: ("4.4.2", FailureClass.TIMEOUT),
    LocalFailure.TLS: ("4.7.5", FailureClass.TLS),  # cryptographic failure
    LocalFailure.PROTOCOL: ("4.5.0", FailureClass.PROTOCOL),
}

# Checked in this order on the lowercased text; the first match wins.
_RATE_WORDS = ("rate limit", "rate-limit", "ratelimit", "too many", "throttl", "slow down")
_POLICY_WORDS = (
    "spam", "blocklist", "blacklist", "blocked", "denied", "policy", "reputation",
    "spf", "dkim", "dmarc", "relay", "not permitted",
)  # fmt: skip
_MAILBOX_WORDS = (
    "user unknown", "unknown user", "no such user", "unknown recipient", "does not exist",
    "mailbox", "quota", "recipient rejected",
)  # fmt: skip
_CONTENT_WORDS = ("too large", "too big", "size limit", "virus", "malware", "content")


def parse_enhanced_status(text: str) -> str | None:
    """The RFC 3463 status at the start of ``text`` ("5.7.1 Denied" → "5.7.1"), else ``None``."""
    match = _ENHANCED.match(text)
    return ".".join(match.groups()) if match else None


def status_for_code(code: int) -> outcome_pb2.OutcomeStatus:
    """2xx delivers, 5xx bounces; 4xx and anything unexpected defers (retrying is the safe side)."""
    if 200 <= code < 300:
        return DELIVERED
    if 500 <= code < 600:
        return BOUNCED
    return DEFERRED


def classify_reply(code: int, text: str) -> Classification:
    """Classify the final reply the remote gave for a recipient (RCPT, DATA or an earlier refusal)."""
    if not (200 <= code < 300 or 400 <= code < 600):
        # 1xx/3xx (or garbage) where a final reply was due: the dialogue went wrong, try again later.
        return Classification(DEFERRED, "4.5.0", FailureClass.PROTOCOL)
    status = status_for_code(code)
    parsed = parse_enhanced_status(text)
    # RFC 3463: the class digit must match the reply; a mismatched one is not trusted.
    if parsed is not None and parsed[0] != str(code)[0]:
        parsed = None
    if status == DELIVERED:
        return Classification(status, parsed or "2.0.0", FailureClass.NONE)
    enhanced = parsed or ("5.0.0" if status == BOUNCED else "4.0.0")
    return Classification(status, enhanced, _failure_class(code, parsed, text.lower()))


def classify_local(failure: LocalFailure) -> Classification:
    """Classify a failure without an SMTP reply; always deferred, Baton tries again later."""
    enhanced, failure_class = _LOCAL[failure]
    return Classification(DEFERRED, enhanced, failure_class)


def _failure_class(code: int, enhanced: str | None, text: str) -> FailureClass:
    if any(word in text for word in _RATE_WORDS):
        return FailureClass.RATE_LIMIT
    if enhanced is not None:
        _, subject, detail = enhanced.split(".")
        if subject == "7":
            return FailureClass.POLICY
        if subject in ("1", "2"):
            return FailureClass.MAILBOX
        if subject == "6" or (subject == "3" and detail == "4"):
            return FailureClass.CONTENT
        if subject == "5":
            return FailureClass.PROTOCOL
        if subject == "4":
            return FailureClass.CONNECTION
    if any(word in text for word in _POLICY_WORDS):
        return FailureClass.POLICY
    if any(word in text for word in _MAILBOX_WORDS):
        return FailureClass.MAILBOX
    if any(word in text for word in _CONTENT_WORDS):
        return FailureClass.CONTENT
    if code in (500, 501, 502, 503, 504):
        return FailureClass.PROTOCOL
    if code == 421:
        return FailureClass.CONNECTION
    if code == 552:
        # RFC 5321: exceeded storage allocation (message too large for the mailbox).
        return FailureClass.CONTENT
    return FailureClass.OTHER
