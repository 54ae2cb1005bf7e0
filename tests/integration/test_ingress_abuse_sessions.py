"""Abuse over time: idle and slow-drip clients, per-IP connection limits, memory under 2000
abusive connections, and good clients being served while abusers hold connections."""

from __future__ import annotations

import asyncio
import gc
import itertools
import tracemalloc

import pytest
from prometheus_client import REGISTRY

from tests.integration.test_ingress_abuse import (
    CASES,
    GOOD_SOURCE,
    Raw,
    Recorder,
    StartServer,
    good_transaction,
    matches,
    run_case,
    start,
    submit,
)

__all__ = ["start", "submit"]  # fixtures shared with the table-driven suite

TIMEOUT_S = 0.3


async def drip(client: Raw, data: bytes, interval: float) -> None:
    for byte in data:
        if client.writer.is_closing():
            return
        client.writer.write(bytes([byte]))
        await asyncio.sleep(interval)


SLOW_CASES = [
    # (id, bytes sent first, then: "idle" or a drip interval in seconds)
    ("idle-after-greeting", b"", None),
    ("idle-after-ehlo", b"EHLO client.example\r\n", None),
    ("idle-in-transaction", b"EHLO client.example\r\nMAIL FROM:<a@client.example>\r\n", None),
    (
        "idle-in-data",
        b"EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@d.example>\r\nDATA\r\nSub",
        None,
    ),
    ("drip-one-command", b"EHLO client.example\r\n", 0.05),
]


@pytest.mark.parametrize(("case_id", "first", "interval"), SLOW_CASES, ids=[c[0] for c in SLOW_CASES])
async def test_idle_and_slow_clients_get_421(
    start: StartServer, submit: Recorder, case_id: str, first: bytes, interval: float | None
) -> None:
    server = await start(smtp_timeout_s=TIMEOUT_S)
    client = await Raw.connect(server.port)
    assert matches(await client.reply(), "220")
    client.writer.write(first)
    loop = asyncio.get_running_loop()
    began = loop.time()
    dripping = None
    if interval is not None:
        # One byte per interval of a command that never ends: the timer is not reset by bytes.
        dripping = asyncio.create_task(drip(client, b"NOOP " + b"x" * 400, interval))
    answers = []
    while True:
        answer = await client.reply(wait_s=3)
        answers.append(answer)
        if answer.startswith("421"):
            break
    assert matches(answers[-1], "421 4.4.2")
    assert await client.closed()
    assert loop.time() - began < TIMEOUT_S + 1.0
    if dripping is not None:
        dripping.cancel()
    await client.close()
    await good_transaction(server.port)
    assert len(submit.envelopes) == 1


async def test_slow_drip_of_complete_commands_hits_the_session_deadline(start: StartServer) -> None:
    # Each NOOP resets the idle timer; only the session deadline ends this client.
    server = await start(smtp_timeout_s=TIMEOUT_S, smtp_session_timeout_s=1.0)
    client = await Raw.connect(server.port)
    assert matches(await client.reply(), "220")
    loop = asyncio.get_running_loop()
    began = loop.time()
    noops = 0
    while True:
        client.writer.write(b"NOOP\r\n")
        answer = await client.reply()
        if answer.startswith("421"):
            break
        assert matches(answer, "250")
        noops += 1
        await asyncio.sleep(TIMEOUT_S / 3)
    assert matches(answer, "421 4.4.2")
    assert noops >= 5
    assert 1.0 <= loop.time() - began < 2.0
    assert await client.closed()
    await client.close()


def rejections(reason: str) -> float:
    return REGISTRY.get_sample_value("baton_ingress_rejections_total", {"reason": reason}) or 0.0


def open_connections() -> float:
    return REGISTRY.get_sample_value("baton_ingress_connections_open") or 0.0


