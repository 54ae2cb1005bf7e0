"""The filter is killed with SIGKILL mid-stream and restarted: nothing lost, nothing delivered twice."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.harness import send_many, wait_until, world

pytestmark = pytest.mark.e2e

COUNT = 200


def test_filter_sigkill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        result: dict[str, str] = {}

        def load() -> None:
            result.update(asyncio.run(send_many(w.smtp_port, COUNT, sessions=4)))

        sender = threading.Thread(target=load)
        sender.start()
        # Kill the filter once mail is flowing through it, then bring it back.
        assert wait_until(lambda: len(w.delivered()) >= 20, 60)
        w.relay.kill("filter")
        time.sleep(1)
        w.relay.restart("filter")
        sender.join(180)
        assert not sender.is_alive()
        assert len(result) == COUNT

        assert wait_until(lambda: len(w.delivered()) >= COUNT, 180), f"{len(w.delivered())} delivered"
        wait_until(lambda: len(w.delivered()) > COUNT, 5)
        counts = w.delivered_counts()
        lost = set(result) - set(counts)
        duplicated = {k: v for k, v in counts.items() if v > 1}
        assert not lost, f"{len(lost)} lost"
        assert not duplicated, f"{len(duplicated)} duplicated"
