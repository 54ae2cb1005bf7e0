"""The ingress SMTP server on loopback, driven by aiosmtplib and by raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from baton.settings import Settings
from baton.v1 import envelope_pb2
from services.ingress.errors import SubmitError
from services.ingress.server import IngressServer, start_smtp_server

UNTRUSTED = ["10.255.0.0/16"]


class Recorder:
    """The injected submit: records Envelopes; can be made to fail or to wait."""

    def __init__(self) -> None:
        self.envelopes: list[envelope_pb2.Envelope] = []
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, envelope: envelope_pb2.Envelope) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.envelopes.append(envelope)


StartServer = Callable[..., Awaitable[IngressServer]]


@pytest.fixture
def submit() -> Recorder:
    return Recorder()


@pytest.fixture
async def start(tmp_path: Path, submit: Recorder, engine: Engine) -> AsyncIterator[StartServer]:
    servers: list[IngressServer] = []

    async def _start(**overrides: Any) -> IngressServer:
        values: dict[str, Any] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": 0,
            "smtp_hostname": "mx.baton.test",
            "smtp_dev_tls_dir": str(tmp_path / "tls"),
            "smtp_timeout_s": 5.0,
            "smtp_greet_pause_s": 0.0,
            "instance": "ingress-test",
        }
        values.update(overrides)
        server = await start_smtp_server(Settings(**values), submit, engine)
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.stop(drain_timeout=1.0)


class Client:
    """A raw SMTP client over asyncio streams: sends exactly the bytes a test gives."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, preamble: bytes = b"", greet: bool = True) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        if preamble:
            writer.write(preamble)
        if greet:
            code, _ = await client.reply()
            assert code == 220
        return client

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 3)
            assert line, "connection closed"
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    async def cmd(self, line: str | bytes) -> tuple[int, str]:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def make_message(extra: dict[str, str] | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "app@client.example"
    msg["To"] = "rcpt@dest.example"
    msg["Subject"] = "hello"
    for name, value in (extra or {}).items():
        msg[name] = value
    msg.set_content("Hello there.\n")
    return msg


def rejections(reason: str) -> float:
    return REGISTRY.get_sample_value("baton_ingress_rejections_total", {"reason": reason}) or 0.0


async def test_accepted_mail_reaches_submit(start: StartServer, submit: Recorder) -> None:
    server = await start()
    msg = make_message({"X-PHP-Originating-Script": "1000:mailer.php"})
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False) as smtp:
        await smtp.ehlo(hostname="web1.client.example")
        assert smtp.supports_extension("pipelining")
        assert smtp.supports_extension("8bitmime")
        assert smtp.supports_extension("smtputf8")
        assert smtp.supports_extension("starttls")
        assert smtp.esmtp_extensions["size"] == str(server.settings.smtp_max_message_bytes)
        errors, answer = await smtp.send_message(msg)
    assert errors == {}
    assert answer.startswith("2.0.0 Ok: queued as ")
    assert len(submit.envelopes) == 1
    env = submit.envelopes[0]
    assert answer.endswith(env.message_id)
    assert len(env.message_id) == 26
    assert env.client_ip == "127.0.0.1"
    assert env.client_port > 0
    assert env.helo == "web1.client.example"
    assert env.mail_from == "app@client.example"
    assert list(env.rcpt_to) == ["rcpt@dest.example"]
    assert env.sender_identity == "ip:127.0.0.1"
    assert env.auth_user == ""
    assert env.php_script == "1000:mailer.php"
    assert env.ingress_host == "ingress-test"
    assert env.tls_version == ""
    assert env.received_at_ms > 0
    first, second, third = env.body.split(b"\r\n")[:3]
    assert first == b"Received: from web1.client.example (unknown [127.0.0.1])"
    assert second == f"\tby mx.baton.test (Baton) with ESMTP id {env.message_id}".encode()
    assert third.startswith(b"\tfor <rcpt@dest.example>; ")
    assert f"Message-ID: <{env.message_id}@mx.baton.test>\r\n".encode() in env.body
    assert env.body.endswith(b"\r\n\r\nHello there.\r\n")


async def test_raw_session_options_and_null_sender(start: StartServer, submit: Recorder) -> None:
    server = await start()
    client = await Client.connect(server.port)
    assert (await client.cmd("EHLO raw.example"))[0] == 250
    assert await client.cmd("MAIL FROM:<> BODY=8BITMIME SMTPUTF8") == (250, "250 2.1.0 Ok")
    assert await client.cmd("RCPT TO:<jörg@bücher.example>") == (250, "250 2.1.5 Ok")
    assert (await client.cmd("DATA"))[0] == 354
    client.writer.write(b"Message-ID: <own@client>\r\n\r\n..dot-stuffed\r\n.\r\n")
    code, text = await client.reply()
    assert code == 250
    await client.cmd("QUIT")
    await client.close()
    env = submit.envelopes[0]
    assert text.endswith(env.message_id)
    assert env.mail_from == ""
    assert env.body_type == "8BITMIME"
    assert env.smtputf8
    assert list(env.rcpt_to) == ["jörg@bücher.example"]
    assert b"with UTF8SMTP id" in env.body
    assert env.body.count(b"Message-ID") == 1
    assert env.body.endswith(b"\r\n\r\n.dot-stuffed\r\n")


