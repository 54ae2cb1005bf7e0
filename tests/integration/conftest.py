from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from baton import db
from baton.store import Base, make_engine
from services.reputation.store import TimelineStore
from tests.fixtures.postgres import fresh_database, postgres_unavailable


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A scratch SQLite store with every table (migrations are tested in test_migrations.py)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'baton.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimelineStore]:
    """A timeline store on a freshly migrated database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'baton.db'}"
        yield from _timeline_store(url)
        return
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    with fresh_database() as url:
        yield from _timeline_store(url)


def _timeline_store(url: str) -> Iterator[TimelineStore]:
    db.upgrade(url)
    engine = make_engine(url)
    try:
        yield TimelineStore(engine)
    finally:
        engine.dispose()
