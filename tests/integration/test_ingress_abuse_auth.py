"""AUTH abuse over STARTTLS: malformed exchanges and the brute-force throttle (per IP, per user)."""

from __future__ import annotations

import contextlib
import ssl
from base64 import b64encode
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from services.ingress import accounts
from services.ingress.server import IngressServer, start_smtp_server
from tests.integration.test_ingress_abuse import Raw, Recorder, matches, settings

USER, PASSWORD = "alice@client.example", "correct horse"


def plain(user: str, password: str, authzid: str = "") -> str:
    return b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return b64encode(text.encode()).decode()


@pytest.fixture
def engine(engine: Engine) -> Engine:
    """The shared scratch store, with one account."""
    accounts.add_account(engine, USER, PASSWORD)
    return engine


StartServer = Callable[..., Awaitable[IngressServer]]


@pytest.fixture
async def start(tmp_path: Path, engine: Engine) -> AsyncIterator[StartServer]:
    servers: list[IngressServer] = []

    async def _start(**overrides: Any) -> IngressServer:
        values = {"smtp_trusted_networks": ["10.255.0.0/16"], **overrides}
        server = await start_smtp_server(settings(tmp_path, **values), Recorder(), engine)
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.stop(drain_timeout=1.0)


async def tls_client(port: int, source: str = "127.0.0.1") -> Raw:
    client = await Raw.connect(port, source=source)
    assert matches(await client.reply(), "220")
    client.writer.write(b"EHLO client.example\r\nSTARTTLS\r\n")
    assert matches(await client.reply(), "250")
    assert matches(await client.reply(), "220")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    await client.writer.start_tls(context)
    client.writer.write(b"EHLO client.example\r\n")
    assert matches(await client.reply(), "250")
    return client


async def close(client: Raw) -> None:
    client.writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await client.writer.wait_closed()


# (id, lines sent one by one, expected reply to each)
AUTH_CASES: list[tuple[str, list[str], list[str]]] = [
    ("unknown-mechanism", ["AUTH CRAM-MD5"], ["504 5.5.4"]),
    ("unknown-mechanism-with-data", ["AUTH XOAUTH2 dXNlcj1h"], ["504 5.5.4"]),
    ("no-mechanism", ["AUTH"], ["501 5.5.4"]),
    ("too-many-arguments", ["AUTH PLAIN a b"], ["501 5.5.4"]),
    ("plain-bad-base64", ["AUTH PLAIN !!!notbase64"], ["501 5.5.2"]),
    ("plain-bad-base64-challenge", ["AUTH PLAIN", "%%%"], ["334", "501 5.5.2"]),
    ("plain-no-nul-separators", [f"AUTH PLAIN {b64('alicepassword')}"], ["501 5.5.2"]),
    ("plain-empty-username", [f"AUTH PLAIN {plain('', PASSWORD)}"], ["535 5.7.8"]),
    ("plain-empty-password", [f"AUTH PLAIN {plain(USER, '')}"], ["535 5.7.8"]),
    ("plain-other-authzid", [f"AUTH PLAIN {plain(USER, PASSWORD, 'bob@client.example')}"], ["535 5.7.8"]),
    ("plain-invalid-utf8", ["AUTH PLAIN " + b64encode(b"\0\xff\xfe\0x").decode()], ["535 5.7.8"]),
    ("login-bad-base64-username", ["AUTH LOGIN", "@@@"], ["334", "501 5.5.2"]),
    ("login-aborted", ["AUTH LOGIN", "*"], ["334", "501 5.7.0"]),
    ("login-wrong-password", ["AUTH LOGIN", b64(USER), b64("nope")], ["334", "334", "535 5.7.8"]),
    (
        "auth-twice",
        [f"AUTH PLAIN {plain(USER, PASSWORD)}", f"AUTH PLAIN {plain(USER, PASSWORD)}"],
        ["235 2.7.0", "503 5.5.1"],
    ),
]


def test_auth_case_count() -> None:
    print(f"\nAUTH abuse cases: {len(AUTH_CASES)}")


@pytest.mark.parametrize(("lines", "expect"), [c[1:] for c in AUTH_CASES], ids=[c[0] for c in AUTH_CASES])
async def test_auth_abuse(start: StartServer, lines: list[str], expect: list[str]) -> None:
    server = await start()
    client = await tls_client(server.port)
    try:
        for line, expected in zip(lines, expect, strict=True):
            client.writer.write(line.encode() + b"\r\n")
            answer = await client.reply()
            assert matches(answer, expected), (line, answer)
        # The session survives: a correct login works unless one already succeeded.
        client.writer.write(b"NOOP\r\n")
        assert matches(await client.reply(), "250")
    finally:
        await close(client)


def throttled(scope: str) -> float:
    return REGISTRY.get_sample_value("baton_ingress_auth_throttled_total", {"scope": scope}) or 0.0


async def attempt(port: int, user: str, password: str, source: str = "127.0.0.1") -> str:
    client = await tls_client(port, source)
    try:
        client.writer.write(f"AUTH PLAIN {plain(user, password)}\r\n".encode())
        return await client.reply()
    finally:
        await close(client)


async def test_throttle_per_ip(start: StartServer) -> None:
    server = await start(smtp_auth_max_failures_per_ip=3, smtp_auth_max_failures_per_user=100)
    before = throttled("ip")
    answers = [await attempt(server.port, f"guess{i}@client.example", "x") for i in range(3)]
    assert all(matches(a, "535 5.7.8") for a in answers)
    # The right password from the throttled IP is not even checked.
    assert matches(await attempt(server.port, USER, PASSWORD), "454 4.7.0")
    assert matches(await attempt(server.port, USER, "x"), "454 4.7.0")
    assert throttled("ip") == before + 2
    # Another IP logs in normally.
    assert matches(await attempt(server.port, USER, PASSWORD, source="127.0.0.5"), "235 2.7.0")


async def test_throttle_per_user(start: StartServer) -> None:
    server = await start(smtp_auth_max_failures_per_ip=100, smtp_auth_max_failures_per_user=3)
    before = throttled("user")
    for i in range(3):
        assert matches(await attempt(server.port, USER, "x", source=f"127.0.1.{i + 1}"), "535 5.7.8")
    # Distributed guessing for alice stops, from any IP, even with the right password...
    assert matches(await attempt(server.port, USER, PASSWORD, source="127.0.2.1"), "454 4.7.0")
    assert throttled("user") == before + 1
    # ...while other users are unaffected.
    assert matches(await attempt(server.port, "mallory@client.example", "x", source="127.0.2.1"), "535 5.7.8")
