"""STARTTLS and SMTP AUTH against real accounts in a SQLite file, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from base64 import b64encode
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import Engine

from baton.settings import Settings
from baton.v1 import envelope_pb2
from services.ingress import accounts
from services.ingress.server import IngressServer, start_smtp_server


@pytest.fixture
def engine(engine: Engine) -> Engine:
    """The shared scratch store, with one account."""
    accounts.add_account(engine, "alice@client.example", "correct horse")
    return engine


@pytest.fixture
def envelopes() -> list[envelope_pb2.Envelope]:
    return []


@pytest.fixture
async def server(
    tmp_path: Path, engine: Engine, envelopes: list[envelope_pb2.Envelope]
) -> AsyncIterator[IngressServer]:
    async def submit(envelope: envelope_pb2.Envelope) -> None:
        envelopes.append(envelope)

    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=0,
        smtp_hostname="mx.baton.test",
        smtp_dev_tls_dir=str(tmp_path / "tls"),
        # 127.0.0.1 is untrusted here: only AUTH lets it relay.
        smtp_trusted_networks=["10.255.0.0/16"],
        smtp_timeout_s=5.0,
        smtp_greet_pause_s=0.0,
    )
    srv = await start_smtp_server(settings, submit, engine)
    yield srv
    await srv.stop(drain_timeout=1.0)


def client(server: IngressServer) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False, validate_certs=False)


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@client.example"
    msg["To"] = "bob@dest.example"
    msg["Subject"] = "auth"
    msg.set_content("hi\n")
    return msg


async def test_auth_not_offered_nor_accepted_before_starttls(server: IngressServer) -> None:
    async with client(server) as smtp:
        await smtp.ehlo(hostname="c.example")
        assert not smtp.supports_extension("auth")
        response = await smtp.execute_command(
            b"AUTH", b"PLAIN", b64encode(b"\0alice@client.example\0correct horse")
        )
        assert (response.code, response.message[:6]) == (538, "5.7.11")
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
            await smtp.send_message(message())
        assert info.value.recipients[0].code == 550


@pytest.mark.parametrize("mechanism", ["auth_plain", "auth_login"])
async def test_auth_after_starttls_lets_client_relay(
    server: IngressServer, envelopes: list[envelope_pb2.Envelope], mechanism: str
) -> None:
    async with client(server) as smtp:
        await smtp.starttls()
        await smtp.ehlo(hostname="c.example")
        assert set(smtp.server_auth_methods) == {"plain", "login"}
        response = await getattr(smtp, mechanism)("alice@client.example", "correct horse")
        assert response.code == 235
        errors, _ = await smtp.send_message(message())
        assert errors == {}
    env = envelopes[0]
    assert env.auth_user == "alice@client.example"
    assert env.sender_identity == "auth:alice@client.example"
    assert env.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert b" with ESMTPSA id " in env.body


@pytest.mark.parametrize("mechanism", ["auth_plain", "auth_login"])
async def test_wrong_password_fails(server: IngressServer, mechanism: str) -> None:
    async with client(server) as smtp:
        await smtp.starttls()
        await smtp.ehlo(hostname="c.example")
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await getattr(smtp, mechanism)("alice@client.example", "wrong")
        assert info.value.code == 535
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await getattr(smtp, mechanism)("mallory@client.example", "correct horse")
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await smtp.send_message(message())


async def test_repeated_failures_disconnect(server: IngressServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        await reader.readline()
        writer.write(b"EHLO c.example\r\n")
        while (await reader.readline())[3:4] == b"-":
            pass
        writer.write(b"STARTTLS\r\n")
        assert (await reader.readline()).startswith(b"220")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        await writer.start_tls(context)
        writer.write(b"EHLO c.example\r\n")
        while (await reader.readline())[3:4] == b"-":
            pass
        bad = b64encode(b"\0alice@client.example\0nope")
        answers = []
        for _ in range(3):
            writer.write(b"AUTH PLAIN " + bad + b"\r\n")
            answers.append((await reader.readline())[:3])
        assert answers == [b"535", b"535", b"421"]
        assert await asyncio.wait_for(reader.read(), 3) == b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
