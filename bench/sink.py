"""The bench's fast SMTP sink: answers 250 to everything and records (Message-ID, arrival time).

It runs in its own process (``python -m bench.sink``) so it never competes with the load generator's
event loop, and is built for speed rather than conformance: a raw ``asyncio.Protocol``, PIPELINING,
no STARTTLS, and the only parsing is the search for the end of DATA and for the Message-ID header.
The arrival time is ``time.monotonic()`` taken when the final ``.`` is read; CLOCK_MONOTONIC is
system-wide on Linux, so it compares with the load generator's times.

It listens on one port on several loopback addresses (one per MX host) and takes line commands on a
control port on 127.0.0.1:

    COUNT          -> "<messages received since the last RESET>"
    DUMP <path>    -> writes [[message_id, arrival], ...] as JSON to <path>, answers "OK <n>"
    RESET          -> forgets everything received, answers "OK"
    QUIT           -> answers "OK" and exits

"READY <control port>" on stdout means every socket is bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import sys
import time

GREETING = b"220 sink.bench ESMTP\r\n"
EHLO_REPLY = b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n"
_MESSAGE_ID = re.compile(rb"\r\nmessage-id:[ \t]*(\S+)", re.IGNORECASE)
_END = b"\r\n.\r\n"


class Recorder:
    """What arrived: one (Message-ID, monotonic arrival time) per message, in arrival order."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float]] = []

    def add(self, message: bytes) -> None:
        now = time.monotonic()
        # Only the header block is searched; the message starts with the CRLF that ended DATA.
        head_end = message.find(b"\r\n\r\n", 2)
        match = _MESSAGE_ID.search(message, 0, head_end + 2 if head_end >= 0 else len(message))
        message_id = match.group(1).decode("ascii", "replace") if match else ""
        self.arrivals.append((message_id, now))


class SinkProtocol(asyncio.Protocol):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.buffer = bytearray()
        self.in_data = False
        self.search_from = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(GREETING)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies: list[bytes] = []
        closing = False
        while True:
            if self.in_data:
                end = self.buffer.find(_END, self.search_from)
                if end < 0:
                    self.search_from = max(0, len(self.buffer) - len(_END) + 1)
                    break
                self.recorder.add(bytes(self.buffer[:end]))
                del self.buffer[: end + len(_END)]
                self.in_data = False
                replies.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            eol = self.buffer.find(b"\r\n")
            if eol < 0:
                break
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: eol + 2]
            if verb == b"DATA":
                replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                # Keep the CRLF that ended the DATA line so an empty body's lone "." is found too.
                self.buffer[0:0] = b"\r\n"
                self.in_data = True
                self.search_from = 0
            elif verb in (b"EHLO", b"HELO"):
                replies.append(EHLO_REPLY if verb == b"EHLO" else b"250 sink.bench\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 2.0.0 Bye\r\n")
                closing = True
                break
            else:  # MAIL, RCPT, RSET, NOOP and anything else
                replies.append(b"250 2.0.0 Ok\r\n")
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))
        if closing and self.transport is not None:
            self.transport.close()


def _dump(path: str, arrivals: list[tuple[str, float]]) -> None:
    with open(path, "w") as out:
        json.dump(arrivals, out)


async def _control(recorder: Recorder, stop: asyncio.Event, host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                command, _, arg = line.decode().strip().partition(" ")
                if command == "COUNT":
                    answer = str(len(recorder.arrivals))
                elif command == "DUMP":
                    # Blocks the loop for a moment; DUMP comes after the load, when nothing else runs.
                    _dump(arg, recorder.arrivals)
                    answer = f"OK {len(recorder.arrivals)}"
                elif command == "RESET":
                    recorder.arrivals = []
                    answer = "OK"
                elif command == "QUIT":
                    writer.write(b"OK\n")
                    await writer.drain()
                    stop.set()
                    break
                else:
                    answer = "ERR unknown command"
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


async def serve(addresses: list[str], port: int, control_port: int) -> None:
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    stop = asyncio.Event()
    servers = [
        await loop.create_server(lambda: SinkProtocol(recorder), address, port, backlog=1024)
        for address in addresses
    ]
    control = await _control(recorder, stop, "127.0.0.1", control_port)
    bound = control.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    await stop.wait()
    for server in [*servers, control]:
        server.close()
    # Let the QUIT handler finish its reply and close before the loop ends.
    await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--addresses", required=True, help="comma-separated loopback addresses")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, default=0)
    args = parser.parse_args()
    addresses = [a.strip() for a in args.addresses.split(",") if a.strip()]
    for address in addresses:
        # The bench must never listen beyond loopback.
        if socket.inet_aton(address)[0] != 127:
            sys.exit(f"not a loopback address: {address}")
    asyncio.run(serve(addresses, args.port, args.control_port))


if __name__ == "__main__":
    main()
