from __future__ import annotations

import random
import socket
import time

# Below Linux's default ephemeral range (32768-60999): a port picked there could be taken at any
# moment by an outgoing connection's source port (Kafka clients, SMTP deliveries) before the
# server that was meant to have it binds.
_LOW, _HIGH = 20000, 32000


def free_port(host: str = "127.0.0.1", *, udp: bool = False) -> int:
    """A TCP (and with ``udp``, also UDP) port that was free a moment ago."""
    for _ in range(200):
        port = random.randrange(_LOW, _HIGH)
        kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]
        try:
            for kind in kinds:
                with socket.socket(socket.AF_INET, kind) as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        return port
    raise OSError(f"no free port found on {host} in {_LOW}-{_HIGH}")


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
