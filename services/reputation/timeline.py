"""Turn pipeline records into the rows of a message's timeline (``baton.store.MessageEvent``).

Pure: no I/O. Each function maps one decoded record to one row; the row's ``(message_id, kind, key)``
names the step, so a replayed record maps to the same row and the store ignores it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypedDict, TypeVar

from google.protobuf.message import DecodeError, Message

from baton.v1 import delivery_pb2, envelope_pb2, outcome_pb2, verdict_pb2

M = TypeVar("M", bound=Message)


class EventKind(StrEnum):
    """A step of a message's path; the ``kind`` column."""

    # ingress accepted the message (from `accepted`); one per message.
    ACCEPTED = "accepted"
    # The filter decided (from `filtered`); one per message.
    FILTERED = "filtered"
    # The router chose a route for one destination domain (from `routed`); one per domain.
    ROUTED = "routed"
    # One recipient's fate after one attempt (from `result`); several per recipient when deferred.
    OUTCOME = "outcome"


class Source(StrEnum):
    """Which pipeline topic a record came from; the values are the default topic names.

    The consumer maps configured topic names (``Settings.topic_*``) to these.
    """

    # Envelope values.
    ACCEPTED = "accepted"
    # FilteredMessage values.
    FILTERED = "filtered"
    # Delivery values.
    ROUTED = "routed"
    # Outcome values.
    RESULT = "result"


class InvalidTimelineRecord(ValueError):
    """The record cannot be decoded or lacks a message id; retrying will not help (dead-letter it)."""


class EventRow(TypedDict):
    """Column values of one ``message_events`` row (without the surrogate ``id``)."""

    message_id: str
    kind: str
    key: str
    sender_identity: str
    at_ms: int
    # JSON object text; keys sorted so equal records give equal rows.
    detail: str


# Final states: nothing more will happen to the recipient.
FINAL_STATUSES = frozenset({"delivered", "bounced", "rejected", "expired"})


def _label(enum: Any, number: int, prefix: str) -> str:
    try:
        return str(enum.Name(number)).removeprefix(prefix).lower()
    except ValueError:
        # A number newer than these generated protos: keep it rather than fail the record.
        return str(number)


def status_name(status: int) -> str:
    """``OUTCOME_STATUS_DELIVERED`` -> ``"delivered"``."""
    return _label(outcome_pb2.OutcomeStatus, status, "OUTCOME_STATUS_")


def action_name(action: int) -> str:
    """``ACTION_ACCEPT`` -> ``"accept"``."""
    return _label(verdict_pb2.Action, action, "ACTION_")


def route_kind_name(kind: int) -> str:
    """``ROUTE_KIND_IMPLICIT_MX`` -> ``"implicit_mx"``."""
    return _label(delivery_pb2.RouteKind, kind, "ROUTE_KIND_")


def outcome_key(recipient: str, status: str, attempt: int) -> str:
    """The ``key`` of an outcome step; one row per recipient, status and attempt."""
    return f"{recipient} {status} {attempt}"


def _row(
    message_id: str, kind: EventKind, key: str, sender_identity: str, at_ms: int, detail: dict[str, Any]
) -> EventRow:
    if not message_id:
        raise InvalidTimelineRecord(f"{kind} record without a message id")
    return EventRow(
        message_id=message_id,
        kind=kind.value,
        key=key,
        sender_identity=sender_identity,
        at_ms=at_ms,
        detail=json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    )


def accepted_event(envelope: envelope_pb2.Envelope) -> EventRow:
    return _row(
        envelope.message_id,
        EventKind.ACCEPTED,
        "",
        envelope.sender_identity,
        envelope.received_at_ms,
        {
            "client_ip": envelope.client_ip,
            "helo": envelope.helo,
            "auth_user": envelope.auth_user,
            "php_script": envelope.php_script,
            "mail_from": envelope.mail_from,
            "rcpt_count": len(envelope.rcpt_to),
            # The API needs the list to tell whether every recipient has an outcome.
            "rcpt_to": list(envelope.rcpt_to),
            "size": len(envelope.body),
            "ingress_host": envelope.ingress_host,
            "tls_version": envelope.tls_version,
        },
    )


def filtered_event(filtered: verdict_pb2.FilteredMessage) -> EventRow:
    verdict = filtered.verdict
    return _row(
        filtered.envelope.message_id,
        EventKind.FILTERED,
        "",
        filtered.envelope.sender_identity,
        verdict.decided_at_ms,
        {
            "action": action_name(verdict.action),
            "score": verdict.score,
            "reasons": [{"rule": r.rule, "detail": r.detail, "score": r.score} for r in verdict.reasons],
        },
    )


