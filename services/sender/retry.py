"""What becomes of deferred recipients (pure): another attempt later, or expiry.

RFC 5321 4.5.4.1: retry at growing intervals and give up after some days. Each delay of the schedule
has its own topic, so all records of one retry topic share a delay and fall due in order; the stage
loop holds a partition back until its next record is due (``baton-not-before``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baton.kafka.stage import NOT_BEFORE_HEADER, Output
from baton.settings import Settings
from baton.v1 import delivery_pb2, outcome_pb2

DEFERRED = outcome_pb2.OUTCOME_STATUS_DEFERRED
EXPIRED = outcome_pb2.OUTCOME_STATUS_EXPIRED


@dataclass
class RetryPlan:
    # Outcomes to publish: the DEFERRED ones as they were, or turned EXPIRED.
    outcomes: list[outcome_pb2.Outcome]
    # Newly final outcomes (expired) that the dedupe log must record.
    expired: list[outcome_pb2.Outcome] = field(default_factory=list)
    # The next attempt, if there is one.
    retry: Output | None = None


def delay_for(attempt: int, schedule: list[int]) -> int:
    """Seconds to wait after failed attempt number ``attempt`` (1-based); the last delay repeats."""
    return schedule[min(max(attempt, 1), len(schedule)) - 1]


def retry_topic(settings: Settings, delay_s: int) -> str:
    return f"{settings.topic_routed}.retry.{delay_s}s"


def plan_retry(
    delivery: delivery_pb2.Delivery, outcomes: list[outcome_pb2.Outcome], settings: Settings, now_ms: int
) -> RetryPlan:
    deferred = [o for o in outcomes if o.status == DEFERRED]
    if not deferred:
        return RetryPlan(outcomes)
    attempt = max(delivery.attempt, 1)
    delay_s = delay_for(attempt, settings.retry_schedule_s)
    accepted_ms = delivery.accepted_at_ms or now_ms
    if now_ms + delay_s * 1000 - accepted_ms > settings.retry_max_age_s * 1000:
        # The next attempt would come after the queue lifetime: give up now, not later.
        expired = []
        for outcome in deferred:
            final = outcome_pb2.Outcome()
            final.CopyFrom(outcome)
            final.status = EXPIRED
            final.text = (
                f"gave up after {attempt} attempts over {(now_ms - accepted_ms) // 1000}s: {outcome.text}"
            )
            expired.append(final)
        by_recipient = {o.recipient: o for o in expired}
        return RetryPlan([by_recipient.get(o.recipient, o) for o in outcomes], expired=expired)
    nxt = delivery_pb2.Delivery()
    nxt.CopyFrom(delivery)
    del nxt.recipients[:]
    nxt.recipients.extend(o.recipient for o in deferred)
    nxt.attempt = attempt + 1
    nxt.not_before_ms = now_ms + delay_s * 1000
    retry = Output(
        retry_topic(settings, delay_s),
        nxt.SerializeToString(),
        key=nxt.domain.encode(),
        headers=((NOT_BEFORE_HEADER, str(nxt.not_before_ms).encode()),),
    )
    return RetryPlan(outcomes, retry=retry)
