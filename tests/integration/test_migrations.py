"""The Alembic migrations produce exactly the schema of baton.store's models, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from baton import db
from baton.store import Base, make_engine
from tests.fixtures.postgres import fresh_database, postgres_unavailable


def schema_differences(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sub' / 'baton.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


def test_upgrade_matches_models(empty_db: str) -> None:
    assert db.current(empty_db) == ()
    db.upgrade(empty_db)
    assert table_names(empty_db) == {"alembic_version", *Base.metadata.tables}
    assert schema_differences(empty_db) == []
    assert db.current(empty_db) == db.head_revisions()


def test_upgrade_is_idempotent(empty_db: str) -> None:
    db.upgrade(empty_db)
    db.upgrade(empty_db)
    assert db.current(empty_db) == db.head_revisions()


def test_concurrent_upgrades_on_postgres(postgres_url: str) -> None:
    # Several replicas starting at once: the advisory lock makes all but one find the schema done.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(db.upgrade, postgres_url) for _ in range(4)]:
            future.result()
    assert schema_differences(postgres_url) == []


def test_downgrade_then_upgrade(sqlite_url: str) -> None:
    from alembic import command

    db.upgrade(sqlite_url)
    command.downgrade(db.alembic_config(sqlite_url), "base")
    assert table_names(sqlite_url) == {"alembic_version"}
    db.upgrade(sqlite_url)
    assert schema_differences(sqlite_url) == []


def test_cli_upgrade_and_current(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("TEST_POSTGRES_URL", raising=False)
    assert db.cli(["current"]) == 1
    assert "not migrated" in capsys.readouterr().out
    assert db.cli(["upgrade"]) == 0
    assert db.cli(["current"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{db.head_revisions()[0]} (head)"


def test_cli_url_option(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert db.cli(["--url", sqlite_url, "upgrade"]) == 0
    assert db.cli(["--url", sqlite_url, "current"]) == 0
    assert "(head)" in capsys.readouterr().out