def routed_event(delivery: delivery_pb2.Delivery, record_timestamp_ms: int = 0) -> EventRow:
    """``record_timestamp_ms`` (the Kafka record's timestamp) dates the step: a Delivery carries no
    time of routing. Without it the step is dated at acceptance."""
    return _row(
        delivery.message_id,
        EventKind.ROUTED,
        delivery.domain,
        delivery.sender_identity,
        record_timestamp_ms or delivery.accepted_at_ms,
        {
            "route": route_kind_name(delivery.route.kind),
            "hosts": [
                {"name": h.name, "preference": h.preference, "addresses": list(h.addresses), "port": h.port}
                for h in delivery.route.hosts
            ],
            "recipients": list(delivery.recipients),
            "dkim_domain": delivery.dkim_domain,
            "ip_pool": delivery.ip_pool,
        },
    )


def outcome_event(outcome: outcome_pb2.Outcome) -> EventRow:
    status = status_name(outcome.status)
    return _row(
        outcome.message_id,
        EventKind.OUTCOME,
        outcome_key(outcome.recipient, status, outcome.attempt),
        outcome.sender_identity,
        outcome.at_ms,
        {
            "recipient": outcome.recipient,
            "status": status,
            "domain": outcome.domain,
            "remote_host": outcome.remote_host,
            "smtp_code": outcome.smtp_code,
            "enhanced_status": outcome.enhanced_status,
            "text": outcome.text,
            "failure_class": outcome.failure_class,
            "stage": outcome.stage,
            "attempt": outcome.attempt,
        },
    )


def _decode(message: M, value: bytes) -> M:
    try:
        message.ParseFromString(value)
    except DecodeError as exc:
        raise InvalidTimelineRecord(f"cannot decode {type(message).__name__}: {exc}") from exc
    return message


_HANDLERS: dict[Source, Callable[[bytes, int], EventRow]] = {
    Source.ACCEPTED: lambda v, _ts: accepted_event(_decode(envelope_pb2.Envelope(), v)),
    Source.FILTERED: lambda v, _ts: filtered_event(_decode(verdict_pb2.FilteredMessage(), v)),
    Source.ROUTED: lambda v, ts: routed_event(_decode(delivery_pb2.Delivery(), v), ts),
    Source.RESULT: lambda v, _ts: outcome_event(_decode(outcome_pb2.Outcome(), v)),
}


def event_from_record(source: Source, value: bytes, record_timestamp_ms: int = 0) -> EventRow:
    """Decode one record's value from ``source`` and map it to its timeline row.

    Raises ``InvalidTimelineRecord`` for a value that is not the topic's message or has no id.
    """
    return _HANDLERS[source](value, record_timestamp_ms)


class Step(Protocol):
    """What ``summarize`` reads of a stored step."""

    @property
    def kind(self) -> str: ...

    @property
    def detail(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Summary:
    # Latest outcome status per recipient that has one (recipients as the outcomes spell them).
    recipients: dict[str, str]
    # Every step that will happen has been recorded; see ``summarize``.
    complete: bool


def _address_key(address: str) -> str:
    # Stages may lowercase the domain; the local part is case-sensitive (RFC 5321 section 2.4).
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{domain.lower()}" if at else address


def summarize(steps: Sequence[Step]) -> Summary:
    """Latest status per recipient and whether the timeline is complete, from steps oldest first.

    Complete means: accepted and filtered are recorded, routed too unless the filter did not accept
    (a rejected message is never routed), and every recipient of the Envelope has an outcome —
    a final one or a deferral (a deferred recipient is accounted for until its next attempt).
    """
    recipients: dict[str, str] = {}
    kinds: set[str] = set()
    envelope_rcpts: list[str] = []
    action = ""
    for step in steps:
        kinds.add(step.kind)
        if step.kind == EventKind.ACCEPTED:
            envelope_rcpts = [str(r) for r in step.detail.get("rcpt_to", [])]
        elif step.kind == EventKind.FILTERED:
            action = str(step.detail.get("action", ""))
        elif step.kind == EventKind.OUTCOME:
            recipients[str(step.detail.get("recipient", ""))] = str(step.detail.get("status", ""))
    answered = {_address_key(r) for r in recipients}
    complete = (
        EventKind.ACCEPTED in kinds
        and EventKind.FILTERED in kinds
        and (EventKind.ROUTED in kinds or action != "accept")
        and all(_address_key(r) in answered for r in envelope_rcpts)
    )
    return Summary(recipients=recipients, complete=complete)
