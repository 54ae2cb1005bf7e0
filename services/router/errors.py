"""The router's exception hierarchy; ``retriable`` decides whether the stage loop tries the record again.

A permanent DNS failure also carries what its bounce needs: a ``reason`` (metric label) and an RFC 3463
enhanced status code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from baton.kafka.stage import InvalidRecord, RetriableError


class BounceReason(StrEnum):
    """Why the router bounced a recipient; the label of ``baton_router_recipients_bounced_total``."""

    # The destination domain does not exist (NXDOMAIN on the MX query).
    NO_SUCH_DOMAIN = "no_such_domain"
    # The domain publishes a null MX (RFC 7505): it accepts no mail at all.
    NULL_MX = "null_mx"
    # MX records exist but every MX host name is invalid or does not exist.
    NO_MAIL_HOST = "no_mail_host"
    # No MX records and no A/AAAA records for the domain itself: nothing to connect to.
    NO_ADDRESS = "no_address"
    # The recipient address cannot be parsed or its domain cannot be IDNA-encoded.
    BAD_ADDRESS = "bad_address"


class RouterError(Exception):
    """Base of every error the router raises on purpose."""

    retriable: bool = False


class InvalidMessage(RouterError, InvalidRecord):
    """The record cannot be routed at all (no envelope, unspecified verdict); it belongs in the DLQ."""


class DnsError(RouterError):
    """A DNS lookup did not give a usable answer."""

    def __init__(self, name: str, rdtype: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.rdtype = rdtype


class DnsTemporaryError(DnsError, RetriableError):
    """Timeout, SERVFAIL/REFUSED, no usable nameserver: the same lookup may work later.

    A ``RetriableError``, so the shared stage loop retries the record instead of dead-lettering it.
    """

    retriable = True


class DnsTimeout(DnsTemporaryError):
    """No nameserver answered within ``dns_timeout_s``."""


class DnsServerFailure(DnsTemporaryError):
    """Every nameserver failed (SERVFAIL, REFUSED, network error)."""


class NoReachableHost(DnsTemporaryError):
    """MX hosts exist but none resolved to an address, and not all of them were NXDOMAIN."""


class DnsPermanentError(DnsError):
    """The DNS says mail to this domain can never be delivered; its recipients bounce."""

    reason: ClassVar[BounceReason]
    # RFC 3463 enhanced status written into the bounce Outcome.
    enhanced_status: ClassVar[str]


class NoSuchDomain(DnsPermanentError):
    """NXDOMAIN: the destination domain does not exist."""

    reason = BounceReason.NO_SUCH_DOMAIN
    enhanced_status = "5.1.2"


class NullMx(DnsPermanentError):
    """RFC 7505 null MX: the domain declares that it accepts no mail."""

    reason = BounceReason.NULL_MX
    # RFC 7505 section 4.2 assigns X.1.10 to "recipient address has null MX".
    enhanced_status = "5.1.10"


class NoMailHost(DnsPermanentError):
    """Every MX host name is invalid or NXDOMAIN, so there is no next hop (RFC 3463 X.4.4)."""

    reason = BounceReason.NO_MAIL_HOST
    enhanced_status = "5.4.4"


class NoAddress(DnsPermanentError):
    """No MX and no A/AAAA records for the domain: it is not mail-capable (RFC 5321 section 5.1)."""

    reason = BounceReason.NO_ADDRESS
    enhanced_status = "5.4.4"
