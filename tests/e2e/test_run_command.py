"""`baton run` (what `make run` calls): the whole relay comes up on embedded defaults, a message
sent to it lands in the local sink and gets a complete timeline, and Ctrl-C stops every process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import aiosmtplib
import pytest

from baton.dev.ports import free_port
from tests.e2e.harness import QUEUED, make_message, wait_until

pytestmark = pytest.mark.e2e


def _tagged(tag: str) -> list[int]:
    """Live processes whose environment carries ``RUN_TEST_TAG=tag`` (inherited by every child)."""
    marker = f"RUN_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def _send(port: int) -> str:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
    await client.connect()
    try:
        _, reply = await client.send_message(make_message("someone@example.com"))
    finally:
        await client.quit()
    return reply


def _complete(api_port: int, baton_id: str) -> bool:
    try:
        url = f"http://127.0.0.1:{api_port}/messages/{baton_id}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(json.loads(response.read())["complete"])
    except OSError:
        return False


def test_baton_run_serves_delivers_and_stops_cleanly(tmp_path: Path) -> None:
    smtp_port, api_port, sink_port = free_port(), free_port(), free_port()
    tag = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(BATON_SMTP_PORT=str(smtp_port), BATON_API_PORT=str(api_port), RUN_TEST_TAG=tag)
    log_path = tmp_path / "run.log"
    command = [sys.executable, "-m", "baton.cli", "run", "--workdir", str(tmp_path / "var")]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--sink-port", str(sink_port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            banner = wait_until(lambda: b"Baton is running" in log_path.read_bytes(), 120)
            assert banner, log_path.read_text(errors="replace")[-3000:]
            match = QUEUED.search(asyncio.run(_send(smtp_port)))
            assert match
            maildir = tmp_path / "var" / "sink" / "new"
            assert wait_until(lambda: maildir.is_dir() and any(maildir.iterdir()), 60)
            assert wait_until(lambda: _complete(api_port, match.group(1)), 60)
            assert len(_tagged(tag)) >= 10  # supervisor, broker, sink and seven services
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(60)
    assert code == 0
    assert wait_until(lambda: not _tagged(tag), 10), f"left running: {_tagged(tag)}"
