"""Fuzz the ingress SMTP server with arbitrary bytes as the client's side of one session.

The real protocol object (``IngressServer._protocol``, exactly what ``create_server`` calls) runs on
an in-memory transport: a loopback socket per input is far below 100 execs/s under coverage
instrumentation. All bytes arrive at once (a pipelining client); the session is then given time to
answer what it can, after which the client hangs up (EOF, then connection lost).

Properties checked per input:

* no unexpected exception: nothing reaches the loop's exception handler, the session task does not
  die of anything but cancellation, Baton's ``handle_exception`` never runs (it logs "SMTP session
  error") and no reply is aiosmtpd's fallback ``500 Error: (ExcType) ...``;
* every reply line is ``DDD`` + space or hyphen + text without control characters, CRLF-terminated;
* an Envelope is submitted only for a complete transaction: HELO/EHLO, MAIL, RCPT and DATA lines
  before it, its body dot-stuffed and followed by ``.`` in the input, addresses the policy accepts,
  and one ``250 2.0.0 Ok: queued as <id>`` reply per submission.

Input starting with a PROXY v1 or v2 signature is served with ``smtp_proxy_protocol`` on, so the
PROXY header parser is fuzzed too.

Run: ``.venv/bin/python tests/fuzz/fuzz_smtp_session.py var/fuzz/corpus/fuzz_smtp_session
tests/fuzz/seeds/fuzz_smtp_session -max_total_time=60`` (or ``tests/fuzz/run.py``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["services", "aiosmtpd"]):
    from aiosmtpd.proxy_protocol import V2_SIGNATURE

    from baton.settings import Settings
    from baton.v1 import envelope_pb2
    from services.ingress import message, policy
    from services.ingress.server import IngressServer

REPO = Path(__file__).resolve().parents[2]
# The dev certificate is generated here once (STARTTLS is offered, as in production).
TLS_DIR = REPO / "var" / "fuzz" / "tls"
HOSTNAME = "mx.fuzz.test"
# Small limits so short inputs reach the "too many recipients" and "too much data" paths.
MAX_RECIPIENTS = 3
MAX_MESSAGE_BYTES = 1024
PEER = ("127.0.0.1", 40000)  # in the default trusted networks: RCPT is relayed

# Loop iterations without any visible progress after which the session is taken to wait for input.
_IDLE_SPINS = 8
# Hard cap on loop iterations for one input; reaching it is reported as a hang.
_MAX_SPINS = 200_000

_REPLY_LINE = re.compile(rb"[2-5][0-9]{2}[ -][\t\x20-\x7e\x80-\xff]*")
_FALLBACK_500 = re.compile(rb"500 Error: \((\w+)\)")
_QUEUED = re.compile(rb"250 2\.0\.0 Ok: queued as ([0-9A-Z]{26})")


class Finding(AssertionError):
    """A property of the SMTP session was violated (the fuzzer reports it as a crash)."""


class MemoryTransport(asyncio.Transport):
    """A socket stand-in: records what the server writes, hands the client's bytes to its protocol.

    ``set_protocol`` is honoured so STARTTLS layers ``asyncio.sslproto`` on top, as on a socket.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, peer: tuple[str, int]) -> None:
        super().__init__({"peername": peer, "sockname": ("127.0.0.1", 25)})
        self._loop = loop
        self._protocol: asyncio.BaseProtocol | None = None
        self._closing = False
        self.lost = False
        self.output = bytearray()

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self.output += data

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        self.close()

    def _force_close(self, exc: BaseException | None) -> None:
        # asyncio.sslproto calls this private method of its transport on a fatal TLS error.
        self.close()

    def _connection_lost(self) -> None:
        if not self.lost:
            self.lost = True
            self.get_protocol().connection_lost(None)

    def pause_reading(self) -> None:
        pass  # everything the client sends is delivered up front

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self._closing

    def get_write_buffer_size(self) -> int:
        return 0

    def feed(self, data: bytes) -> None:
        """Deliver ``data`` from the client, as the event loop would after a recv."""
        if self._closing or not data:
            return
        protocol = self.get_protocol()
        if isinstance(protocol, asyncio.BufferedProtocol):
            view = memoryview(data)
            while view and not self._closing:
                buf = protocol.get_buffer(len(view))
                n = min(len(buf), len(view))
                buf[:n] = view[:n]
                protocol.buffer_updated(n)
                view = view[n:]
        else:
            assert isinstance(protocol, asyncio.Protocol)
            protocol.data_received(data)

    def client_hangs_up(self) -> None:
        """The client closed its side: EOF, then the connection is gone."""
        if self._closing:
            return
        protocol = self.get_protocol()
        if isinstance(protocol, asyncio.Protocol | asyncio.BufferedProtocol):
            keep_open = protocol.eof_received()
            if keep_open:
                self._loop.call_soon(self.close)
                return
        self.close()


