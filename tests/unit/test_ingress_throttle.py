import pytest

from services.ingress import policy, replies
from services.ingress.throttle import FailureThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_at_limit_within_window() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=3, window_s=60, max_keys=10, clock=clock)
    for _ in range(2):
        throttle.record_failure("ip:1")
    assert not throttle.blocked("ip:1")
    throttle.record_failure("ip:1")
    assert throttle.blocked("ip:1")
    assert not throttle.blocked("ip:2")


def test_window_slides() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=2, window_s=60, max_keys=10, clock=clock)
    throttle.record_failure("k")
    clock.now += 40
    throttle.record_failure("k")
    assert throttle.blocked("k")
    clock.now += 21  # the first failure left the window
    assert throttle.failures("k") == 1
    assert not throttle.blocked("k")
    clock.now += 40
    assert throttle.failures("k") == 0
    assert len(throttle) == 0  # an expired key is dropped, not kept empty


def test_memory_is_bounded() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=3, window_s=60, max_keys=100, clock=clock)
    for i in range(10_000):
        throttle.record_failure(f"ip:{i}")
    assert len(throttle) == 100
    assert throttle.failures("ip:0") == 0  # least recently failed forgotten first
    assert throttle.failures("ip:9999") == 1
    for _ in range(1000):
        throttle.record_failure("ip:9999")
    assert throttle.failures("ip:9999") == 3  # at most `limit` stamps per key


def test_recently_failed_key_survives_eviction() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=5, window_s=60, max_keys=2, clock=clock)
    throttle.record_failure("a")
    throttle.record_failure("b")
    throttle.record_failure("a")
    throttle.record_failure("c")
    assert throttle.failures("a") == 2
    assert throttle.failures("b") == 0


@pytest.mark.parametrize(("limit", "window", "keys"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_invalid_parameters(limit: int, window: float, keys: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        FailureThrottle(limit=limit, window_s=window, max_keys=keys)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("mail.example.com", True),
        ("localhost", True),
        ("win_host", True),
        ("[192.0.2.1]", True),
        ("[IPv6:2001:db8::1]", True),
        ("mail.example.com.", True),
        ("two words", False),
        ("a..b", False),
        ("-a.example", False),
        ("<x>", False),
        ("[300.1.1.1]", False),
        ("ünï.example", False),
        ("a" * 256, False),
    ],
)
def test_helo_names(name: str, ok: bool) -> None:
    assert (policy.check_helo(name) is None) is ok


@pytest.mark.parametrize(
    ("arg", "ok"),
    [
        (None, True),
        ("<a@b.example> SIZE=1", True),
        ("a\tb", True),
        ("a\rb", False),
        ("a\x00b", False),
        ("a\x7fb", False),
    ],
)
def test_command_argument_control_characters(arg: str | None, ok: bool) -> None:
    assert (policy.check_command_argument(arg) is None) is ok


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("u@[1.1.1.1]", True),
        ("u@[127.0.0.1]", False),
        ("u@[10.0.0.1]", False),
        ("u@[IPv6:::1]", False),
        ("u@[IPv6:2606:4700::1111]", True),
        ("u@example.com", True),
    ],
)
def test_forward_path_literals(address: str, ok: bool) -> None:
    assert (policy.check_forward_path(address, smtputf8=False) is None) is ok


@pytest.mark.parametrize(
    ("library", "ours"),
    [
        ("500 Command line too long", "500 5.5.2 line too long"),
        ('500 Error: command "<SCRIPT>" not recognized', "500 5.5.1 command not recognized"),
        ("503 Error: need MAIL command", "503 5.5.1 need MAIL command"),
        ("502 Could not VRFY <x>", "502 5.5.4 could not VRFY"),
        (
            "555 MAIL FROM parameters not recognized or not implemented",
            "555 5.5.4 MAIL FROM parameter not recognized",
        ),
    ],
)
def test_library_replies_are_rewritten(library: str, ours: str) -> None:
    reply = replies.rewrite(library)
    assert reply is not None
    assert str(reply) == ours


def test_own_replies_pass_unchanged() -> None:
    assert replies.rewrite("250 2.1.0 Ok") is None
    assert replies.rewrite("250 OK") is None
