from datetime import UTC, datetime

import pytest

from services.ingress import message

_CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_message_id_is_26_chars_sortable_and_unique() -> None:
    ids = [message.new_message_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 26 and set(i) <= _CROCKFORD for i in ids)
    early = message.new_message_id(1_000, b"\xff" * 10)
    late = message.new_message_id(1_001, b"\x00" * 10)
    assert early < late


def test_message_id_known_value() -> None:
    assert message.new_message_id(0, b"\x00" * 10) == "0" * 26
    # 48-bit time prefix: 10 chars of 5 bits hold it (the first char only its top 3 bits).
    assert message.new_message_id((1 << 48) - 1, b"\x00" * 10) == "7ZZZZZZZZZ" + "0" * 16
    with pytest.raises(ValueError, match="48 bits"):
        message.new_message_id(1 << 48, b"\x00" * 10)


@pytest.mark.parametrize(
    ("data", "bare"),
    [
        (b"Subject: x\r\n\r\nbody\r\n", False),
        (b"", False),
        (b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<a@b>\r\n", True),
        (b"body\n.\r\n", True),
        (b"body\r.\r\n", True),
        (b"body\r\n.\rx\r\n", True),
        (b"line\n", True),
        (b"line\r", True),
    ],
)
def test_bare_newline(data: bytes, bare: bool) -> None:
    assert message.has_bare_newline(data) is bare


def test_protocol_names() -> None:
    assert message.protocol_name(esmtp=False, tls=True, authenticated=True, smtputf8=False) == "SMTP"
    assert message.protocol_name(esmtp=True, tls=False, authenticated=False, smtputf8=False) == "ESMTP"
    assert message.protocol_name(esmtp=True, tls=True, authenticated=True, smtputf8=False) == "ESMTPSA"
    assert message.protocol_name(esmtp=True, tls=False, authenticated=True, smtputf8=False) == "ESMTPA"
    assert message.protocol_name(esmtp=True, tls=True, authenticated=False, smtputf8=True) == "UTF8SMTPS"


WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_received_header_single_recipient() -> None:
    header = message.received_header(
        helo="client.example",
        client_ip="192.0.2.7",
        hostname="mx.baton.test",
        protocol="ESMTPS",
        message_id="01ID",
        recipients=["to@example.com"],
        when=WHEN,
    )
    assert header == (
        b"Received: from client.example (unknown [192.0.2.7])\r\n"
        b"\tby mx.baton.test (Baton) with ESMTPS id 01ID\r\n"
        b"\tfor <to@example.com>; Tue, 04 Mar 2025 05:06:07 +0000\r\n"
    )


def test_received_header_hides_multiple_recipients_and_sanitises_helo() -> None:
    header = message.received_header(
        helo="evil\rX-Injected: 1",
        client_ip="2001:db8::1",
        hostname="mx.baton.test",
        protocol="ESMTP",
        message_id="01ID",
        recipients=["a@example.com", "b@example.com"],
        when=WHEN,
    )
    assert b"a@example.com" not in header
    assert b"\r" not in header.replace(b"\r\n", b"")
    assert header.startswith(b"Received: from evil?X-Injected:?1 (unknown [IPv6:2001:db8::1])\r\n")
    assert header.endswith(b"id 01ID;\r\n\tTue, 04 Mar 2025 05:06:07 +0000\r\n")
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))


def test_header_fields_unfold_and_stop_at_body() -> None:
    data = (
        b"Subject: hello\r\n"
        b"X-PHP-Originating-Script: 1000:mailer\r\n"
        b" .php\r\n"
        b"\r\n"
        b"Message-ID: <in-body@example>\r\n"
    )
    assert message.header_fields(data) == [
        ("Subject", "hello"),
        ("X-PHP-Originating-Script", "1000:mailer .php"),
    ]
    assert message.find_header(data, "message-id") is None
    assert message.find_header(data, "SUBJECT") == "hello"
    assert message.header_fields(b"\r\nSubject: body only\r\n") == []
    assert message.header_fields(b"Subject: no body") == [("Subject", "no body")]


def test_php_script() -> None:
    assert message.php_script(b"X-PHP-Originating-Script: 1000:mailer.php\r\n\r\nbody") == "1000:mailer.php"
    assert message.php_script(b"Subject: x\r\n\r\nX-PHP-Originating-Script: 1:no.php\r\n") == ""


def test_prepare_body_adds_message_id_only_if_missing() -> None:
    received = b"Received: x\r\n"
    without = b"Subject: a\r\n\r\nbody\r\n"
    out = message.prepare_body(without, received=received, message_id="01ID", hostname="h.test")
    assert out == b"Received: x\r\nMessage-ID: <01ID@h.test>\r\nSubject: a\r\n\r\nbody\r\n"
    with_id = b"Message-Id: <own@example>\r\n\r\nbody\r\n"
    out = message.prepare_body(with_id, received=received, message_id="01ID", hostname="h.test")
    assert out == received + with_id


def test_sender_identity_and_body_type() -> None:
    assert message.sender_identity("alice", "192.0.2.1") == "auth:alice"
    assert message.sender_identity("", "192.0.2.1") == "ip:192.0.2.1"
    assert message.body_type(["SIZE=10", "BODY=8BITMIME"]) == "8BITMIME"
    assert message.body_type(["SMTPUTF8"]) == ""


def test_build_envelope() -> None:
    body = b"Received: x\r\nX-PHP-Originating-Script: 33:send.php\r\n\r\nhi\r\n"
    env = message.build_envelope(
        message_id="01ID",
        received_at_ms=123,
        client_ip="192.0.2.1",
        client_port=4000,
        helo="c.example",
        auth_user="",
        mail_from="<>",
        rcpt_to=["a@example.com"],
        body=body,
        smtputf8=True,
        mail_options=["BODY=8BITMIME", "SMTPUTF8"],
        ingress_host="ingress-0",
        tls_version="TLSv1.3",
    )
    assert env.mail_from == ""
    assert env.php_script == "33:send.php"
    assert env.sender_identity == "ip:192.0.2.1"
    assert env.body_type == "8BITMIME"
    assert env.smtputf8
    assert list(env.rcpt_to) == ["a@example.com"]
    assert (env.client_port, env.ingress_host, env.tls_version) == (4000, "ingress-0", "TLSv1.3")
    assert env.SerializeToString()


def test_long_line_limit_is_998_octets_without_crlf() -> None:
    assert not message.has_long_line(b"a" * 998 + b"\r\n" + b"b" * 998)
    assert message.has_long_line(b"x\r\n" + b"a" * 999 + b"\r\n")


def test_nul_and_8bit_header_checks() -> None:
    assert message.has_nul(b"a\x00b")
    assert not message.has_nul(b"ab")
    assert message.has_8bit_header("Subject: café\r\n\r\nbody".encode())
    assert not message.has_8bit_header("Subject: cafe\r\n\r\ncafé".encode())
