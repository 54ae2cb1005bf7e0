"""decode_envelope and FilterHandler on hand-built records."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from baton.kafka.stage import InvalidRecord, Output
from baton.settings import Settings
from baton.v1 import envelope_pb2, verdict_pb2
from services.filter.handler import FilterHandler, decode_envelope

BODY = b"From: alice@example.com\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: hi\r\n\r\nHello.\r\n"


@dataclass
class FakeRecord:
    """The one attribute FilterHandler reads from an aiokafka ConsumerRecord."""

    value: bytes | None


def _envelope(**fields: object) -> envelope_pb2.Envelope:
    values: dict[str, object] = {
        "message_id": "m-1",
        "mail_from": "alice@example.com",
        "rcpt_to": ["bob@example.org"],
        "body": BODY,
    }
    values.update(fields)
    return envelope_pb2.Envelope(**values)  # type: ignore[arg-type]


def test_a_complete_envelope_is_decoded() -> None:
    envelope = decode_envelope(_envelope(rcpt_to=["a@x.org", "b@y.org"]).SerializeToString())
    assert envelope.message_id == "m-1"
    assert list(envelope.rcpt_to) == ["a@x.org", "b@y.org"]
    assert envelope.body == BODY


def test_a_body_reference_without_a_body_is_refused_until_a_blob_store_exists() -> None:
    with pytest.raises(InvalidRecord, match="inline body"):
        decode_envelope(_envelope(body=b"", body_ref="s3://bucket/m-1").SerializeToString())


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (None, "empty record"),
        (b"", "empty record"),
        (b"\xff\xff\xff", "undecodable Envelope"),
        (b"garbage", "undecodable Envelope"),
        # Valid wire format (field 1 as a varint) but no usable Envelope.
        (b"\x08\x01", "without message_id"),
        (_envelope(message_id="").SerializeToString(), "without message_id"),
        (_envelope(rcpt_to=[]).SerializeToString(), "without recipients"),
        (_envelope(body=b"").SerializeToString(), "without an inline body"),
    ],
    ids=["none", "empty", "ff-bytes", "text", "wrong-wire-type", "no-id", "no-rcpt", "no-body"],
)
def test_unusable_records_are_invalid(value: bytes | None, error: str) -> None:
    with pytest.raises(InvalidRecord, match=error):
        decode_envelope(value)


def test_a_message_id_that_is_not_utf8_is_invalid() -> None:
    valid = _envelope(message_id="m-é").SerializeToString()
    broken = valid.replace("m-é".encode(), b"m-\xff\xfe")
    assert broken != valid
    with pytest.raises(InvalidRecord, match="undecodable Envelope"):
        decode_envelope(broken)


async def test_handler_accepts_to_the_filtered_topic() -> None:
    settings = Settings(topic_filtered="filtered-test")
    envelope = _envelope(message_id="m-42", client_ip="192.0.2.1")
    before = int(time.time() * 1000)

    outputs = await FilterHandler(settings)(FakeRecord(envelope.SerializeToString()))

    (output,) = outputs
    assert isinstance(output, Output)
    assert output.topic == "filtered-test"
    assert output.key == b"m-42"
    filtered = verdict_pb2.FilteredMessage.FromString(output.value)
    assert filtered.envelope == envelope
    assert filtered.verdict.action == verdict_pb2.ACTION_ACCEPT
    assert filtered.verdict.score == 0.0
    assert list(filtered.verdict.reasons) == []
    assert before <= filtered.verdict.decided_at_ms <= int(time.time() * 1000)


async def test_handler_carries_structural_defects_as_reasons() -> None:
    body = b"Subject: a\r\nSubject: b\r\n\r\nno From, no Date\r\n"
    outputs = await FilterHandler(Settings())(FakeRecord(_envelope(body=body).SerializeToString()))
    filtered = verdict_pb2.FilteredMessage.FromString(outputs[0].value)
    assert outputs[0].topic == "filtered"
    assert filtered.verdict.action == verdict_pb2.ACTION_ACCEPT
    assert [(r.rule, r.detail) for r in filtered.verdict.reasons] == [
        ("header.missing", "From"),
        ("header.missing", "Date"),
        ("header.repeated", "Subject x2"),
    ]


async def test_handler_refuses_an_invalid_record() -> None:
    with pytest.raises(InvalidRecord):
        await FilterHandler(Settings())(FakeRecord(b"\xff\xff\xff"))
