"""The SMTP abuse suite: bad input sent over raw sockets to the real ingress server on loopback.

Every case in ``CASES`` is a script of (bytes sent, replies expected) run on one connection; the
expected reply is the exact basic code plus the enhanced status where Baton sends one. After every
case a good client runs a full transaction on a fresh connection (no case may crash or wedge the
server), and the Envelopes the recording ``submit`` got are counted, so nothing a case smuggles in
can become a message.

Decisions the cases pin down (each documented where it is enforced):
* bare CR / bare LF anywhere in DATA: ``550 5.5.2`` like Postfix's smtpd_forbid_bare_newline, and
  the session goes on; commands still end at LF (aiosmtpd), which cannot smuggle anything because
  only CRLF.CRLF ends DATA and DATA is then refused;
* command lines over 512 octets with CRLF: ``500 5.5.2 line too long`` (RFC 5321 4.5.3.1.4; MAIL
  gets the SIZE and SMTPUTF8 allowance of RFC 1870 / 6531 once, however many EHLOs);
* message lines over 998 octets (+ CRLF): refused ``500 5.5.2`` rather than folded as Postfix
  does (``message.has_long_line`` says why);
* 8-bit header bytes need BODY=8BITMIME or SMTPUTF8 (``550 5.6.0``); an 8-bit body without
  BODY=8BITMIME is accepted, as Postfix does, because too many applications send one;
* paths must be in angle brackets (``501 5.5.4``); an address literal recipient must be public.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import Engine

from baton.settings import Settings
from baton.v1 import envelope_pb2
from services.ingress.server import IngressServer, start_smtp_server

# The abusive client connects from 127.0.0.1; the good client from 127.0.0.2 stays trusted.
GOOD_SOURCE = "127.0.0.2"
UNTRUSTED = {"smtp_trusted_networks": [f"{GOOD_SOURCE}/32"]}
MAX_RCPT = 3
MAX_BYTES = 4096
# Text no accepted Envelope may ever contain: it only appears after a smuggled end of data or in
# an injected header.
POISON = (b"smuggled", b"evil.example", b"X-Injected")


class Recorder:
    """The injected submit: records every Envelope it is handed."""

    def __init__(self) -> None:
        self.envelopes: list[envelope_pb2.Envelope] = []

    async def __call__(self, envelope: envelope_pb2.Envelope) -> None:
        self.envelopes.append(envelope)


StartServer = Callable[..., Awaitable[IngressServer]]


@pytest.fixture
def submit() -> Recorder:
    return Recorder()


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": 0,
        "smtp_hostname": "mx.baton.test",
        "smtp_dev_tls_dir": str(tmp_path / "tls"),
        "smtp_timeout_s": 5.0,
        "smtp_greet_pause_s": 0.0,
        "smtp_max_recipients": MAX_RCPT,
        "smtp_max_message_bytes": MAX_BYTES,
        "instance": "ingress-abuse",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def start(tmp_path: Path, submit: Recorder, engine: Engine) -> AsyncIterator[StartServer]:
    servers: list[IngressServer] = []

    async def _start(**overrides: Any) -> IngressServer:
        server = await start_smtp_server(settings(tmp_path, **overrides), submit, engine)
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.stop(drain_timeout=1.0)


class Raw:
    """A raw SMTP client over asyncio streams: sends exactly the bytes it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, source: str = "127.0.0.1") -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        return cls(reader, writer)

    async def reply(self, wait_s: float = 3.0) -> str:
        """One complete (possibly multi-line) reply; its last line is returned."""
        while True:
            line = await asyncio.wait_for(self.reader.readline(), wait_s)
            assert line, "connection closed"
            if line[3:4] != b"-":
                return line.decode("utf-8", "replace").rstrip("\r\n")

    async def closed(self, wait_s: float = 3.0) -> bool:
        return await asyncio.wait_for(self.reader.read(), wait_s) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def matches(reply: str, expected: str) -> bool:
    """``expected`` is the code, or code and enhanced status: "503 5.5.1", "354"."""
    return reply == expected or reply.startswith(expected + " ")


