"""200 messages to two domains whose MX records come from a real DNS server: each arrives exactly
once at the right sink, and each message's timeline is complete."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.harness import DOMAINS, send_many, wait_until, world

pytestmark = pytest.mark.e2e

COUNT = 200


def test_every_message_arrives_once_with_a_complete_timeline(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        accepted = asyncio.run(send_many(w.smtp_port, COUNT))
        assert len(accepted) == COUNT

        assert wait_until(lambda: len(w.delivered()) >= COUNT, 120), f"{len(w.delivered())} delivered"
        wait_until(lambda: len(w.delivered()) > COUNT, 3)  # give duplicates a chance to show
        counts = w.delivered_counts()
        assert set(counts) == set(accepted)
        assert max(counts.values()) == 1

        for domain, sink in w.sinks.items():
            assert sink.messages, f"nothing reached {domain}"
            assert all(r.endswith("@" + domain) for m in sink.messages for r in m.rcpt_tos)
        assert sum(len(s.messages) for s in w.sinks.values()) == COUNT
        assert len(DOMAINS) == 2

        def all_complete() -> bool:
            return all((t := w.timeline(i)) is not None and t["complete"] for i in accepted.values())

        assert wait_until(all_complete, 60)
        sample = w.timeline(next(iter(accepted.values())))
        assert sample is not None
        kinds = [e["kind"] for e in sample["events"]]
        assert kinds[:3] == ["accepted", "filtered", "routed"]
        assert list(sample["recipients"].values()) == ["delivered"]
