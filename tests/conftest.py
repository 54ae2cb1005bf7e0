from __future__ import annotations

from collections.abc import Iterator

import pytest

from baton.dev.broker import Broker


@pytest.fixture(scope="session")
def kafka() -> Iterator[Broker]:
    """One real Kafka-compatible broker (Tansu) for the whole test session."""
    for _ in range(3):
        broker = Broker()
        try:
            broker.start()
        except RuntimeError:
            continue  # the free port was taken meanwhile
        try:
            yield broker
        finally:
            broker.stop()
        return
    pytest.fail("could not start the Tansu broker")