# --- the case table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    send: bytes
    # Replies in order; several when the step pipelines several commands.
    expect: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    steps: tuple[Step, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    # Envelopes the case itself must produce (a good transaction inside it, or a positive control).
    submits: int = 0
    # The server must close the connection after the last step.
    closes: bool = False
    # Greet: read the 220 banner before the first step (False for early talkers).
    greet: bool = True


def step(send: bytes | str, *expect: str) -> Step:
    return Step(send.encode("utf-8", "surrogateescape") if isinstance(send, str) else send, expect)


def cmd(line: bytes | str, *expect: str) -> Step:
    raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
    return Step(raw + b"\r\n", expect)


EHLO = cmd("EHLO client.example", "250")
MAIL = cmd("MAIL FROM:<app@client.example>", "250 2.1.0")
RCPT = cmd("RCPT TO:<rcpt@dest.example>", "250 2.1.5")
DATA = cmd("DATA", "354")
GOOD_BODY = b"Subject: good\r\n\r\nfine\r\n.\r\n"
# A complete good transaction on the same connection: proves the session survived the case.
AGAIN = (MAIL, RCPT, DATA, step(GOOD_BODY, "250 2.0.0"))
SMUGGLED = (
    b"MAIL FROM:<smuggler@evil.example>\r\nRCPT TO:<victim@dest.example>\r\nDATA\r\n"
    b"Subject: smuggled\r\n\r\nsmuggled\r\n"
)


def case(
    id: str,
    category: str,
    *steps: Step,
    submits: int = 0,
    closes: bool = False,
    greet: bool = True,
    **overrides: Any,
) -> Case:
    return Case(id, category, steps, overrides, submits, closes, greet)


def rcpt_case(id: str, address: str, expect: str, **overrides: Any) -> Case:
    return case(id, "open_relay", EHLO, MAIL, cmd(f"RCPT TO:{address}", expect), **overrides)


def mail_case(id: str, category: str, line: str | bytes, expect: str, **overrides: Any) -> Case:
    return case(id, category, EHLO, cmd(line, expect), **overrides)


def data_case(id: str, category: str, body: bytes, expect: str, mail: Step = MAIL, **overrides: Any) -> Case:
    """A transaction whose message is ``body`` (the caller ends it with CRLF.CRLF)."""
    accepted = expect.startswith("250")
    tail = () if accepted else AGAIN
    return case(id, category, EHLO, mail, RCPT, DATA, step(body, expect), *tail, submits=1, **overrides)


def smuggle(id: str, fake_end: bytes) -> Case:
    body = b"Subject: a\r\n\r\nbody" + fake_end + SMUGGLED + b"\r\n.\r\n"
    return data_case(f"smuggle-{id}", "smuggling", body, "550 5.5.2")


LONG_LOCAL = "l" * 65
CASES: list[Case] = [
    # --- open relay patterns and address syntax ----------------------------------------------
    rcpt_case("percent-hack", "<user%other.example@relay.example>", "553 5.1.3"),
    rcpt_case("percent-hack-double", "<a%b%c.example@relay.example>", "553 5.1.3"),
    rcpt_case("bang-path", "<other.example!user@relay.example>", "553 5.1.3"),
    rcpt_case("bang-path-no-domain", "<other.example!user>", "553 5.1.3"),
    rcpt_case("source-route", "<@a.example,@b.example:user@c.example>", "553 5.1.3"),
    rcpt_case("source-route-single", "<@a.example:user@c.example>", "553 5.1.3"),
    rcpt_case("quoted-at", '<"user@other.example"@relay.example>', "553 5.1.3"),
    rcpt_case("quoted-percent", '<"user%other.example"@relay.example>', "553 5.1.3"),
    rcpt_case("quoted-bang", '<"other.example!user"@relay.example>', "553 5.1.3"),
    rcpt_case("quoted-colon", '<"@a.example:user"@relay.example>', "553 5.1.3"),
    rcpt_case("untrusted-external", "<victim@dest.example>", "550 5.7.1", **UNTRUSTED),
    rcpt_case("untrusted-local-looking", "<postmaster@mx.baton.test>", "550 5.7.1", **UNTRUSTED),
    rcpt_case("untrusted-ip-literal", "<victim@[1.1.1.1]>", "550 5.7.1", **UNTRUSTED),
    rcpt_case("literal-loopback", "<user@[127.0.0.1]>", "553 5.1.3"),
    rcpt_case("literal-private", "<user@[10.1.2.3]>", "553 5.1.3"),
    rcpt_case("literal-link-local", "<user@[169.254.169.254]>", "553 5.1.3"),
    rcpt_case("literal-unspecified", "<user@[0.0.0.0]>", "553 5.1.3"),
    rcpt_case("literal-ipv6-loopback", "<user@[IPv6:::1]>", "553 5.1.3"),
    rcpt_case("literal-ipv6-untagged", "<user@[2606:4700::1111]>", "553 5.1.3"),
    rcpt_case("literal-invalid", "<user@[300.1.1.1]>", "553 5.1.3"),
    rcpt_case("literal-public-trusted-ok", "<user@[1.1.1.1]>", "250 2.1.5"),
    rcpt_case("null-recipient", "<>", "553 5.1.3"),
    rcpt_case("no-angle-brackets", "victim@dest.example", "501 5.5.4"),
    rcpt_case("no-angle-brackets-space", " victim@dest.example", "501 5.5.4"),
    rcpt_case("unclosed-bracket", "<victim@dest.example", "501 5.5.4"),
    rcpt_case("trailing-garbage", "<victim@dest.example> garbage", "555 5.5.4"),
    rcpt_case("trailing-garbage-glued", "<victim@dest.example>garbage", "555 5.5.4"),
    rcpt_case("trailing-bracket", "<victim@dest.example>>", "501 5.5.4"),
    rcpt_case("second-address", "<victim@dest.example> <other@dest.example>", "501 5.5.4"),
    rcpt_case("rcpt-unknown-param", "<victim@dest.example> NOTIFY=SUCCESS", "555 5.5.4"),
    rcpt_case("rcpt-orcpt-param", "<victim@dest.example> ORCPT=rfc822;x@y.example", "555 5.5.4"),
    rcpt_case("no-domain", "<user>", "553 5.1.3"),
    rcpt_case("empty-domain", "<user@>", "553 5.1.3"),
    rcpt_case("underscore-domain", "<user@exa_mple.com>", "553 5.1.3"),
    rcpt_case("local-part-too-long", f"<{LONG_LOCAL}@dest.example>", "553 5.1.3"),
    rcpt_case("path-too-long", "<u@" + ".".join(["d" * 60] * 5) + ">", "553 5.1.3"),
    mail_case("mail-no-brackets", "open_relay", "MAIL FROM:app@client.example", "501 5.5.4"),
    mail_case("mail-no-colon", "open_relay", "MAIL FROM <app@client.example>", "501 5.5.4"),
    mail_case("mail-percent-hack", "open_relay", "MAIL FROM:<a%b.example@client.example>", "553 5.1.3"),
    mail_case("mail-source-route", "open_relay", "MAIL FROM:<@a.example:u@client.example>", "553 5.1.3"),
    mail_case("mail-unknown-param", "open_relay", "MAIL FROM:<a@client.example> FOO=BAR", "555 5.5.4"),
    mail_case("mail-ret-param", "open_relay", "MAIL FROM:<a@client.example> RET=FULL", "555 5.5.4"),
    mail_case("body-9bit", "open_relay", "MAIL FROM:<a@client.example> BODY=9BIT", "501 5.5.4"),
    mail_case("body-binarymime", "open_relay", "MAIL FROM:<a@client.example> BODY=BINARYMIME", "501 5.5.4"),
    mail_case("body-empty", "open_relay", "MAIL FROM:<a@client.example> BODY=", "501 5.5.4"),
    mail_case(
        "size-over-limit", "open_relay", f"MAIL FROM:<a@client.example> SIZE={MAX_BYTES + 1}", "552 5.3.4"
    ),
    mail_case(
        "size-huge", "open_relay", "MAIL FROM:<a@client.example> SIZE=99999999999999999999", "552 5.3.4"
    ),
    mail_case("size-not-number", "open_relay", "MAIL FROM:<a@client.example> SIZE=abc", "501 5.5.4"),
    mail_case("size-negative", "open_relay", "MAIL FROM:<a@client.example> SIZE=-1", "501 5.5.4"),
    mail_case("smtputf8-with-value", "open_relay", "MAIL FROM:<a@client.example> SMTPUTF8=yes", "501 5.5.4"),
    case(
        "params-after-helo",
        "open_relay",
        cmd("HELO client.example", "250"),
        cmd("MAIL FROM:<a@client.example> BODY=8BITMIME", "501 5.5.4"),
    ),
    # --- SMTP smuggling: a second end of data hidden in the first message ----------------------
    smuggle("lf-dot-lf", b"\n.\n"),
    smuggle("lf-dot-crlf", b"\n.\r\n"),
    smuggle("cr-dot-cr", b"\r.\r"),
    smuggle("crlf-dot-lf", b"\r\n.\n"),
    smuggle("lf-dot-cr", b"\n.\r"),
    smuggle("cr-dot-crlf", b"\r.\r\n"),
    smuggle("crlf-dot-cr", b"\r\n.\r"),
    smuggle("cr-dot-lf", b"\r.\n"),
    smuggle("crcrlf-dot-crcrlf", b"\r\r\n.\r\r\n"),
    smuggle("lflf-dot-lflf", b"\n\n.\n\n"),
    data_case(
        "bare-lf-in-header", "smuggling", b"Subject: a\nX-Injected: 1\r\n\r\nbody\r\n.\r\n", "550 5.5.2"
    ),
    data_case(
        "bare-cr-in-header", "smuggling", b"Subject: a\rX-Injected: 1\r\n\r\nbody\r\n.\r\n", "550 5.5.2"
    ),
    data_case("bare-lf-in-body", "smuggling", b"Subject: a\r\n\r\nbo\ndy\r\n.\r\n", "550 5.5.2"),
    data_case("bare-cr-in-body", "smuggling", b"Subject: a\r\n\r\nbo\rdy\r\n.\r\n", "550 5.5.2"),
    data_case("bare-cr-before-crlf", "smuggling", b"Subject: a\r\n\r\nbody\r\r\n.\r\n", "550 5.5.2"),
    data_case("bare-lf-first-byte", "smuggling", b"\nSubject: a\r\n\r\nbody\r\n.\r\n", "550 5.5.2"),
    # --- line lengths, NUL, 8-bit --------------------------------------------------------------
    case("command-512-octets-ok", "lines", EHLO, cmd("NOOP " + "x" * 505, "250")),
    case("command-513-octets", "lines", EHLO, cmd("NOOP " + "x" * 506, "500 5.5.2")),
    case("command-1000-octets", "lines", EHLO, cmd("NOOP " + "x" * 993, "500 5.5.2"), *AGAIN, submits=1),
    case("command-5000-octets", "lines", EHLO, cmd("NOOP " + "x" * 5000, "500 5.5.2"), *AGAIN, submits=1),
    case("command-100k-octets", "lines", EHLO, cmd("x" * 100_000, "500 5.5.2"), *AGAIN, submits=1),
    case("helo-line-too-long", "lines", cmd("HELO " + "a" * 600, "500 5.5.2")),
    case(
        "mail-over-extension-allowance",
        "lines",
        EHLO,
        cmd("MAIL FROM:<a@client.example> SIZE=10 " + "BODY=7BIT " * 55, "500 5.5.2"),
    ),
    case(
        "mail-limit-not-lifted-by-ehlos",
        "lines",
        EHLO,
        EHLO,
        EHLO,
        EHLO,
        cmd("MAIL FROM:<a@client.example> SIZE=10 " + "BODY=7BIT " * 55, "500 5.5.2"),
    ),
    case(
        "mail-after-helo-no-allowance",
        "lines",
        cmd("HELO client.example", "250"),
        cmd("MAIL FROM:<" + "a" * 60 + "@" + "b" * 450 + ".example>", "500 5.5.2"),
    ),
    data_case("data-line-998-ok", "lines", b"Subject: a\r\n\r\n" + b"x" * 998 + b"\r\n.\r\n", "250 2.0.0"),
    data_case("data-line-999", "lines", b"Subject: a\r\n\r\n" + b"x" * 999 + b"\r\n.\r\n", "500 5.5.2"),
    data_case("data-line-1000", "lines", b"Subject: a\r\n\r\n" + b"x" * 1000 + b"\r\n.\r\n", "500 5.5.2"),
    data_case("data-line-3000", "lines", b"Subject: a\r\n\r\n" + b"x" * 3000 + b"\r\n.\r\n", "500 5.5.2"),
    data_case(
        "data-header-line-999", "lines", b"Subject: " + b"x" * 990 + b"\r\n\r\nb\r\n.\r\n", "500 5.5.2"
    ),
    data_case(
        "data-dot-stuffed-998-ok", "lines", b"Subject: a\r\n\r\n." + b"." * 998 + b"\r\n.\r\n", "250 2.0.0"
    ),
    mail_case("nul-in-mail-from", "lines", b"MAIL FROM:<a\x00b@client.example>", "501 5.5.2"),
    case("nul-in-rcpt", "lines", EHLO, MAIL, cmd(b"RCPT TO:<v\x00@dest.example>", "501 5.5.2")),
    case("nul-in-helo", "lines", cmd(b"EHLO client\x00.example", "501 5.5.2")),
    case("nul-in-command-word", "lines", EHLO, cmd(b"NO\x00OP", "500 5.5.1")),
    case("nul-only-line", "lines", EHLO, cmd(b"\x00", "500 5.5.1")),
    data_case("nul-in-data-header", "lines", b"Subject: a\x00b\r\n\r\nbody\r\n.\r\n", "550 5.6.0"),
    data_case("nul-in-data-body", "lines", b"Subject: a\r\n\r\nbo\x00dy\r\n.\r\n", "550 5.6.0"),
    mail_case("invalid-utf8-mail-from", "lines", b"MAIL FROM:<\xff\xfe@client.example>", "553 5.1.3"),
    case("invalid-utf8-rcpt", "lines", EHLO, MAIL, cmd(b"RCPT TO:<v@dest\xc3.example>", "553 5.1.3")),
    mail_case(
        "invalid-utf8-with-smtputf8", "lines", b"MAIL FROM:<\xc0\xaf@client.example> SMTPUTF8", "553 5.1.3"
    ),
    mail_case("utf8-without-smtputf8", "lines", "MAIL FROM:<jörg@client.example>", "553 5.6.7"),
    case("utf8-rcpt-without-smtputf8", "lines", EHLO, MAIL, cmd("RCPT TO:<jörg@dest.example>", "553 5.6.7")),
    data_case(
        "8bit-header-without-8bitmime", "lines", "Subject: café\r\n\r\nx\r\n.\r\n".encode(), "550 5.6.0"
    ),
    data_case(
        "8bit-header-with-8bitmime-ok",
        "lines",
        "Subject: café\r\n\r\nx\r\n.\r\n".encode(),
        "250 2.0.0",
        mail=cmd("MAIL FROM:<app@client.example> BODY=8BITMIME", "250 2.1.0"),
    ),
    data_case(
        "8bit-header-with-smtputf8-ok",
        "lines",
        "Subject: café\r\n\r\nx\r\n.\r\n".encode(),
        "250 2.0.0",
        mail=cmd("MAIL FROM:<app@client.example> SMTPUTF8", "250 2.1.0"),
    ),
    data_case(
        "8bit-body-without-8bitmime-ok", "lines", "Subject: a\r\n\r\ncafé\r\n.\r\n".encode(), "250 2.0.0"
    ),
    # --- protocol order and syntax ------------------------------------------------------------
    case("rcpt-before-mail", "sequence", EHLO, cmd("RCPT TO:<v@dest.example>", "503 5.5.1")),
    case("data-before-rcpt", "sequence", EHLO, MAIL, cmd("DATA", "503 5.5.1")),
    case("data-before-mail", "sequence", EHLO, cmd("DATA", "503 5.5.1")),
    case("mail-twice", "sequence", EHLO, MAIL, cmd("MAIL FROM:<b@client.example>", "503 5.5.1")),
    case("mail-before-helo", "sequence", cmd("MAIL FROM:<a@client.example>", "503 5.5.1")),
    case("rcpt-before-helo", "sequence", cmd("RCPT TO:<v@dest.example>", "503 5.5.1")),
    case("data-before-helo", "sequence", cmd("DATA", "503 5.5.1")),
    case("auth-before-helo", "sequence", cmd("AUTH PLAIN", "503 5.5.1")),
    case("auth-after-helo", "sequence", cmd("HELO client.example", "250"), cmd("AUTH PLAIN", "503 5.5.1")),
    case("auth-without-tls", "sequence", EHLO, cmd("AUTH PLAIN AGFAYg==", "538 5.7.11")),
    case("auth-unknown-mech-without-tls", "sequence", EHLO, cmd("AUTH CRAM-MD5", "538 5.7.11")),
    case("data-with-argument", "sequence", EHLO, MAIL, RCPT, cmd("DATA now", "501 5.5.4")),
    case("rset-with-argument", "sequence", EHLO, cmd("RSET x", "501 5.5.4")),
    case("quit-with-argument", "sequence", EHLO, cmd("QUIT now", "501 5.5.4")),
    case("starttls-with-argument", "sequence", EHLO, cmd("STARTTLS now", "501 5.5.4")),
    case("unknown-command", "sequence", EHLO, cmd("XYZZY", "500 5.5.1")),
    case("unknown-command-not-echoed", "sequence", EHLO, cmd("<script>alert(1)</script>", "500 5.5.1")),
    case("expn", "sequence", EHLO, cmd("EXPN staff", "502 5.5.1")),
    case("empty-line", "sequence", EHLO, cmd("", "500 5.5.2")),
    case(
        "empty-lines-then-mail",
        "sequence",
        EHLO,
        cmd("", "500 5.5.2"),
        cmd("", "500 5.5.2"),
        *AGAIN,
        submits=1,
    ),
    case("space-only-line", "sequence", EHLO, cmd("   ", "500 5.5.1")),
    case(
        "five-unknown-commands",
        "sequence",
        EHLO,
        *(cmd(f"BOGUS{i}", "500 5.5.1") for i in range(4)),
        cmd("BOGUS5", "502 5.5.1"),
        closes=True,
    ),
    case("helo-without-argument", "sequence", cmd("HELO", "501 5.5.4")),
    case("ehlo-without-argument", "sequence", cmd("EHLO", "501 5.5.4")),
    case("ehlo-with-space", "sequence", cmd("EHLO two words", "501 5.5.2")),
    case("ehlo-with-brackets", "sequence", cmd("EHLO <client.example>", "501 5.5.2")),
    case("ehlo-empty-label", "sequence", cmd("EHLO client..example", "501 5.5.2")),
    case("ehlo-hyphen-label", "sequence", cmd("EHLO -client.example", "501 5.5.2")),
    case("ehlo-bad-literal", "sequence", cmd("EHLO [300.1.1.1]", "501 5.5.2")),
    case("ehlo-non-ascii", "sequence", cmd("EHLO clïent.example", "501 5.5.2")),
    case("ehlo-too-long", "sequence", cmd("EHLO " + "a" * 300, "501 5.5.2")),
    case("ehlo-cr-inside", "sequence", cmd(b"EHLO client.example\rX-Injected: 1", "501 5.5.2")),
    case("helo-bad-name", "sequence", cmd("HELO bad/name", "501 5.5.2")),
    case(
        "bad-ehlo-leaves-no-name",
        "sequence",
        cmd("EHLO bad!name", "501 5.5.2"),
        cmd("MAIL FROM:<a@client.example>", "503 5.5.1"),
    ),
    case("ehlo-literal-ok", "sequence", cmd("EHLO [127.0.0.1]", "250"), *AGAIN, submits=1),
    case(
        "too-many-recipients",
        "sequence",
        EHLO,
        MAIL,
        *(RCPT,) * MAX_RCPT,
        cmd("RCPT TO:<x@dest.example>", "452 4.5.3"),
    ),
    data_case(
        "data-over-size-limit",
        "sequence",
        b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 70 + b".\r\n",
        "552 5.3.4",
    ),
    data_case(
        "data-over-declared-size",
        "sequence",
        b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 70 + b".\r\n",
        "552 5.3.4",
        mail=cmd("MAIL FROM:<app@client.example> SIZE=100", "250 2.1.0"),
    ),
    # --- header injection through envelope fields ----------------------------------------------
    mail_case("cr-in-mail-from", "injection", b"MAIL FROM:<a\r@client.example>", "501 5.5.2"),
    mail_case("crlf-in-mail-from", "injection", b"MAIL FROM:<a@client.example>\rX-Injected: 1", "501 5.5.2"),
    case("cr-in-rcpt", "injection", EHLO, MAIL, cmd(b"RCPT TO:<v@dest.example>\rX-Injected: 1", "501 5.5.2")),
    case("del-in-rcpt", "injection", EHLO, MAIL, cmd(b"RCPT TO:<v\x7f@dest.example>", "501 5.5.2")),
    case(
        # LF ends a command (aiosmtpd), so the "header" becomes an unknown command.
        "lf-in-mail-from",
        "injection",
        EHLO,
        step(b"MAIL FROM:<app@client.example>\nX-Injected: 1\r\n", "250 2.1.0", "500 5.5.1"),
        RCPT,
        DATA,
        step(GOOD_BODY, "250 2.0.0"),
        submits=1,
    ),
    case(
        "lf-in-helo",
        "injection",
        step(b"EHLO client.example\nX-Injected: 1\r\n", "250", "500 5.5.1"),
        *AGAIN,
        submits=1,
    ),
    # --- pipelining ----------------------------------------------------------------------------
    case(
        "whole-transaction-one-packet",
        "pipelining",
        step(
            b"EHLO client.example\r\nMAIL FROM:<app@client.example>\r\nRCPT TO:<rcpt@dest.example>\r\n"
            b"DATA\r\n" + GOOD_BODY + b"QUIT\r\n",
            "250",
            "250 2.1.0",
            "250 2.1.5",
            "354",
            "250 2.0.0",
            "221",
        ),
        submits=1,
        closes=True,
    ),
    case(
        "two-transactions-one-packet",
        "pipelining",
        EHLO,
        step(
            (b"MAIL FROM:<app@client.example>\r\nRCPT TO:<rcpt@dest.example>\r\nDATA\r\n" + GOOD_BODY) * 2,
            *("250 2.1.0", "250 2.1.5", "354", "250 2.0.0") * 2,
        ),
        submits=2,
    ),
    case(
        "rcpt-flood-one-packet",
        "pipelining",
        EHLO,
        step(
            b"MAIL FROM:<app@client.example>\r\n"
            + b"".join(b"RCPT TO:<r%d@dest.example>\r\n" % i for i in range(50))
            + b"DATA\r\n"
            + GOOD_BODY,
            "250 2.1.0",
            *("250 2.1.5",) * MAX_RCPT,
            *("452 4.5.3",) * (50 - MAX_RCPT),
            "354",
            "250 2.0.0",
        ),
        submits=1,
    ),
    case(
        "pipelined-bad-rcpt-keeps-good-ones",
        "pipelining",
        EHLO,
        step(
            b"MAIL FROM:<app@client.example>\r\nRCPT TO:<a%b@dest.example>\r\nRCPT TO:<ok@dest.example>\r\n"
            b"DATA\r\n" + GOOD_BODY,
            "250 2.1.0",
            "553 5.1.3",
            "250 2.1.5",
            "354",
            "250 2.0.0",
        ),
        submits=1,
    ),
    case(
        "pipelined-data-after-refused-rcpts",
        "pipelining",
        EHLO,
        step(
            b"MAIL FROM:<app@client.example>\r\nRCPT TO:<>\r\nDATA\r\n" + GOOD_BODY,
            "250 2.1.0",
            "553 5.1.3",
            "503 5.5.1",
            # The message text is now read as commands: "Subject:" and "fine" are unknown, "." too.
            "500 5.5.1",
            "500 5.5.2",
            "500 5.5.1",
            "500 5.5.1",
        ),
    ),
    case(
        "early-talker-ehlo",
        "pipelining",
        step(b"EHLO client.example\r\n", "554 5.5.1"),
        greet=False,
        closes=True,
        smtp_greet_pause_s=0.2,
        **UNTRUSTED,
    ),
    case(
        "early-talker-whole-transaction",
        "pipelining",
        step(
            b"EHLO client.example\r\nMAIL FROM:<app@client.example>\r\nRCPT TO:<rcpt@dest.example>\r\n"
            b"DATA\r\n" + GOOD_BODY,
            "554 5.5.1",
        ),
        greet=False,
        closes=True,
        smtp_greet_pause_s=0.2,
        **UNTRUSTED,
    ),
    case(
        "early-talker-one-byte",
        "pipelining",
        step(b"\r\n", "554 5.5.1"),
        greet=False,
        closes=True,
        smtp_greet_pause_s=0.2,
        **UNTRUSTED,
    ),
    case(
        "patient-client-after-greet-pause-ok",
        "pipelining",
        EHLO,
        MAIL,
        smtp_greet_pause_s=0.2,
        **UNTRUSTED,
    ),
    case(
        "trusted-client-skips-greet-pause",
        "pipelining",
        step(b"EHLO client.example\r\n", "220", "250"),
        *AGAIN,
        greet=False,
        submits=1,
        smtp_greet_pause_s=5.0,
    ),
]


def test_case_count() -> None:
    categories: dict[str, int] = {}
    for c in CASES:
        categories[c.category] = categories.get(c.category, 0) + 1
    print(f"\nabuse cases: {len(CASES)} in the table, by category: {categories}")
    assert len({c.id for c in CASES}) == len(CASES)
    assert len(CASES) >= 100


async def good_transaction(port: int, n: int = 1, source: str = GOOD_SOURCE) -> None:
    """A well-behaved client (aiosmtplib): ``n`` messages on one connection, each answered 250."""
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, start_tls=False, source_address=(source, 0), timeout=5
    ) as smtp:
        for i in range(n):
            errors, answer = await smtp.sendmail(
                "app@client.example", ["rcpt@dest.example"], f"Subject: good {i}\r\n\r\nok\r\n"
            )
            assert errors == {}
            assert answer.startswith("2.0.0 Ok: queued as ")