async def test_connections_per_ip_are_limited(start: StartServer, submit: Recorder) -> None:
    server = await start(smtp_max_connections_per_ip=3)
    before = rejections("too_many_connections")
    held = [await Raw.connect(server.port) for _ in range(3)]
    for client in held:
        assert matches(await client.reply(), "220")
    excess = await Raw.connect(server.port)
    assert matches(await excess.reply(), "421 4.7.0")
    assert await excess.closed()
    await excess.close()
    assert rejections("too_many_connections") == before + 1
    # Another IP is not affected, and a freed slot can be taken again.
    await good_transaction(server.port, source=GOOD_SOURCE)
    await held.pop().close()
    await asyncio.sleep(0.05)
    again = await Raw.connect(server.port)
    assert matches(await again.reply(), "220")
    for client in [*held, again]:
        await client.close()
    assert len(submit.envelopes) == 1


# Cases that need no special settings and do not sleep: the memory loop cycles through them.
FAST_CASES = [c for c in CASES if not c.settings and c.greet]


async def test_bounded_memory_and_no_leaked_connections(start: StartServer, submit: Recorder) -> None:
    """2000 abusive connections; the server's traced memory must not grow with their number.

    Bound: 1 MiB for 2000 connections is ~500 bytes per connection — less than one retained
    protocol object, session or reader buffer, so any per-connection leak fails; what remains is
    noise (interned strings, metric samples, allocator caches), which does not scale with n.
    """
    server = await start(smtp_max_connections_per_ip=200)
    port = server.port

    async def abuse(n: int) -> None:
        cases = itertools.islice(itertools.cycle(FAST_CASES), n)
        batch: list[asyncio.Task[list[str]]] = []
        for c in cases:
            batch.append(asyncio.create_task(run_case(port, c)))
            if len(batch) == 100:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)

    await abuse(200)  # warm-up: caches, metric label sets, code paths
    await asyncio.sleep(0.1)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.take_snapshot()
        await abuse(2000)
        await asyncio.sleep(0.2)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    stats = after.compare_to(baseline, "filename")
    server_growth = sum(
        s.size_diff
        for s in stats
        if "/services/ingress/" in s.traceback[0].filename
        or "/aiosmtpd/" in s.traceback[0].filename
        or "/asyncio/" in s.traceback[0].filename
    )
    total_growth = sum(s.size_diff for s in stats)
    print(f"\nmemory growth over 2000 abusive connections: server {server_growth} B, total {total_growth} B")
    assert server_growth < 1024 * 1024
    assert open_connections() == 0
    assert server.handler.connections == set()
    assert server.handler.per_ip == {}
    await good_transaction(port)
    expected = sum(c.submits for n in (200, 2000) for c in itertools.islice(itertools.cycle(FAST_CASES), n))
    assert len(submit.envelopes) == expected + 1


async def test_good_client_is_served_during_abuse(start: StartServer, submit: Recorder) -> None:
    server = await start(smtp_max_connections_per_ip=5, smtp_timeout_s=3.0)
    port = server.port
    stop = asyncio.Event()

    async def idler(source: str) -> str:
        client = await Raw.connect(port, source=source)
        try:
            first = await client.reply()
            if first.startswith("220"):
                await stop.wait()
            return first
        finally:
            await client.close()

    async def dripper(source: str) -> str:
        client = await Raw.connect(port, source=source)
        try:
            first = await client.reply()
            if first.startswith("220"):
                while not stop.is_set() and not client.writer.is_closing():
                    client.writer.write(b"N")
                    await asyncio.sleep(0.05)
            return first
        finally:
            await client.close()

    abusers = [asyncio.create_task(idler("127.0.0.3")) for _ in range(10)]
    abusers += [asyncio.create_task(dripper("127.0.0.4")) for _ in range(10)]
    await asyncio.sleep(0.2)
    # 5 of each abusive IP hold connections; the rest were refused.
    assert server.handler.per_ip == {"127.0.0.3": 5, "127.0.0.4": 5}
    loop = asyncio.get_running_loop()
    began = loop.time()
    await good_transaction(port, n=20)
    assert loop.time() - began < 5
    stop.set()
    firsts = await asyncio.gather(*abusers)
    assert sorted(a[:9] for a in firsts).count("421 4.7.0") == 10
    assert len(submit.envelopes) == 20
