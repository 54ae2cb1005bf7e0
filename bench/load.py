"""The bench's load generator: M messages of S bytes over C reused SMTP sessions, as fast as answered.

It runs in its own process (``python -m bench.load``) with a raw, minimal asyncio SMTP client: EHLO
once per connection, then per message MAIL, RCPT and DATA pipelined in one write when the server
offers PIPELINING, the body, and the final dot. For every message it records the monotonic time the
final dot was written and the time the reply arrived (accept latency = the difference); CLOCK_MONOTONIC
is system-wide on Linux, so the sink's arrival times compare with these.

Message *i* goes to ``user<i>@d<i mod N>.bench`` with Message-ID ``<TAG.i@load.bench>``. A 4xx answer is
retried on the same connection after a short pause (what a client does with 451); 5xx and exhausted
retries count as failed. The run is bounded: by the message count, and by ``--timeout`` seconds.

The result is one JSON file: ``{"started", "finished", "accepted": [[i, t_dot, t_reply], ...],
"failed": {reply: count}, "session_errors", "retries", "reconnects", "timed_out"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

DOMAIN_SUFFIX = "bench"
_LINE = 76


def domains(count: int) -> list[str]:
    return [f"d{k}.{DOMAIN_SUFFIX}" for k in range(count)]


def message_id(tag: str, index: int) -> str:
    return f"<{tag}.{index}@load.bench>"


def body(size: int) -> bytes:
    """About ``size`` bytes of dot-safe text in CRLF lines (the headers add ~200 bytes)."""
    line = (b"The quick brown fox jumps over the lazy dog 0123456789 " * 2)[: _LINE - 2] + b"\r\n"
    lines, rest = divmod(max(size - 200, 2), _LINE)
    return line * lines + (line[: max(rest - 2, 0)] + b"\r\n" if rest > 2 else b"")


def message(tag: str, index: int, rcpt: str, text: bytes) -> bytes:
    head = (
        f"From: <load@load.bench>\r\nTo: <{rcpt}>\r\nSubject: bench {index}\r\n"
        f"Message-ID: {message_id(tag, index)}\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    return head.encode() + text + b".\r\n"


class ReplyError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed by server")
        lines.append(line.decode("ascii", "replace").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return int(lines[-1][:3]), "\n".join(lines)


@dataclass
class Load:
    host: str
    port: int
    tag: str
    messages: int
    size: int
    domains: int
    deadline: float
    retries: int = 50
    next_index: int = 0
    accepted: list[tuple[int, float, float]] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)
    session_errors: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    reconnects: int = 0

    def take(self) -> int | None:
        if self.next_index >= self.messages or time.monotonic() > self.deadline:
            return None
        self.next_index += 1
        return self.next_index - 1

    async def session(self, text: bytes) -> None:
        names = domains(self.domains)
        index = self.take()
        while index is not None:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                self.reconnects += 1
                self.session_errors[f"connect: {exc}"] += 1
                if self.reconnects > 1000:
                    return
                await asyncio.sleep(0.2)
                continue
            try:
                code, text_ = await read_reply(reader)
                if code != 220:
                    raise ReplyError(code, text_)
                writer.write(b"EHLO load.bench\r\n")
                code, text_ = await read_reply(reader)
                if code != 250:
                    raise ReplyError(code, text_)
                pipelining = "PIPELINING" in text_.upper()
                while index is not None:
                    rcpt = f"user{index}@{names[index % len(names)]}"
                    payload = message(self.tag, index, rcpt, text)
                    for attempt in range(self.retries + 1):
                        code, reply = await self._transaction(
                            reader, writer, index, rcpt, payload, pipelining
                        )
                        if code // 100 != 4 or attempt == self.retries or time.monotonic() > self.deadline:
                            break
                        self.retried += 1
                        await asyncio.sleep(0.2)
                    if code // 100 != 2:
                        self.failed[reply.splitlines()[-1][:60]] += 1
                    index = self.take()
                writer.write(b"QUIT\r\n")
                with contextlib.suppress(ConnectionError, ValueError):
                    await read_reply(reader)
            except (ConnectionError, ReplyError, OSError) as exc:
                # The message in hand is tried again on a new connection.
                self.reconnects += 1
                self.session_errors[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
                if self.reconnects > 1000:
                    return
                await asyncio.sleep(0.2)
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

    async def _transaction(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        index: int,
        rcpt: str,
        payload: bytes,
        pipelining: bool,
    ) -> tuple[int, str]:
        """One MAIL/RCPT/DATA; returns the final (code, reply). Accepted messages are recorded."""
        commands = [b"MAIL FROM:<load@load.bench>\r\n", f"RCPT TO:<{rcpt}>\r\n".encode(), b"DATA\r\n"]
        replies = []
        if pipelining:
            writer.write(b"".join(commands))
            for _ in commands:
                replies.append(await read_reply(reader))
        else:
            for command in commands:
                writer.write(command)
                replies.append(await read_reply(reader))
                if replies[-1][0] // 100 != 2:
                    break
        if replies[-1][0] != 354:
            if replies[-1][0] // 100 == 3:
                raise ConnectionError("354 after a refused MAIL or RCPT")
            writer.write(b"RSET\r\n")
            await read_reply(reader)
            # The first refusal says why (a 451 on MAIL, say), not the 503 on DATA that followed.
            return next(r for r in replies if r[0] // 100 != 2)
        writer.write(payload)
        sent = time.monotonic()
        code, reply = await read_reply(reader)
        answered = time.monotonic()
        if code // 100 == 2:
            self.accepted.append((index, sent, answered))
        return code, reply


async def run(load: Load, sessions: int) -> dict[str, object]:
    text = body(load.size)
    started = time.monotonic()
    await asyncio.gather(*(load.session(text) for _ in range(sessions)))
    finished = time.monotonic()
    return {
        "tag": load.tag,
        "started": started,
        "finished": finished,
        "accepted": load.accepted,
        "failed": dict(load.failed),
        "session_errors": dict(load.session_errors),
        "retries": load.retried,
        "reconnects": load.reconnects,
        "timed_out": time.monotonic() > load.deadline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tag", required=True, help="Message-ID prefix, unique per run")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--domains", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0, help="stop taking new messages after this")
    parser.add_argument("--out", required=True, help="where the JSON result is written")
    args = parser.parse_args()
    if not args.host.startswith("127."):
        parser.error("the load generator only talks to 127.0.0.0/8")
    load = Load(
        args.host,
        args.port,
        args.tag,
        args.messages,
        args.size,
        args.domains,
        deadline=time.monotonic() + args.timeout,
    )
    result = asyncio.run(run(load, args.sessions))
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
