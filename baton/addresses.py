"""Mail address helpers every stage must agree on (pure)."""

from __future__ import annotations

import dns.exception
import dns.name


def encode_domain(domain: str) -> str:
    """Lowercase, IDNA 2008 (UTS 46 mapped) A-label form without the final dot; ``ValueError`` if invalid.

    Ingress uses it to refuse a recipient domain that the router could never route, so a 250 to
    RCPT is never followed by a bounce for a syntax reason.
    """
    text = domain.strip().rstrip(".").lower()
    if not text:
        raise ValueError("empty domain")
    try:
        name = dns.name.from_unicode(text, idna_codec=dns.name.IDNA_2008_Practical)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise ValueError(f"invalid domain {domain!r}: {exc}") from exc
    encoded = name.to_text(omit_final_dot=True).lower()
    if encoded.startswith(".") or ".." in encoded:
        raise ValueError(f"invalid domain {domain!r}")
    return encoded
