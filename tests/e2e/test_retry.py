"""Deferred recipients are tried again on the retry schedule until they are delivered, or expire."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosmtplib
import pytest

from tests.e2e.harness import QUEUED, make_message, wait_until, world

pytestmark = pytest.mark.e2e


async def _send(port: int, rcpt: str) -> str:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
    await client.connect()
    try:
        _, reply = await client.send_message(make_message(rcpt))
    finally:
        await client.quit()
    match = QUEUED.search(reply)
    assert match, reply
    return match.group(1)


def test_a_deferred_recipient_is_retried_until_delivered_and_another_expires(tmp_path: Path) -> None:
    env = {"BATON_RETRY_SCHEDULE_S": "[1, 2]", "BATON_RETRY_MAX_AGE_S": "8"}
    with world(tmp_path, **env) as w:
        alpha, beta = w.sinks["alpha.test"], w.sinks["beta.test"]
        alpha.set_rcpt_reply("later@", "451 4.2.0 mailbox busy, try later")
        beta.set_rcpt_reply("never@", "451 4.2.0 mailbox busy, try later")
        later = asyncio.run(_send(w.smtp_port, "later@alpha.test"))
        never = asyncio.run(_send(w.smtp_port, "never@beta.test"))

        def statuses(baton_id: str) -> list[str]:
            timeline = w.timeline(baton_id) or {"events": []}
            return [e["detail"]["status"] for e in timeline["events"] if e["kind"] == "outcome"]

        # Refused twice or more: deferred, and tried again.
        assert wait_until(lambda: statuses(later).count("deferred") >= 2, 60), statuses(later)
        assert not alpha.messages
        alpha.set_rcpt_reply("later@", None)
        assert wait_until(lambda: len(alpha.delivered_to("later@alpha.test")) == 1, 60)
        assert wait_until(lambda: "delivered" in statuses(later), 30), statuses(later)

        # The other is deferred on every attempt until the queue lifetime is over.
        assert wait_until(lambda: "expired" in statuses(never), 60), statuses(never)
        final = w.timeline(never)
        assert final is not None
        assert final["recipients"] == {"never@beta.test": "expired"}
        attempts = len(statuses(never))
        wait_until(lambda: False, 3)
        assert len(statuses(never)) == attempts  # nothing after expiry
        assert not beta.messages
        assert len(alpha.delivered_to("later@alpha.test")) == 1
