"""Pipeline records become timeline rows; the summary tells the latest status and completeness."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from baton.v1 import delivery_pb2, envelope_pb2, outcome_pb2, verdict_pb2
from services.reputation.timeline import (
    EventKind,
    EventRow,
    InvalidTimelineRecord,
    Source,
    accepted_event,
    event_from_record,
    filtered_event,
    outcome_event,
    routed_event,
    summarize,
)


def envelope(**overrides: Any) -> envelope_pb2.Envelope:
    fields: dict[str, Any] = {
        "message_id": "m1",
        "received_at_ms": 1_700_000_000_000,
        "client_ip": "192.0.2.7",
        "client_port": 40000,
        "helo": "web1.example",
        "auth_user": "alice",
        "php_script": "contact.php",
        "sender_identity": "auth:alice",
        "mail_from": "alice@example.com",
        "rcpt_to": ["bob@example.org", "carol@Example.NET"],
        "body": b"Subject: hi\r\n\r\nhello\r\n",
        "ingress_host": "ingress-0",
    }
    fields.update(overrides)
    return envelope_pb2.Envelope(**fields)


def filtered(action: verdict_pb2.Action = verdict_pb2.ACTION_ACCEPT) -> verdict_pb2.FilteredMessage:
    return verdict_pb2.FilteredMessage(
        envelope=envelope(),
        verdict=verdict_pb2.Verdict(
            action=action,
            score=2.5,
            reasons=[verdict_pb2.Reason(rule="url_shortener", detail="bit.ly", score=2.5)],
            decided_at_ms=1_700_000_000_050,
        ),
    )


def delivery() -> delivery_pb2.Delivery:
    return delivery_pb2.Delivery(
        message_id="m1",
        domain="example.org",
        route=delivery_pb2.Route(
            kind=delivery_pb2.ROUTE_KIND_MX,
            hosts=[delivery_pb2.Host(name="mx1.example.org", preference=10, addresses=["198.51.100.1"])],
        ),
        recipients=["bob@example.org"],
        sender_identity="auth:alice",
        attempt=1,
        accepted_at_ms=1_700_000_000_000,
    )


def outcome(
    recipient: str = "bob@example.org",
    status: outcome_pb2.OutcomeStatus | int = outcome_pb2.OUTCOME_STATUS_DELIVERED,
    attempt: int = 1,
    at_ms: int = 1_700_000_000_200,
) -> outcome_pb2.Outcome:
    return outcome_pb2.Outcome(
        message_id="m1",
        recipient=recipient,
        status=status,  # type: ignore[arg-type]  # an int: tests also send unknown numbers
        sender_identity="auth:alice",
        stage="sender",
        domain=recipient.rpartition("@")[2].lower(),
        remote_host="mx1.example.org",
        smtp_code=250,
        enhanced_status="2.0.0",
        text="2.0.0 Ok: queued",
        attempt=attempt,
        at_ms=at_ms,
    )


def test_accepted_row() -> None:
    row = accepted_event(envelope())
    assert {k: v for k, v in row.items() if k != "detail"} == {
        "message_id": "m1",
        "kind": "accepted",
        "key": "",
        "sender_identity": "auth:alice",
        "at_ms": 1_700_000_000_000,
    }
    detail = json.loads(row["detail"])
    assert detail["client_ip"] == "192.0.2.7"
    assert detail["helo"] == "web1.example"
    assert detail["auth_user"] == "alice"
    assert detail["php_script"] == "contact.php"
    assert detail["mail_from"] == "alice@example.com"
    assert detail["rcpt_count"] == 2
    assert detail["rcpt_to"] == ["bob@example.org", "carol@Example.NET"]
    assert detail["size"] == len(b"Subject: hi\r\n\r\nhello\r\n")
    assert "body" not in detail


def test_filtered_row() -> None:
    row = filtered_event(filtered())
    assert (row["kind"], row["key"], row["at_ms"], row["sender_identity"]) == (
        "filtered",
        "",
        1_700_000_000_050,
        "auth:alice",
    )
    assert json.loads(row["detail"]) == {
        "action": "accept",
        "score": 2.5,
        "reasons": [{"rule": "url_shortener", "detail": "bit.ly", "score": 2.5}],
    }


def test_routed_row_is_keyed_by_domain_and_dated_by_the_record() -> None:
    row = routed_event(delivery(), record_timestamp_ms=1_700_000_000_100)
    assert (row["kind"], row["key"], row["at_ms"]) == ("routed", "example.org", 1_700_000_000_100)
    detail = json.loads(row["detail"])
    assert detail["route"] == "mx"
    assert detail["hosts"] == [
        {"name": "mx1.example.org", "preference": 10, "addresses": ["198.51.100.1"], "port": 0}
    ]
    assert detail["recipients"] == ["bob@example.org"]
    # Without the record's timestamp the step is dated at acceptance.
    assert routed_event(delivery())["at_ms"] == 1_700_000_000_000


def test_outcome_row() -> None:
    row = outcome_event(outcome(status=outcome_pb2.OUTCOME_STATUS_DEFERRED, attempt=2))
    assert (row["kind"], row["key"]) == ("outcome", "bob@example.org deferred 2")
    assert row["at_ms"] == 1_700_000_000_200
    detail = json.loads(row["detail"])
    assert detail["status"] == "deferred"
    assert detail["remote_host"] == "mx1.example.org"
    assert detail["smtp_code"] == 250
    assert detail["enhanced_status"] == "2.0.0"
    assert detail["text"] == "2.0.0 Ok: queued"
    assert detail["failure_class"] == ""
    assert detail["stage"] == "sender"


def test_same_record_gives_same_row() -> None:
    # Replays must map to the identical step so the store can ignore them.
    assert outcome_event(outcome()) == outcome_event(outcome())
    assert accepted_event(envelope()) == accepted_event(envelope())


def test_unknown_enum_numbers_are_kept() -> None:
    assert json.loads(outcome_event(outcome(status=42))["detail"])["status"] == "42"


@pytest.mark.parametrize(
    ("source", "value", "kind"),
    [
        (Source.ACCEPTED, envelope().SerializeToString(), EventKind.ACCEPTED),
        (Source.FILTERED, filtered().SerializeToString(), EventKind.FILTERED),
        (Source.ROUTED, delivery().SerializeToString(), EventKind.ROUTED),
        (Source.RESULT, outcome().SerializeToString(), EventKind.OUTCOME),
    ],
)
def test_event_from_record(source: Source, value: bytes, kind: EventKind) -> None:
    row = event_from_record(source, value, 1_700_000_000_999)
    assert row["kind"] == kind
    assert row["message_id"] == "m1"


def test_undecodable_record_is_invalid() -> None:
    with pytest.raises(InvalidTimelineRecord, match="cannot decode Envelope"):
        event_from_record(Source.ACCEPTED, b"\xff\xff\xff")


def test_record_without_message_id_is_invalid() -> None:
    with pytest.raises(InvalidTimelineRecord, match="without a message id"):
        event_from_record(Source.RESULT, outcome_pb2.Outcome(recipient="a@b").SerializeToString())


@dataclass
class S:
    kind: str
    detail: dict[str, Any]


def steps(*rows: EventRow) -> list[S]:
    return [S(kind=r["kind"], detail=json.loads(r["detail"])) for r in rows]


def test_summary_complete_when_every_recipient_answered() -> None:
    carol = outcome("carol@example.net", outcome_pb2.OUTCOME_STATUS_DEFERRED)
    partial = steps(
        accepted_event(envelope()),
        filtered_event(filtered()),
        routed_event(delivery()),
        outcome_event(outcome()),
    )
    assert summarize(partial).recipients == {"bob@example.org": "delivered"}
    assert not summarize(partial).complete
    # carol's domain is spelled differently by the Envelope and the Outcome; still the same recipient.
    full = summarize([*partial, *steps(outcome_event(carol))])
    assert full.complete
    assert full.recipients == {"bob@example.org": "delivered", "carol@example.net": "deferred"}


def test_summary_latest_status_wins() -> None:
    deferred = outcome(status=outcome_pb2.OUTCOME_STATUS_DEFERRED, at_ms=1)
    bounced = outcome(status=outcome_pb2.OUTCOME_STATUS_BOUNCED, attempt=2, at_ms=2)
    assert summarize(steps(outcome_event(deferred), outcome_event(bounced))).recipients == {
        "bob@example.org": "bounced"
    }


def test_summary_needs_routed_unless_rejected() -> None:
    one = envelope(rcpt_to=["bob@example.org"])
    answered = outcome_event(outcome(status=outcome_pb2.OUTCOME_STATUS_REJECTED))
    assert not summarize(steps(accepted_event(one), filtered_event(filtered()), answered)).complete
    rejected = filtered_event(filtered(verdict_pb2.ACTION_REJECT))
    assert summarize(steps(accepted_event(one), rejected, answered)).complete
    # Nothing complete without the Envelope.
    assert not summarize(steps(rejected, answered)).complete