async def run_case(port: int, c: Case) -> list[str]:
    """Play ``c`` on a fresh connection; every reply must match. Returns the replies."""
    client = await Raw.connect(port)
    seen: list[str] = []
    try:
        if c.greet:
            banner = await client.reply()
            assert matches(banner, "220"), banner
        for s in c.steps:
            client.writer.write(s.send)
            for expected in s.expect:
                answer = await client.reply()
                seen.append(answer)
                assert matches(answer, expected), (
                    f"{c.id}: sent {s.send[:80]!r}, got {answer!r}, want {expected}"
                )
        if c.closes:
            assert await client.closed()
    finally:
        await client.close()
    return seen


def assert_clean(envelopes: list[envelope_pb2.Envelope]) -> None:
    for env in envelopes:
        record = env.SerializeToString()
        for poison in POISON:
            assert poison not in record, f"{poison!r} reached an Envelope"
        assert env.mail_from == "app@client.example"


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
async def test_abuse_case(start: StartServer, submit: Recorder, c: Case) -> None:
    server = await start(**c.settings)
    seen = await run_case(server.port, c)
    assert len(submit.envelopes) == c.submits
    for answer in seen:
        # No reply repeats what the client sent (aiosmtpd's would, for unknown commands).
        assert "script" not in answer
        assert "X-Injected" not in answer
    # Zero crashes: the server still serves a good client after every case.
    await good_transaction(server.port)
    assert len(submit.envelopes) == c.submits + 1
    assert_clean(submit.envelopes)
    for env in submit.envelopes:
        headers = env.body.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        # Baton's Received header is the first three lines; no envelope field added a line.
        assert headers[0].startswith(b"Received: from ")
        assert all(not line.startswith(b"X-Injected") for line in headers)
