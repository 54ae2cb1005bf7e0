"""Schema migrations, run in code: ``upgrade(url)`` at service start and ``baton db upgrade|current``.

Alembic is configured here rather than from an ``alembic.ini`` so the migrations run the same from
a checkout and from an installed package (the script location is the ``baton.migrations`` package).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

import baton.migrations
from baton.settings import load_settings
from baton.store import make_engine

log = logging.getLogger(__name__)

# Key of the PostgreSQL session advisory lock that serializes concurrent upgrades; every Baton
# process that migrates at start-up must use this same number. ("baton-db" in ASCII.)
MIGRATION_LOCK_KEY = 0x6261746F6E2D6462


def alembic_config(url: str = "") -> Config:
    """An Alembic configuration pointing at the packaged migrations (no ini file)."""
    config = Config()
    config.set_main_option("script_location", os.path.dirname(os.path.abspath(baton.migrations.__file__)))
    if url:
        # Alembic's config is a ConfigParser: a literal "%" (URL-encoded passwords) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revisions() -> tuple[str, ...]:
    """The revisions a fully migrated database is at."""
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """Serialize migrations across processes; a no-op except on PostgreSQL.

    A session-level lock (not a transaction-level one) because Alembic begins and commits its
    own transaction on this connection while the lock must stay held.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


def _upgrade_with(engine: Engine) -> None:
    with engine.connect() as connection, _migration_lock(connection):
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        if connection.in_transaction():
            connection.commit()


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema; idempotent, safe from concurrent processes."""
    engine = make_engine(url)
    try:
        _upgrade_with(engine)
    finally:
        engine.dispose()
    log.info("database schema at head", extra={"revisions": list(head_revisions())})


def current(url: str) -> tuple[str, ...]:
    """The revisions the database at ``url`` is at; empty for a database never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return tuple(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def cli(argv: list[str]) -> int:
    """``baton db <command>``; ``argv`` is what follows ``db``. Returns the exit status."""
    parser = argparse.ArgumentParser(prog="baton db", description="Manage Baton's database schema.")
    parser.add_argument("--url", default="", help="database URL (default: BATON_DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("upgrade", help="migrate the database to the newest schema")
    sub.add_parser("current", help="show the revision the database is at")
    args = parser.parse_args(argv)
    url: str = args.url or load_settings().database_url
    if args.command == "upgrade":
        upgrade(url)
        sys.stdout.write(f"upgraded to {', '.join(head_revisions())}\n")
        return 0
    revisions = current(url)
    heads = set(head_revisions())
    if not revisions:
        sys.stdout.write("none (database not migrated)\n")
        return 1
    for revision in revisions:
        sys.stdout.write(f"{revision}{' (head)' if revision in heads else ''}\n")
    # Non-zero when behind, so a deployment check can run `baton db current`.
    return 0 if set(revisions) == heads else 1
