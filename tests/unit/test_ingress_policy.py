import ipaddress

import pytest

from services.ingress import policy
from services.ingress.policy import RejectReason

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]


@pytest.mark.parametrize(
    "address",
    [
        "user@example.com",
        "first.last+tag@sub.example.co.uk",
        '"quoted name"@example.com',
        "user@[192.0.2.1]",
        "user@[IPv6:2001:db8::1]",
        "a" * 64 + "@example.com",
    ],
)
def test_valid_mailboxes_pass(address: str) -> None:
    assert policy.check_mailbox(address, smtputf8=False) is None


@pytest.mark.parametrize(
    ("address", "text"),
    [
        ("@a,@b:user@c.example", "source routes"),
        ("@relay.example:user@c.example", "source routes"),
        ("user%other.example@relay.example", "percent hack"),
        ("host!user@relay.example", "bang paths"),
        ("host!user", "domain"),
        ("user", "domain"),
        ("user@", "domain"),
        ("@example.com", "source routes"),
        ('"a@b.example"@relay.example', "routing characters"),
        ("a" * 65 + "@example.com", "local part too long"),
        ("u@" + ".".join(["a" * 63] * 5), "domain too long"),
        ("u" * 60 + "@" + ".".join(["a" * 60] * 4), "address too long"),
        ("user@exa_mple.com", "invalid domain"),
        ("user@-example.com", "invalid domain"),
        ("user@example..com", "invalid domain"),
        ("user@[300.1.1.1]", "invalid domain"),
        ("user@[IPv6:192.0.2.1]", "invalid domain"),
        ("us\rer@example.com", "control characters"),
        ("user@exa\udcffmple.com", "UTF-8"),
    ],
)
def test_dangerous_or_malformed_addresses_are_refused(address: str, text: str) -> None:
    reply = policy.check_mailbox(address, smtputf8=True)
    assert reply is not None
    assert (reply.code, reply.status, reply.reason) == (553, "5.1.3", RejectReason.BAD_ADDRESS)
    assert text in reply.text


def test_path_limit_counts_octets_and_brackets() -> None:
    local = "a" * 64
    domain = ".".join(["b" * 63, "c" * 63, "d" * 59])  # 187 octets
    assert policy.check_mailbox(f"{local}@{domain}", smtputf8=False) is None  # 252 + 2 brackets
    too_long = ".".join(["b" * 63, "c" * 63, "d" * 63])  # path 258 octets
    reply = policy.check_mailbox(f"{local}@{too_long}", smtputf8=False)
    assert reply is not None
    assert "too long" in reply.text


def test_non_ascii_needs_smtputf8() -> None:
    reply = policy.check_mailbox("jörg@bücher.example", smtputf8=False)
    assert reply is policy.NEEDS_SMTPUTF8
    assert str(reply) == "553 5.6.7 non-ASCII address requires SMTPUTF8"
    assert policy.check_mailbox("jörg@bücher.example", smtputf8=True) is None


def test_null_sender_allowed_only_as_reverse_path() -> None:
    assert policy.check_reverse_path("<>", smtputf8=False) is None
    reply = policy.check_forward_path("<>", smtputf8=False)
    assert reply is not None
    assert reply.status == "5.1.3"


@pytest.mark.parametrize(
    ("ip", "authenticated", "allowed"),
    [
        ("10.1.2.3", False, True),
        ("192.0.2.1", False, False),
        ("192.0.2.1", True, True),
        ("2001:db8::5", False, True),
        ("2001:db9::5", False, False),
        ("::ffff:10.1.2.3", False, True),
        ("not-an-ip", False, False),
    ],
)
def test_relay_needs_auth_or_trusted_network(ip: str, authenticated: bool, allowed: bool) -> None:
    reply = policy.check_relay(authenticated=authenticated, client_ip=ip, trusted=TRUSTED)
    if allowed:
        assert reply is None
    else:
        assert reply is policy.RELAY_DENIED
        assert str(reply) == "550 5.7.1 relay denied"


def test_recipient_limit() -> None:
    assert policy.check_recipient_count(1, 2) is None
    reply = policy.check_recipient_count(2, 2)
    assert reply is not None
    assert (reply.code, reply.status) == (452, "4.5.3")


def test_reply_strings_carry_enhanced_codes() -> None:
    assert str(policy.MESSAGE_TOO_BIG) == "552 5.3.4 message too big"
    assert str(policy.BARE_NEWLINE) == "550 5.5.2 bare newline not allowed"
    assert str(policy.TEMPFAIL_KAFKA).startswith("451 4.3.0 ")
    assert str(policy.BACKPRESSURE).startswith("451 4.3.0 ")
