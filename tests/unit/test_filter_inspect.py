"""inspect_message on small hand-written messages: what is well-formed and what is reported."""

from __future__ import annotations

import time

import pytest

from services.filter.inspect import inspect_message

HEAD = b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"


def _rules(body: bytes) -> list[tuple[str, str]]:
    return [(r.rule, r.detail) for r in inspect_message(body).reasons]


def _nested(depth: int) -> bytes:
    """A message whose multiparts nest ``depth`` levels deep, each well-formed."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return HEAD + b"MIME-Version: 1.0\r\n" + opening + b"Content-Type: text/plain\r\n\r\nleaf" + closing


def test_a_well_formed_message_has_no_reasons() -> None:
    result = inspect_message(HEAD + b"Subject: hello\r\nMessage-ID: <1@example.com>\r\n\r\nHi Bob.\r\n")
    assert result.reasons == []
    assert result.parts == 1
    assert result.message["Subject"] == "hello"


def test_every_reason_has_zero_score() -> None:
    result = inspect_message(b"Subject: a\r\nSubject: b\r\n\r\nbody")
    assert result.reasons
    assert {r.score for r in result.reasons} == {0.0}


def test_missing_from_and_date_are_reported() -> None:
    assert _rules(b"To: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n") == [
        ("header.missing", "From"),
        ("header.missing", "Date"),
    ]
    assert _rules(b"From: alice@example.com\r\n\r\nbody\r\n") == [("header.missing", "Date")]


def test_repeated_headers_are_reported_with_their_count() -> None:
    body = (
        HEAD + b"Subject: one\r\nSubject: two\r\nSubject: three\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
    )
    assert _rules(body + b"\r\nbody\r\n") == [
        ("header.repeated", "Subject x3"),
        ("header.repeated", "Date x2"),
    ]


def test_headers_allowed_many_times_are_not_reported() -> None:
    body = HEAD + b"Received: from a\r\nReceived: from b\r\nComments: x\r\nComments: y\r\n\r\nbody\r\n"
    assert _rules(body) == []


def test_invalid_address_headers_are_reported() -> None:
    rules = _rules(b"From: <<<@@@\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody\r\n")
    assert rules == [("header.invalid", "From: InvalidHeaderDefect")]


def test_a_well_formed_multipart_is_walked() -> None:
    body = HEAD + (
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"--outer\r\nContent-Type: text/plain\r\n\r\ntext\r\n"
        b'--outer\r\nContent-Type: multipart/alternative; boundary="inner"\r\n\r\n'
        b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        b"--inner\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
        b"--inner--\r\n"
        b"--outer--\r\n"
    )
    result = inspect_message(body)
    assert result.reasons == []
    assert result.parts == 5  # outer, text, alternative, plain, html


def test_a_multipart_whose_boundary_never_appears_is_reported() -> None:
    body = (
        HEAD
        + b'Content-Type: multipart/mixed; boundary="declared"\r\n\r\n--other\r\n\r\ntext\r\n--other--\r\n'
    )
    rules = {rule for rule, _ in _rules(body)}
    details = {detail for _, detail in _rules(body)}
    assert rules == {"mime.defect"}
    assert "StartBoundaryNotFoundDefect" in details


def test_a_multipart_without_boundary_parameter_is_reported() -> None:
    body = HEAD + b"Content-Type: multipart/mixed\r\n\r\ntext\r\n"
    assert ("mime.defect", "NoBoundaryInMultipartDefect") in _rules(body)


def test_a_multipart_without_closing_boundary_is_reported() -> None:
    body = (
        HEAD
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\ncut'
    )
    assert ("mime.defect", "CloseBoundaryNotFoundDefect") in _rules(body)


def test_nesting_within_the_limit_is_accepted() -> None:
    result = inspect_message(_nested(25))
    assert result.reasons == []
    assert result.parts == 26


def test_nesting_beyond_the_limit_is_reported_once() -> None:
    result = inspect_message(_nested(60))
    assert [(r.rule, r.detail) for r in result.reasons] == [("mime.too_deep", "nesting deeper than 30")]
    assert result.parts == 32  # the walk stops below depth 30


def test_very_deep_nesting_is_reported_not_raised() -> None:
    # email's BytesParser recurses once per level and runs out of stack near depth 950.
    result = inspect_message(_nested(1000))
    assert "mime.too_deep" in {r.rule for r in result.reasons}


@pytest.mark.parametrize(
    "header",
    [b"Message-ID: <[a]. [b]@x.example>", b"Reply-To: (comment).a@x.example"],
    ids=["message-id-indexerror", "reply-to-typeerror"],
)
def test_headers_the_stdlib_cannot_parse_are_reported_not_raised(header: bytes) -> None:
    rules = {rule for rule, _ in _rules(HEAD + header + b"\r\n\r\nbody\r\n")}
    # The stdlib parser raises IndexError / TypeError on these; inspect reports them instead.
    assert "header.unparseable" in rules


def test_too_many_parts_is_reported_once() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\n%d\r\n" % i for i in range(1100))
    body = HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    started = time.perf_counter()
    result = inspect_message(body)
    assert time.perf_counter() - started < 1.0
    assert [(r.rule, r.detail) for r in result.reasons] == [("mime.too_many_parts", "more than 1000 parts")]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00\x01garbage\x00\r\n",
        b"\x00" * 100,
        bytes(range(256)) * 4,
        b"no header separator at all",
        b"\r\n\r\n\r\n",
        b"From: \xe9\xe8 <x@y>\r\nSubject: =?utf-8?q?broken=ZZ?=\r\nDate: not a date\r\n\r\n\xff",
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64===",
    ],
)
def test_garbage_never_raises(body: bytes) -> None:
    result = inspect_message(body)
    assert result.parts >= 1
    for reason in result.reasons:
        assert reason.rule
        assert len(reason.detail) <= 500


def test_garbage_without_headers_reports_missing_headers() -> None:
    rules = _rules(b"\xff\xfe\x00garbage\r\n\x00")
    assert ("header.missing", "From") in rules
    assert ("header.missing", "Date") in rules
