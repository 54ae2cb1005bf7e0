"""A size-bounded TTL cache for DNS answers, and the RFC 2308 negative-TTL rule.

Pure: the clock is injected, so tests move time by hand.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Defaults; the planner's caller may pass others (there are no settings for them yet).
# A floor stops TTL-0 records from turning every message into fresh queries.
DEFAULT_MIN_TTL_S = 5.0
# A cap bounds how long a changed MX set stays unnoticed.
DEFAULT_MAX_TTL_S = 3600.0
# Negative answers without an SOA in the authority section (RFC 2308 section 5 leaves this to us).
DEFAULT_NEGATIVE_TTL_S = 60.0
# RFC 2308 section 5 suggests at most 3 hours; we stay well below so a fixed domain recovers soon.
DEFAULT_MAX_NEGATIVE_TTL_S = 900.0
DEFAULT_MAX_ENTRIES = 10_000


def negative_ttl(soa_ttl: float | None, soa_minimum: float | None, default: float) -> float:
    """RFC 2308 section 5: a negative answer lives min(SOA TTL, SOA MINIMUM); ``default`` without SOA."""
    if soa_ttl is None or soa_minimum is None:
        return default
    return min(soa_ttl, soa_minimum)


@dataclass(frozen=True)
class TtlPolicy:
    min_ttl_s: float = DEFAULT_MIN_TTL_S
    max_ttl_s: float = DEFAULT_MAX_TTL_S
    negative_ttl_s: float = DEFAULT_NEGATIVE_TTL_S
    max_negative_ttl_s: float = DEFAULT_MAX_NEGATIVE_TTL_S

    def positive(self, ttl: float) -> float:
        return max(self.min_ttl_s, min(self.max_ttl_s, ttl))

    def negative(self, soa_ttl: float | None, soa_minimum: float | None) -> float:
        ttl = negative_ttl(soa_ttl, soa_minimum, self.negative_ttl_s)
        return max(self.min_ttl_s, min(self.max_negative_ttl_s, ttl))


class TtlCache(Generic[K, V]):
    """Entries expire after their own TTL; beyond ``max_entries`` the least recently used goes first."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        # key -> (expires_at, value); order is recency of use, oldest first.
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, ttl_s: float) -> None:
        """Store for ``ttl_s`` seconds (the caller applies its ``TtlPolicy``); ttl <= 0 stores nothing."""
        if ttl_s <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = (self._clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