@pytest.mark.parametrize("error", [SubmitError("x", "ack timeout"), RuntimeError("producer broke")])
async def test_failing_submit_gives_451_never_250(
    start: StartServer, submit: Recorder, error: Exception
) -> None:
    server = await start()
    submit.error = error
    before = rejections("tempfail_kafka")
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False) as smtp:
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await smtp.send_message(make_message())
    assert info.value.code == 451
    assert info.value.message.startswith("4.3.0 ")
    assert submit.envelopes == []
    assert rejections("tempfail_kafka") == before + 1


async def test_relay_denied_from_untrusted_network(start: StartServer, submit: Recorder) -> None:
    server = await start(smtp_trusted_networks=UNTRUSTED)
    before = rejections("relay_denied")
    client = await Client.connect(server.port)
    await client.cmd("EHLO untrusted.example")
    assert (await client.cmd("MAIL FROM:<a@client.example>"))[0] == 250
    assert await client.cmd("RCPT TO:<b@dest.example>") == (550, "550 5.7.1 relay denied")
    assert (await client.cmd("DATA"))[0] == 503
    await client.close()
    assert submit.envelopes == []
    assert rejections("relay_denied") == before + 1


@pytest.mark.parametrize(
    "address",
    [
        "<@relay.example,@b.example:user@c.example>",
        "<user%c.example@relay.example>",
        "<c.example!user>",
        "<user>",
    ],
)
async def test_relay_tricks_refused(start: StartServer, address: str) -> None:
    server = await start()
    client = await Client.connect(server.port)
    await client.cmd("EHLO c.example")
    await client.cmd("MAIL FROM:<a@client.example>")
    code, text = await client.cmd(f"RCPT TO:{address}")
    assert (code, text[4:9]) == (553, "5.1.3")
    await client.close()


async def test_non_ascii_address_needs_smtputf8(start: StartServer) -> None:
    server = await start()
    client = await Client.connect(server.port)
    await client.cmd("EHLO c.example")
    assert (await client.cmd("MAIL FROM:<jörg@bücher.example>"))[0] == 553
    await client.close()


async def test_too_many_recipients(start: StartServer) -> None:
    server = await start(smtp_max_recipients=2)
    client = await Client.connect(server.port)
    await client.cmd("EHLO c.example")
    await client.cmd("MAIL FROM:<a@client.example>")
    assert (await client.cmd("RCPT TO:<1@dest.example>"))[0] == 250
    assert (await client.cmd("RCPT TO:<2@dest.example>"))[0] == 250
    assert await client.cmd("RCPT TO:<3@dest.example>") == (452, "452 4.5.3 too many recipients")
    await client.close()


