"""Baton is never an open relay: an unauthenticated client outside the trusted networks cannot relay,
and AUTH is not possible before STARTTLS."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiosmtplib
import pytest

from tests.e2e.harness import make_message, wait_until, world

pytestmark = pytest.mark.e2e


async def _relay_attempt(port: int, source: str) -> int:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, timeout=10, start_tls=False, source_address=(source, 0)
    )
    await client.connect()
    try:
        await client.send_message(make_message("victim@alpha.test"))
        return 250
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return exc.recipients[0].code
    finally:
        await client.quit()


async def _auth_without_tls(port: int) -> tuple[bool, int]:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10, start_tls=False)
    await client.connect()
    try:
        await client.ehlo()
        offered = client.supports_extension("auth")
        reply = await client.execute_command(b"AUTH", b"PLAIN", b"AHVzZXIAcGFzcw==")
        return offered, reply.code
    finally:
        await client.quit()


async def _auth_after_tls(port: int, user: str, password: str) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=port,
        timeout=10,
        start_tls=True,
        tls_context=context,
        source_address=("127.0.0.1", 0),
    )
    await client.connect()
    try:
        await client.login(user, password)
        await client.send_message(make_message("friend@beta.test"))
        return 250
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code
    finally:
        await client.quit()


def test_untrusted_unauthenticated_client_cannot_relay(tmp_path: Path) -> None:
    # Only 127.0.0.9 is trusted; the test client connects from 127.0.0.1.
    with world(tmp_path, BATON_SMTP_TRUSTED_NETWORKS='["127.0.0.9/32"]') as w:
        assert asyncio.run(_relay_attempt(w.smtp_port, "127.0.0.1")) == 550
        assert asyncio.run(_relay_attempt(w.smtp_port, "127.0.0.9")) == 250

        offered, code = asyncio.run(_auth_without_tls(w.smtp_port))
        assert not offered
        assert code in (530, 538)

        from baton.store import make_engine
        from services.ingress.accounts import add_account

        engine = make_engine(w.relay.settings().database_url)
        add_account(engine, "app@example.org", "correct horse battery staple")
        engine.dispose()
        assert asyncio.run(_auth_after_tls(w.smtp_port, "app@example.org", "wrong")) == 535
        assert (
            asyncio.run(_auth_after_tls(w.smtp_port, "app@example.org", "correct horse battery staple"))
            == 250
        )
        assert wait_until(lambda: len(w.delivered()) == 2, 60)
