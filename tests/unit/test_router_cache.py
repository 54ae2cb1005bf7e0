from services.router.cache import TtlCache, TtlPolicy, negative_ttl


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(clock=clock)
    cache.put("a", 1, 10)
    cache.put("b", 2, 20)
    clock.now += 9.9
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is None
    assert cache.get("b") == 2
    assert len(cache) == 1


def test_least_recently_used_is_evicted() -> None:
    cache: TtlCache[str, int] = TtlCache(max_entries=2, clock=FakeClock())
    cache.put("a", 1, 60)
    cache.put("b", 2, 60)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3, 60)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_zero_ttl_stores_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(clock=FakeClock())
    cache.put("a", 1, 60)
    cache.put("a", 2, 0)
    assert cache.get("a") is None


def test_policy_clamps_positive_ttls() -> None:
    policy = TtlPolicy(min_ttl_s=5, max_ttl_s=3600)
    assert policy.positive(0) == 5
    assert policy.positive(300) == 300
    assert policy.positive(86400) == 3600


def test_negative_ttl_follows_rfc_2308() -> None:
    assert negative_ttl(3600, 300, default=60) == 300
    assert negative_ttl(120, 300, default=60) == 120
    assert negative_ttl(None, None, default=60) == 60
    policy = TtlPolicy(min_ttl_s=5, negative_ttl_s=60, max_negative_ttl_s=900)
    assert policy.negative(None, None) == 60
    assert policy.negative(86400, 86400) == 900
    assert policy.negative(0, 0) == 5
