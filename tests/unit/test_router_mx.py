import random

import pytest

from baton.v1 import delivery_pb2
from services.router.errors import NoMailHost, NullMx
from services.router.mx import MxRecord, choose_hosts, normalise_exchange


def names(records: list[MxRecord], seed: int = 0) -> list[str]:
    return [h.name for h in choose_hosts("example.test", records, random.Random(seed)).hosts]


def test_hosts_in_preference_order() -> None:
    records = [MxRecord(30, "c.test"), MxRecord(10, "a.test"), MxRecord(20, "b.test")]
    choice = choose_hosts("example.test", records, random.Random(0))
    assert choice.kind == delivery_pb2.ROUTE_KIND_MX
    assert [(h.name, h.preference) for h in choice.hosts] == [("a.test", 10), ("b.test", 20), ("c.test", 30)]


def test_equal_preference_is_shuffled_by_the_injected_rng() -> None:
    records = [MxRecord(10, f"mx{i}.test") for i in range(4)] + [MxRecord(5, "first.test")]
    orders = {tuple(names(records, seed)) for seed in range(50)}
    assert len(orders) > 1
    assert all(order[0] == "first.test" for order in orders)
    assert all(sorted(order[1:]) == [f"mx{i}.test" for i in range(4)] for order in orders)
    # Same seed, same order, whatever the record order in the answer.
    assert names(records, 7) == names(list(reversed(records)), 7)


def test_no_records_means_implicit_mx() -> None:
    choice = choose_hosts("example.test", [], random.Random(0))
    assert choice.kind == delivery_pb2.ROUTE_KIND_IMPLICIT_MX
    assert [(h.name, h.preference) for h in choice.hosts] == [("example.test", 0)]


def test_null_mx_is_permanent() -> None:
    with pytest.raises(NullMx) as info:
        choose_hosts("example.test", [MxRecord(0, "")], random.Random(0))
    assert info.value.enhanced_status == "5.1.10"
    assert not info.value.retriable


def test_null_mx_mixed_with_real_records_uses_the_real_ones() -> None:
    assert names([MxRecord(0, ""), MxRecord(10, "mx.test")]) == ["mx.test"]


def test_ip_literal_and_localhost_targets_are_skipped() -> None:
    records = [
        MxRecord(1, "192.0.2.1"),
        MxRecord(2, "localhost"),
        MxRecord(3, "a.localhost"),
        MxRecord(9, "ok.test"),
    ]
    assert names(records) == ["ok.test"]


def test_only_unusable_targets_is_a_permanent_no_mail_host() -> None:
    with pytest.raises(NoMailHost) as info:
        choose_hosts("example.test", [MxRecord(1, "192.0.2.1"), MxRecord(2, "localhost")], random.Random(0))
    assert info.value.enhanced_status == "5.4.4"
    assert "192.0.2.1" in str(info.value)


def test_duplicate_targets_are_tried_once_at_best_preference() -> None:
    choice = choose_hosts(
        "example.test", [MxRecord(20, "mx.test"), MxRecord(10, "mx.test")], random.Random(0)
    )
    assert [(h.name, h.preference) for h in choice.hosts] == [("mx.test", 10)]


def test_normalise_exchange() -> None:
    assert normalise_exchange("MX1.Example.TEST.") == "mx1.example.test"
    assert normalise_exchange(".") == ""
