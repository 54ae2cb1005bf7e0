"""Fuzz ingress's address policy and the router's recipient parsing, and check that they agree.

The input, decoded as aiosmtpd decodes a command argument (UTF-8 with surrogateescape), is used
twice: directly as an address (the pure policy functions' contract), and as the argument of
``RCPT TO:`` parsed by the ingress protocol's own ``_getaddr`` (what the policy sees in production).

Properties:

* the policy checks return ``None`` or a 5xx ``Reply`` with reason ``bad_address``, never raise;
* whatever is accepted without SMTPUTF8 is accepted with it too;
* the router's ``parse_recipient``/``encode_domain`` raise nothing but ``ValueError``, and
  ``encode_domain`` is idempotent (its output is the ``routed`` topic's key);
* every recipient the ingress policy accepts is routable: ``parse_recipient`` neither refuses it
  nor changes its local part.

Run: ``.venv/bin/python tests/fuzz/fuzz_addresses.py var/fuzz/corpus/fuzz_addresses
tests/fuzz/seeds/fuzz_addresses -max_total_time=60`` (or ``tests/fuzz/run.py``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["services", "dns.name", "idna", "ipaddress"]):
    from baton.settings import Settings
    from services.ingress import policy
    from services.ingress.server import IngressServer
    from services.router import addresses

REPO = Path(__file__).resolve().parents[2]
TLS_DIR = REPO / "var" / "fuzz" / "tls"


class Finding(AssertionError):
    """A property of the address code was violated (the fuzzer reports it as a crash)."""


def _make_getaddr() -> object:
    async def build() -> object:
        settings = Settings(smtp_hostname="mx.fuzz.test", smtp_dev_tls_dir=str(TLS_DIR), instance="fuzz")
        server = IngressServer(settings, _never_submit, engine=None)  # type: ignore[arg-type]
        # The protocol is never connected: only its (synchronous) address parser is used.
        return server._protocol()

    return asyncio.run(build())


async def _never_submit(envelope: object) -> None:
    raise AssertionError("nothing is submitted in this harness")


_PROTOCOL: object | None = None


def _ingress_parse(arg: str) -> str | None:
    """The address aiosmtpd + Baton's ``_getaddr`` extract from a RCPT/MAIL argument, if any."""
    global _PROTOCOL
    if _PROTOCOL is None:
        _PROTOCOL = _make_getaddr()
    address, _rest = _PROTOCOL._getaddr(arg)  # type: ignore[attr-defined]
    return address or None


def _check_reply(what: str, address: str, reply: policy.Reply | None) -> None:
    if reply is None:
        return
    if not isinstance(reply, policy.Reply) or not 500 <= reply.code < 600:
        raise Finding(f"{what}({address!r}) returned {reply!r}")
    if reply.reason is not policy.RejectReason.BAD_ADDRESS:
        raise Finding(f"{what}({address!r}) refused with reason {reply.reason!r}")


def _route(address: str) -> addresses.Recipient | None:
    """The router's parse; ``None`` when it refuses (ValueError), a Finding on anything else."""
    try:
        return addresses.parse_recipient(address)
    except ValueError:
        return None
    except Exception as exc:
        raise Finding(f"parse_recipient({address!r}) raised {exc!r}") from exc


def _encode(domain: str) -> str | None:
    try:
        encoded = addresses.encode_domain(domain)
    except ValueError:
        return None
    except Exception as exc:
        raise Finding(f"encode_domain({domain!r}) raised {exc!r}") from exc
    try:
        again = addresses.encode_domain(encoded)
    except Exception as exc:
        raise Finding(f"encode_domain({domain!r}) = {encoded!r} cannot be encoded again: {exc!r}") from exc
    if again != encoded:
        raise Finding(f"encode_domain not idempotent: {domain!r} -> {encoded!r} -> {again!r}")
    return encoded


def check_address(address: str) -> None:
    """Every property for one address as the policy would receive it."""
    accepted: dict[bool, bool] = {}
    for smtputf8 in (False, True):
        for what, check in (
            ("check_reverse_path", policy.check_reverse_path),
            ("check_mailbox", policy.check_mailbox),
        ):
            _check_reply(what, address, check(address, smtputf8=smtputf8))
        forward = policy.check_forward_path(address, smtputf8=smtputf8)
        _check_reply("check_forward_path", address, forward)
        accepted[smtputf8] = forward is None
    if accepted[False] and not accepted[True]:
        raise Finding(f"{address!r} accepted without SMTPUTF8 but refused with it")
    routed = _route(address)
    if accepted[True]:
        if routed is None:
            try:
                addresses.parse_recipient(address)
            except ValueError as exc:
                raise Finding(f"ingress accepts RCPT {address!r}, the router refuses it: {exc}") from exc
        local = address.rpartition("@")[0]
        if routed is not None and routed.local_part != local:
            raise Finding(f"router changed the local part of {address!r}: {routed.local_part!r}")
    _encode(address.rpartition("@")[2])


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    check_address(text)
    address = _ingress_parse(text)
    if address is not None and address != text:
        check_address(address)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
