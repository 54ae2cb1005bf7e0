from __future__ import annotations

import pytest

from baton.settings import Settings
from baton.v1 import delivery_pb2, outcome_pb2
from services.sender.retry import delay_for, plan_retry, retry_topic

DELIVERED = outcome_pb2.OUTCOME_STATUS_DELIVERED
DEFERRED = outcome_pb2.OUTCOME_STATUS_DEFERRED
EXPIRED = outcome_pb2.OUTCOME_STATUS_EXPIRED
NOW = 1_800_000_000_000
SETTINGS = Settings(retry_schedule_s=[60, 600, 3600], retry_max_age_s=86400)


def _delivery(attempt: int = 1, accepted_at_ms: int = NOW - 1000) -> delivery_pb2.Delivery:
    return delivery_pb2.Delivery(
        message_id="m1",
        domain="example.org",
        recipients=["a@example.org", "b@example.org"],
        attempt=attempt,
        accepted_at_ms=accepted_at_ms,
        mail_from="app@example.net",
    )


def _outcome(rcpt: str, status: int, text: str = "") -> outcome_pb2.Outcome:
    return outcome_pb2.Outcome(message_id="m1", recipient=rcpt, status=status, text=text)  # type: ignore[arg-type]


@pytest.mark.parametrize(("attempt", "delay"), [(1, 60), (2, 600), (3, 3600), (4, 3600), (40, 3600), (0, 60)])
def test_the_last_delay_repeats(attempt: int, delay: int) -> None:
    assert delay_for(attempt, SETTINGS.retry_schedule_s) == delay


def test_nothing_deferred_means_no_retry() -> None:
    outcomes = [_outcome("a@example.org", DELIVERED), _outcome("b@example.org", DELIVERED)]
    plan = plan_retry(_delivery(), outcomes, SETTINGS, NOW)
    assert plan.retry is None
    assert plan.expired == []
    assert plan.outcomes == outcomes


def test_deferred_recipients_get_a_later_attempt_on_the_delays_topic() -> None:
    outcomes = [_outcome("a@example.org", DELIVERED), _outcome("b@example.org", DEFERRED, "451 busy")]
    plan = plan_retry(_delivery(attempt=2), outcomes, SETTINGS, NOW)
    assert plan.outcomes == outcomes
    assert plan.retry is not None
    assert plan.retry.topic == retry_topic(SETTINGS, 600) == "routed.retry.600s"
    assert plan.retry.key == b"example.org"
    nxt = delivery_pb2.Delivery.FromString(plan.retry.value)
    assert list(nxt.recipients) == ["b@example.org"]
    assert nxt.attempt == 3
    assert nxt.not_before_ms == NOW + 600_000
    assert dict(plan.retry.headers)["baton-not-before"] == str(NOW + 600_000).encode()
    assert nxt.mail_from == "app@example.net"


def test_a_retry_past_the_queue_lifetime_expires_now() -> None:
    accepted = NOW - 86400_000 + 30_000  # the next attempt (in 3600 s) would be past one day
    outcomes = [_outcome("a@example.org", DEFERRED, "451 busy"), _outcome("b@example.org", DELIVERED)]
    plan = plan_retry(_delivery(attempt=5, accepted_at_ms=accepted), outcomes, SETTINGS, NOW)
    assert plan.retry is None
    assert [o.status for o in plan.outcomes] == [EXPIRED, DELIVERED]
    assert [o.recipient for o in plan.expired] == ["a@example.org"]
    assert "gave up after 5 attempts" in plan.expired[0].text
    assert "451 busy" in plan.expired[0].text


def test_retry_topics_are_one_per_distinct_delay() -> None:
    settings = Settings(retry_schedule_s=[1, 5, 5])
    assert settings.retry_topics() == ["routed.retry.1s", "routed.retry.5s"]


def test_a_schedule_without_positive_delays_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_schedule_s"):
        Settings(retry_schedule_s=[])
    with pytest.raises(ValueError, match="retry_schedule_s"):
        Settings(retry_schedule_s=[60, 0])