class _LogRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Rig:
    """One event loop and two configured servers (with and without PROXY), reused for every input."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, context: self.loop_errors.append(context))
        self.submitted: list[envelope_pb2.Envelope] = []
        self.log = _LogRecorder()
        logging.getLogger("services.ingress").addHandler(self.log)
        self.servers = {proxy: self._server(proxy) for proxy in (False, True)}

    def _server(self, proxy: bool) -> IngressServer:
        settings = Settings(
            smtp_hostname=HOSTNAME,
            smtp_dev_tls_dir=str(TLS_DIR),
            smtp_max_recipients=MAX_RECIPIENTS,
            smtp_max_message_bytes=MAX_MESSAGE_BYTES,
            smtp_proxy_protocol=proxy,
            # The greeting pause is wall-clock time, and all input arrives before the banner here:
            # every untrusted (PROXY) session would just be refused as an early talker.
            smtp_greet_pause_s=0,
            instance="fuzz",
        )
        # The engine is only used by AUTH, which needs STARTTLS first: a fuzzer cannot get there.
        return IngressServer(settings, self._submit, engine=None)  # type: ignore[arg-type]

    async def _submit(self, envelope: envelope_pb2.Envelope) -> None:
        self.submitted.append(envelope)

    def close(self) -> None:
        logging.getLogger("services.ingress").removeHandler(self.log)
        self.loop.close()

    def run(self, data: bytes) -> bytes:
        """Play ``data`` as one client session; the server's output, after checking every property."""
        self.loop_errors.clear()
        self.submitted.clear()
        self.log.records.clear()
        proxy = data.startswith((b"PROXY", V2_SIGNATURE[:5]))
        server = self.servers[proxy]
        output, task_error = self.loop.run_until_complete(self._session(server, data))
        _check(data, output, server.settings, self.submitted)
        if task_error is not None:
            raise Finding(f"session task died: {task_error!r}") from task_error
        if self.loop_errors:
            context = self.loop_errors[0]
            raise Finding(f"event loop exception handler called: {context.get('message')}") from context.get(
                "exception"
            )
        if self.log.records:
            record = self.log.records[0]
            error = record.exc_info[1] if record.exc_info else None
            raise Finding(f"logged at {record.levelname}: {record.getMessage()} ({error!r})") from error
        return output

    async def _session(self, server: IngressServer, data: bytes) -> tuple[bytes, BaseException | None]:
        loop = asyncio.get_running_loop()
        transport = MemoryTransport(loop, PEER)
        protocol = server._protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        task = protocol._handler_coroutine
        assert task is not None
        transport.feed(data)
        await _settle(transport, protocol, task)
        transport.client_hangs_up()
        await _settle(transport, protocol, task, until_done=True)
        # aiosmtpd closes its writer when the session task is cancelled; let connection_lost run.
        for _ in range(_IDLE_SPINS):
            await asyncio.sleep(0)
        if not transport.lost:
            raise Finding("connection_lost never ran after the client hung up")
        error = None if task.cancelled() else task.exception()
        if protocol in server.handler.connections:
            raise Finding("connection still tracked after connection_lost")
        return bytes(transport.output), error


async def _settle(
    transport: MemoryTransport, protocol: Any, task: asyncio.Task[None], *, until_done: bool = False
) -> None:
    """Run the loop until the session task is done, or (unless ``until_done``) waits for input."""
    idle = 0
    last: tuple[int, int] | None = None
    for _ in range(_MAX_SPINS):
        if task.done():
            return
        # StreamReader internals: _waiter is set while a read waits for more bytes than it has.
        reader = protocol._reader
        if not until_done and reader._waiter is not None and not reader._buffer:
            return
        state = (len(transport.output), len(reader._buffer))
        idle = idle + 1 if state == last else 0
        if not until_done and idle >= _IDLE_SPINS:
            return  # e.g. waiting for the rest of a TLS ClientHello
        last = state
        await asyncio.sleep(0)
    task.cancel()
    raise Finding(f"session still busy after {_MAX_SPINS} loop iterations (hang)")


def _lines(data: bytes) -> list[bytes]:
    """Command lines as aiosmtpd splits them: on LF, trailing CR/LF stripped."""
    return [line.rstrip(b"\r\n") for line in data.split(b"\n")]


