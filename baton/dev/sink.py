"""A development sink: an SMTP server that keeps every message it receives in a Maildir.

`make run` routes all mail here by default so a fresh checkout never sends to the Internet;
remove the catch-all route (BATON_ROUTES) to deliver by DNS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import mailbox
import signal
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class MaildirHandler:
    def __init__(self, path: Path) -> None:
        self._box = mailbox.Maildir(path, create=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        head = (
            f"X-Sink-Mail-From: <{envelope.mail_from}>\r\nX-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
        )
        key = self._box.add(head.encode() + content)
        return f"250 2.0.0 Ok: stored as {key}"


async def serve(host: str, port: int, maildir: Path) -> None:
    loop = asyncio.get_running_loop()
    handler = MaildirHandler(maildir)

    def factory() -> Any:
        return SMTP(
            handler,
            hostname="sink.localhost",
            decode_data=False,
            enable_SMTPUTF8=True,
            data_size_limit=64 * 1024 * 1024,
        )

    server = await loop.create_server(factory, host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"sink listening on {host}:{port}, writing to {maildir}", flush=True)
    await stop.wait()
    server.close()
    with contextlib.suppress(Exception):
        await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description="SMTP sink that stores messages in a Maildir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2526)
    parser.add_argument("--maildir", type=Path, default=Path("var/sink"))
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.maildir))


if __name__ == "__main__":
    main()
