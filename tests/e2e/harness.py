"""The e2e world: a real DNS server, two SMTP sinks on their own loopback addresses, and the whole
relay (broker + every service as its own process) pointed at them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib

from baton.dev.ports import free_port
from baton.dev.supervisor import LocalRelay
from tests.fixtures.dns import Dnsmasq
from tests.fixtures.postgres import fresh_database, postgres_unavailable
from tests.fixtures.sink import RecordingSink

# Two destination domains, each with its own MX host on its own loopback address.
DOMAINS = {"alpha.test": "127.0.0.2", "beta.test": "127.0.0.3"}
QUEUED = re.compile(r"queued as (\S+)")


@dataclass
class World:
    relay: LocalRelay
    dns: Dnsmasq
    sinks: dict[str, RecordingSink]
    smtp_port: int
    api_port: int

    def delivered(self) -> list[Any]:
        return [m for sink in self.sinks.values() for m in sink.messages]

    def delivered_counts(self) -> Counter[str]:
        return Counter(m.message_id for m in self.delivered())

    def timeline(self, baton_id: str) -> dict[str, Any] | None:
        url = f"http://127.0.0.1:{self.api_port}/messages/{baton_id}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


@contextlib.contextmanager
def world(tmp_path: Path, **env: str) -> Iterator[World]:
    dns = Dnsmasq(zones=("test",))
    for domain, address in DOMAINS.items():
        dns.add_mx(domain, f"mx.{domain}", 10).add_host(f"mx.{domain}", address)
    delivery_port = free_port()
    sinks = {d: RecordingSink(a, delivery_port, hostname=f"mx.{d}") for d, a in DOMAINS.items()}
    smtp_port, api_port = free_port(), free_port()
    with contextlib.ExitStack() as stack:
        stack.enter_context(dns)
        for sink in sinks.values():
            stack.enter_context(sink)
        if postgres_unavailable() is None:
            database_url = stack.enter_context(fresh_database())
        else:
            database_url = f"sqlite:///{tmp_path / 'baton.db'}"
        relay = LocalRelay(
            tmp_path,
            {
                "BATON_DNS_NAMESERVER": dns.nameserver,
                "BATON_DNS_CACHE_MIN_TTL_S": "1",
                "BATON_ROUTER_ALLOW_LOOPBACK": "true",
                "BATON_DELIVERY_PORT": str(delivery_port),
                "BATON_SMTP_PORT": str(smtp_port),
                "BATON_API_PORT": str(api_port),
                "BATON_DATABASE_URL": database_url,
                "BATON_SMTP_DEV_TLS_DIR": str(tmp_path / "tls"),
                "BATON_KAFKA_ACK_TIMEOUT_S": "5",
                "BATON_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "BATON_TOPIC_PARTITIONS": "4",
                **env,
            },
        )
        try:
            relay.start()
            yield World(relay, dns, sinks, smtp_port, api_port)
        finally:
            relay.stop()


def make_message(rcpt: str, size: int = 2000) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "app@example.org"
    message["To"] = rcpt
    message["Subject"] = "e2e"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@e2e.example.org>"
    message["Date"] = "Sun, 22 Nov 2026 12:00:00 +0000"
    message.set_content(("Hello from the e2e suite. " * (size // 26 + 1))[:size])
    return message


async def send_many(port: int, count: int, sessions: int = 10, *, retries: int = 20) -> dict[str, str]:
    """Send ``count`` messages over ``sessions`` connections; returns Message-ID -> Baton id."""
    queue: asyncio.Queue[EmailMessage] = asyncio.Queue()
    domains = list(DOMAINS)
    for i in range(count):
        queue.put_nowait(make_message(f"user{i}@{domains[i % len(domains)]}"))
    accepted: dict[str, str] = {}

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
        await client.connect()
        try:
            while not queue.empty():
                message = queue.get_nowait()
                for attempt in range(retries):
                    try:
                        _, reply = await client.send_message(message)
                        break
                    except aiosmtplib.SMTPResponseException as exc:
                        # 4xx: the relay asks to try later; a client does exactly that.
                        if exc.code // 100 != 4 or attempt == retries - 1:
                            raise
                        await asyncio.sleep(0.5)
                match = QUEUED.search(reply)
                assert match, reply
                accepted[str(message["Message-ID"])] = match.group(1)
        finally:
            with contextlib.suppress(Exception):
                await client.quit()

    await asyncio.gather(*(worker() for _ in range(sessions)))
    return accepted


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