async def test_size_exceeded(start: StartServer, submit: Recorder) -> None:
    server = await start(smtp_max_message_bytes=2048)
    before = rejections("too_big")
    client = await Client.connect(server.port)
    await client.cmd("EHLO c.example")
    assert await client.cmd("MAIL FROM:<a@client.example> SIZE=4096") == (552, "552 5.3.4 message too big")
    assert (await client.cmd("MAIL FROM:<a@client.example> SIZE=1000"))[0] == 250
    await client.cmd("RCPT TO:<b@dest.example>")
    assert (await client.cmd("DATA"))[0] == 354
    client.writer.write(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n")
    client.writer.write((b"y" * 70 + b"\r\n") * 40 + b".\r\n")
    assert await client.reply() == (552, "552 5.3.4 message too big")
    await client.close()
    assert submit.envelopes == []
    assert rejections("too_big") == before + 2


SMUGGLING = [
    b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<x@evil.example>\nRCPT TO:<v@dest.example>\nDATA\nsmuggled\n",
    b"Subject: a\r\n\r\nbody\n.\r\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<v@dest.example>\r\n"
    b"DATA\r\nsmuggled\r\n",
    b"Subject: a\r\n\r\nbody\r.\rMAIL FROM:<x@evil.example>\rRCPT TO:<v@dest.example>\rDATA\rsmuggled\r\n",
    b"Subject: a\r\n\r\nbody\r\n.\nMAIL FROM:<x@evil.example>\r\n",
    b"Subject: a\nX: b\r\n\r\nbody\r\n",
]


@pytest.mark.parametrize("payload", SMUGGLING)
async def test_bare_newlines_rejected_and_never_split_a_message(
    start: StartServer, submit: Recorder, payload: bytes
) -> None:
    server = await start()
    before = rejections("bare_newline")
    client = await Client.connect(server.port)
    await client.cmd("EHLO c.example")
    await client.cmd("MAIL FROM:<a@client.example>")
    await client.cmd("RCPT TO:<b@dest.example>")
    assert (await client.cmd("DATA"))[0] == 354
    client.writer.write(payload + b"\r\n.\r\n")
    assert await client.reply() == (550, "550 5.5.2 bare newline not allowed")
    # The session is intact and exactly one transaction follows: the legitimate one.
    assert await client.cmd("NOOP") == (250, "250 OK")
    await client.cmd("MAIL FROM:<a@client.example>")
    await client.cmd("RCPT TO:<b@dest.example>")
    await client.cmd("DATA")
    assert (await client.cmd(b"Subject: ok\r\n\r\nfine\r\n."))[0] == 250
    await client.close()
    assert len(submit.envelopes) == 1
    assert b"smuggled" not in submit.envelopes[0].body
    assert rejections("bare_newline") == before + 1


async def test_backpressure_answers_451(start: StartServer, submit: Recorder) -> None:
    server = await start(smtp_max_pending=1)
    submit.gate = asyncio.Event()
    first = await Client.connect(server.port)
    await first.cmd("EHLO one.example")
    await first.cmd("MAIL FROM:<a@client.example>")
    await first.cmd("RCPT TO:<b@dest.example>")
    await first.cmd("DATA")
    first.writer.write(b"Subject: 1\r\n\r\nx\r\n.\r\n")
    await asyncio.wait_for(submit.entered.wait(), 2)

    before = rejections("backpressure")
    second = await Client.connect(server.port)
    await second.cmd("EHLO two.example")
    code, text = await second.cmd("MAIL FROM:<a@client.example>")
    assert (code, text[4:9]) == (451, "4.3.0")
    assert rejections("backpressure") == before + 1

    submit.gate.set()
    assert (await first.reply())[0] == 250
    assert (await second.cmd("MAIL FROM:<a@client.example>"))[0] == 250
    await first.close()
    await second.close()


async def test_drain_finishes_open_transactions(start: StartServer, submit: Recorder) -> None:
    server = await start()
    port = server.port
    submit.gate = asyncio.Event()
    busy = await Client.connect(port)
    await busy.cmd("EHLO busy.example")
    await busy.cmd("MAIL FROM:<a@client.example>")
    await busy.cmd("RCPT TO:<b@dest.example>")
    await busy.cmd("DATA")
    busy.writer.write(b"Subject: 1\r\n\r\nx\r\n.\r\n")
    await asyncio.wait_for(submit.entered.wait(), 2)
    idle = await Client.connect(port)
    await idle.cmd("EHLO idle.example")

    stopping = asyncio.create_task(server.stop(drain_timeout=3.0))
    assert (await idle.reply())[0] == 421
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    assert not stopping.done()
    submit.gate.set()
    assert (await busy.reply())[0] == 250
    await asyncio.wait_for(stopping, 2)
    assert len(submit.envelopes) == 1
    await busy.close()
    await idle.close()


def proxy_v2(src: str, sport: int) -> bytes:
    addresses = bytes(int(p) for p in src.split(".")) + bytes([127, 0, 0, 1]) + struct.pack("!HH", sport, 25)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


@pytest.mark.parametrize(
    "header",
    [b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n", proxy_v2("203.0.113.7", 40000)],
    ids=["v1", "v2"],
)
async def test_proxy_header_gives_real_client(start: StartServer, submit: Recorder, header: bytes) -> None:
    server = await start(smtp_proxy_protocol=True, smtp_trusted_networks=["203.0.113.0/24"])
    client = await Client.connect(server.port, preamble=header)
    await client.cmd("EHLO lb.example")
    await client.cmd("MAIL FROM:<a@client.example>")
    assert (await client.cmd("RCPT TO:<b@dest.example>"))[0] == 250
    await client.cmd("DATA")
    assert (await client.cmd(b"Subject: p\r\n\r\nx\r\n."))[0] == 250
    await client.close()
    env = submit.envelopes[0]
    assert (env.client_ip, env.client_port) == ("203.0.113.7", 40000)
    assert env.sender_identity == "ip:203.0.113.7"
    assert b"(unknown [203.0.113.7])" in env.body


async def test_proxied_untrusted_client_is_denied_even_from_trusted_balancer(start: StartServer) -> None:
    # 127.0.0.1 (the balancer) is trusted, the proxied client is not: the policy must use the latter.
    server = await start(smtp_proxy_protocol=True)
    client = await Client.connect(server.port, preamble=b"PROXY TCP4 198.51.100.9 127.0.0.1 1234 25\r\n")
    await client.cmd("EHLO lb.example")
    await client.cmd("MAIL FROM:<a@client.example>")
    assert (await client.cmd("RCPT TO:<b@dest.example>"))[0] == 550
    await client.close()


async def test_missing_proxy_header_closes_connection(start: StartServer) -> None:
    server = await start(smtp_proxy_protocol=True)
    client = await Client.connect(server.port, preamble=b"EHLO no-proxy.example\r\n", greet=False)
    assert await asyncio.wait_for(client.reader.read(), 3) == b""
    await client.close()
