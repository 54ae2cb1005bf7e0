"""Chaos under load: while mail flows, every stage in turn is killed with SIGKILL and restarted.
At the end every message the relay answered 250 for was delivered exactly once (by Message-ID at
the sinks).

A transaction cut off by the ingress kill has no answer; the client does not resend it (it cannot
know whether it was accepted), and such a message counts neither as accepted nor as duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib
import pytest

from tests.e2e.harness import DOMAINS, QUEUED, make_message, wait_until, world

pytestmark = pytest.mark.e2e

COUNT = 2000
SESSIONS = 8
# Paced so the load outlasts the whole kill schedule (about 7 x 3.5 s).
RATE_PER_S = 50
STAGES = ("ingress", "filter", "router", "sender", "reputation", "feedback", "notifier")


@dataclass
class Load:
    port: int
    count: int
    accepted: dict[str, str] = field(default_factory=dict)
    unconfirmed: set[str] = field(default_factory=set)
    refused: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    async def run(self) -> None:
        queue: asyncio.Queue[object] = asyncio.Queue()
        domains = list(DOMAINS)
        for i in range(self.count):
            queue.put_nowait(make_message(f"chaos{i}@{domains[i % len(domains)]}", size=1500))
        await asyncio.gather(*(self._worker(queue) for _ in range(SESSIONS)))
        self.done.set()

    async def _connect(self) -> aiosmtplib.SMTP:
        while True:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, timeout=20, start_tls=False)
            try:
                await client.connect()
                return client
            except (aiosmtplib.SMTPException, OSError):
                await asyncio.sleep(0.2)  # ingress is being restarted

    async def _worker(self, queue: asyncio.Queue[object]) -> None:
        client = await self._connect()
        interval = SESSIONS / RATE_PER_S
        next_at = time.monotonic()
        while not queue.empty():
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            message = queue.get_nowait()
            mid = str(message["Message-ID"])  # type: ignore[index]
            while True:
                try:
                    _, reply = await client.send_message(message)  # type: ignore[arg-type]
                except aiosmtplib.SMTPResponseException as exc:
                    if exc.code // 100 == 4:
                        # Not accepted (Kafka busy, stage restarting): safe to offer again.
                        self.refused += 1
                        await asyncio.sleep(0.2)
                        if exc.code == 421:
                            client = await self._connect()
                        continue
                    raise
                except (
                    aiosmtplib.SMTPServerDisconnected,
                    aiosmtplib.SMTPConnectError,
                    OSError,
                    TimeoutError,
                ):
                    # Cut off mid-transaction: its fate is unknown to the client, as in any MTA.
                    self.unconfirmed.add(mid)
                    client = await self._connect()
                    break
                match = QUEUED.search(reply)
                assert match, reply
                self.accepted[mid] = match.group(1)
                break
        with contextlib.suppress(Exception):
            await client.quit()


def test_sigkill_each_stage_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        load = Load(w.smtp_port, COUNT)
        runner = threading.Thread(target=lambda: asyncio.run(load.run()))
        runner.start()
        killed: list[str] = []
        for stage in STAGES:
            if load.done.wait(3.0):
                break
            w.relay.kill(stage)
            killed.append(stage)
            time.sleep(0.5)
            w.relay.restart(stage)
        runner.join(300)
        assert not runner.is_alive()
        assert killed == list(STAGES), f"load finished before every stage was killed: {killed}"

        accepted = set(load.accepted)
        wait_until(lambda: accepted <= set(w.delivered_counts()), 240)
        wait_until(lambda: False, 3)  # let late duplicates show
        counts = w.delivered_counts()
        lost = accepted - set(counts)
        duplicated = {k: v for k, v in counts.items() if v > 1}
        print(
            f"\nchaos: killed {','.join(killed)}; accepted {len(accepted)}, delivered {len(counts)}, "
            f"lost {len(lost)}, duplicated {len(duplicated)}, unconfirmed {len(load.unconfirmed)}, "
            f"4xx retried {load.refused}"
        )
        assert not lost, f"{len(lost)} accepted messages never arrived"
        assert not duplicated, f"{len(duplicated)} messages arrived more than once"
        # Whatever arrived was either accepted or cut off mid-transaction; nothing else.
        assert set(counts) <= accepted | load.unconfirmed
