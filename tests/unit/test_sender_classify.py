"""The sender's reply classifier: pure, no sockets."""

from __future__ import annotations

import pytest

from services.sender.classify import (
    BOUNCED,
    DEFERRED,
    DELIVERED,
    FailureClass,
    LocalFailure,
    classify_local,
    classify_reply,
    parse_enhanced_status,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5.7.1 Relaying denied", "5.7.1"),
        ("  4.2.2 Mailbox full", "4.2.2"),
        ("2.0.0 OK", "2.0.0"),
        ("5.1.10 Recipient address rejected", "5.1.10"),
        ("Relaying denied 5.7.1", None),
        ("5.7 Relaying denied", None),
        ("5.7.1a nope", None),
        ("3.1.1 not a class", None),
        ("", None),
    ],
)
def test_parse_enhanced_status(text: str, expected: str | None) -> None:
    assert parse_enhanced_status(text) == expected


def test_2xx_delivers_without_failure_class() -> None:
    verdict = classify_reply(250, "2.0.0 OK queued as 1234")
    assert verdict.status == DELIVERED
    assert verdict.enhanced_status == "2.0.0"
    assert verdict.failure_class is FailureClass.NONE
    assert verdict.failure_class.value == ""


def test_2xx_without_enhanced_status_derives_it() -> None:
    assert classify_reply(250, "Ok").enhanced_status == "2.0.0"


@pytest.mark.parametrize(
    ("code", "text", "status", "enhanced", "failure_class"),
    [
        (
            550,
            "5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
            BOUNCED,
            "5.1.1",
            FailureClass.MAILBOX,
        ),
        (552, "5.2.2 Mailbox full", BOUNCED, "5.2.2", FailureClass.MAILBOX),
        (452, "4.2.2 Over quota", DEFERRED, "4.2.2", FailureClass.MAILBOX),
        (550, "No such user here", BOUNCED, "5.0.0", FailureClass.MAILBOX),
        (
            554,
            "5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org",
            BOUNCED,
            "5.7.1",
            FailureClass.POLICY,
        ),
        (550, "Message rejected as spam", BOUNCED, "5.0.0", FailureClass.POLICY),
        (
            421,
            "4.7.0 Too many connections from your IP, try again later",
            DEFERRED,
            "4.7.0",
            FailureClass.RATE_LIMIT,
        ),
        (450, "Rate limit exceeded", DEFERRED, "4.0.0", FailureClass.RATE_LIMIT),
        (552, "5.3.4 Message size exceeds fixed limit", BOUNCED, "5.3.4", FailureClass.CONTENT),
        (554, "5.6.0 Message content rejected", BOUNCED, "5.6.0", FailureClass.CONTENT),
        (554, "Virus found in message", BOUNCED, "5.0.0", FailureClass.CONTENT),
        (500, "Syntax error, command unrecognized", BOUNCED, "5.0.0", FailureClass.PROTOCOL),
        (503, "5.5.1 Bad sequence of commands", BOUNCED, "5.5.1", FailureClass.PROTOCOL),
        (
            421,
            "Service not available, closing transmission channel",
            DEFERRED,
            "4.0.0",
            FailureClass.CONNECTION,
        ),
        (451, "4.4.1 No answer from downstream host", DEFERRED, "4.4.1", FailureClass.CONNECTION),
        (451, "Requested action aborted: local error in processing", DEFERRED, "4.0.0", FailureClass.OTHER),
        (554, "Transaction failed", BOUNCED, "5.0.0", FailureClass.OTHER),
    ],
)
def test_failures(code: int, text: str, status: int, enhanced: str, failure_class: FailureClass) -> None:
    verdict = classify_reply(code, text)
    assert (verdict.status, verdict.enhanced_status, verdict.failure_class) == (
        status,
        enhanced,
        failure_class,
    )


def test_enhanced_status_of_another_class_than_the_code_is_ignored() -> None:
    # A 4xx reply claiming a permanent 5.1.1 is inconsistent; the reply code wins.
    verdict = classify_reply(450, "5.1.1 user unknown")
    assert verdict.status == DEFERRED
    assert verdict.enhanced_status == "4.0.0"
    assert verdict.failure_class is FailureClass.MAILBOX


@pytest.mark.parametrize("code", [0, 199, 354, 600, 999])
def test_unexpected_codes_defer_as_protocol_errors(code: int) -> None:
    verdict = classify_reply(code, "whatever")
    assert (verdict.status, verdict.enhanced_status, verdict.failure_class) == (
        DEFERRED,
        "4.5.0",
        FailureClass.PROTOCOL,
    )


@pytest.mark.parametrize(
    ("failure", "enhanced", "failure_class"),
    [
        (LocalFailure.CONNECT, "4.4.1", FailureClass.CONNECTION),
        (LocalFailure.DISCONNECTED, "4.4.2", FailureClass.CONNECTION),
        (LocalFailure.TIMEOUT, "4.4.2", FailureClass.TIMEOUT),
        (LocalFailure.TLS, "4.7.5", FailureClass.TLS),
        (LocalFailure.PROTOCOL, "4.5.0", FailureClass.PROTOCOL),
    ],
)
def test_local_failures_always_defer(
    failure: LocalFailure, enhanced: str, failure_class: FailureClass
) -> None:
    verdict = classify_local(failure)
    assert (verdict.status, verdict.enhanced_status, verdict.failure_class) == (
        DEFERRED,
        enhanced,
        failure_class,
    )


def test_every_local_failure_is_classified() -> None:
    for failure in LocalFailure:
        assert classify_local(failure).status == DEFERRED
