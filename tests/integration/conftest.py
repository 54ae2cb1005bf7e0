from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from baton.store import Base, make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A scratch SQLite store with every table (migrations are tested in test_migrations.py)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'baton.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