def _verb(line: bytes) -> bytes:
    return line.partition(b" ")[0].upper()


def _check(data: bytes, output: bytes, settings: Settings, submitted: list[envelope_pb2.Envelope]) -> None:
    if output and not output.endswith(b"\r\n"):
        raise Finding(f"reply not terminated by CRLF: {output[-80:]!r}")
    for line in output.split(b"\r\n")[:-1]:
        fallback = _FALLBACK_500.match(line)
        if fallback:
            raise Finding(f"aiosmtpd's unexpected-exception reply: {line[:200]!r}")
        if not _REPLY_LINE.fullmatch(line):
            raise Finding(f"malformed reply line: {line[:200]!r}")
    queued = [m.group(1).decode() for m in _QUEUED.finditer(output)]
    if queued != [env.message_id for env in submitted]:
        raise Finding(f"queued replies {queued} do not match submitted {[e.message_id for e in submitted]}")
    for envelope in submitted:
        _check_submission(data, envelope, settings)


def _original_content(envelope: envelope_pb2.Envelope, hostname: str) -> bytes:
    """The DATA content as the client sent it (unstuffed): the body without Baton's headers."""
    body = envelope.body
    if not body.startswith(b"Received: "):
        raise Finding(f"submitted body does not start with Baton's Received header: {body[:80]!r}")
    end = body.index(b"\r\n") + 2
    while body[end : end + 1] == b"\t":
        end = body.index(b"\r\n", end) + 2
    rest = body[end:]
    added = f"Message-ID: <{envelope.message_id}@{hostname}>\r\n".encode()
    if rest.startswith(added) and message.find_header(rest[len(added) :], "Message-ID") is None:
        rest = rest[len(added) :]
    return rest


def _check_submission(data: bytes, envelope: envelope_pb2.Envelope, settings: Settings) -> None:
    content = _original_content(envelope, settings.smtp_hostname)
    if message.has_bare_newline(content):
        raise Finding("submitted a message with a bare CR or LF")
    if content and not content.endswith(b"\r\n"):
        raise Finding("submitted content does not end with CRLF")
    if len(content) > settings.smtp_max_message_bytes:
        raise Finding(f"submitted {len(content)} bytes, over the {settings.smtp_max_message_bytes} limit")
    # The server deletes the first "." of every line (RFC 5321 4.5.2), stuffed or not.
    pattern = re.compile(
        b"".join(
            re.escape(b"." + line) if line.startswith(b".") else rb"\.?" + re.escape(line)
            for line in content.splitlines(True)
        )
        + rb"\.\r\n"
    )
    found = pattern.search(data)
    while found is not None:
        before = _lines(data[: found.start()])[:-1]
        if before and _verb(before[-1]) == b"DATA" and not before[-1][4:].strip():
            verbs = [_verb(line) for line in before]
            helo = next((i for i, v in enumerate(verbs) if v in (b"HELO", b"EHLO")), None)
            mail = next(
                (i for i, v in enumerate(verbs) if v == b"MAIL" and helo is not None and i > helo), None
            )
            rcpts = 0 if mail is None else sum(1 for v in verbs[mail + 1 :] if v == b"RCPT")
            if mail is not None and rcpts >= len(envelope.rcpt_to):
                break
        found = pattern.search(data, found.start() + 1)
    else:
        raise Finding(f"submitted content {content[:80]!r} without a complete transaction in the input")
    if not 1 <= len(envelope.rcpt_to) <= settings.smtp_max_recipients:
        raise Finding(f"submitted with {len(envelope.rcpt_to)} recipients")
    sender = envelope.mail_from or policy.NULL_SENDER
    if policy.check_reverse_path(sender, smtputf8=envelope.smtputf8) is not None:
        raise Finding(f"submitted with a sender the policy refuses: {sender!r}")
    for rcpt in envelope.rcpt_to:
        if policy.check_forward_path(rcpt, smtputf8=envelope.smtputf8) is not None:
            raise Finding(f"submitted with a recipient the policy refuses: {rcpt!r}")


_RIG: _Rig | None = None


def rig() -> _Rig:
    global _RIG
    if _RIG is None:
        _RIG = _Rig()
    return _RIG


def close() -> None:
    """Close the shared loop (the pytest smoke test calls this; the fuzzer just exits)."""
    global _RIG
    if _RIG is not None:
        _RIG.close()
        _RIG = None


def TestOneInput(data: bytes) -> None:
    rig().run(data)


def main() -> None:
    # aiosmtpd logs every command at INFO and unknown commands at WARNING: noise at 1000 execs/s.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
