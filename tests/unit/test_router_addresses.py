import pytest

from services.router.addresses import encode_domain, group_recipients, parse_recipient


def test_groups_by_domain_in_first_seen_order() -> None:
    groups = group_recipients(["a@x.test", "b@Y.test", "c@X.TEST", "d@y.test."])
    assert list(groups.by_domain) == ["x.test", "y.test"]
    assert [r.address for r in groups.by_domain["x.test"]] == ["a@x.test", "c@X.TEST"]
    assert [r.address for r in groups.by_domain["y.test"]] == ["b@Y.test", "d@y.test."]
    assert groups.invalid == []


def test_local_part_is_kept_as_is_and_domain_lowercased() -> None:
    rcpt = parse_recipient("John.Doe@Example.COM")
    assert rcpt.local_part == "John.Doe"
    assert rcpt.domain == "example.com"
    assert rcpt.address == "John.Doe@Example.COM"


def test_quoted_local_part_with_at_sign_splits_at_last_at() -> None:
    rcpt = parse_recipient('"a@b"@example.com')
    assert rcpt.local_part == '"a@b"'
    assert rcpt.domain == "example.com"


def test_idna_domains_are_encoded_to_a_labels() -> None:
    assert encode_domain("Bücher.Example") == "xn--bcher-kva.example"
    assert parse_recipient("jörg@bücher.example").local_part == "jörg"


def test_duplicates_are_dropped() -> None:
    groups = group_recipients(["a@x.test", "a@x.test"])
    assert [r.address for r in groups.by_domain["x.test"]] == ["a@x.test"]


@pytest.mark.parametrize("address", ["nodomain", "@x.test", "a@", "a@x..test", "a@[300.1.1.1]", "a@[junk"])
def test_unroutable_addresses_are_invalid(address: str) -> None:
    groups = group_recipients([address, "ok@x.test"])
    assert [b.address for b in groups.invalid] == [address]
    assert list(groups.by_domain) == ["x.test"]


def test_address_literals_are_normalised() -> None:
    assert parse_recipient("a@[192.0.2.1]").domain == "[192.0.2.1]"
    assert parse_recipient("a@[ipv6:2001:DB8::1]").domain == "[IPv6:2001:db8::1]"
