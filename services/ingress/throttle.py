"""Sliding-window failure counter for the AUTH brute-force throttle: pure, clock injected.

A key (``ip:203.0.113.7``, ``user:alice@example.org``) is blocked while it has ``limit`` failures
within the last ``window_s`` seconds. Memory is bounded twice: a key keeps at most ``limit``
timestamps (older ones cannot matter), and at most ``max_keys`` keys are kept, the least recently
failed forgotten first (a forgotten attacker starts from zero, which only costs it ``limit`` more
attempts).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailureThrottle:
    def __init__(
        self, *, limit: int, window_s: float, max_keys: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.window_s:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

    def failures(self, key: str) -> int:
        """Failures of ``key`` within the window."""
        stamps = self._recent(key, self._clock())
        return 0 if stamps is None else len(stamps)

    def blocked(self, key: str) -> bool:
        return self.failures(key) >= self.limit

    def record_failure(self, key: str) -> None:
        now = self._clock()
        stamps = self._recent(key, now)
        if stamps is None:
            stamps = self._failures[key] = deque(maxlen=self.limit)
        stamps.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
