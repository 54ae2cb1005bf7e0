"""The relational store: SQLAlchemy models and engine set-up shared by every service.

SQLite by default (one file, same code), PostgreSQL in production. The schema is owned by the
Alembic migrations in ``baton/migrations``; ``create_all`` is never used outside tests' scratch
databases.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Account(Base):
    """An SMTP AUTH account allowed to relay."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    # argon2id PHC string; never the password.
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, nullable=False)


class SentRecord(Base):
    """The sender's dedupe record: this recipient of this message got its final answer.

    Written right after the remote server's reply to DATA, before the Outcome is produced, so a
    replay after a crash re-emits the stored Outcome instead of delivering again.
    """

    __tablename__ = "sent_records"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(512), primary_key=True)
    # The serialized baton.v1.Outcome that was (or is about to be) produced.
    outcome: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, nullable=False)


class MessageEvent(Base):
    """One step of a message's timeline (accepted, filtered, routed, outcome)."""

    __tablename__ = "message_events"
    __table_args__ = (UniqueConstraint("message_id", "kind", "key", name="uq_message_events_step"),)

    # BIGINT on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    # accepted | filtered | routed | outcome
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    # Distinguishes steps of one kind: the domain for routed, "<recipient> <status> <attempt>" for outcome.
    key: Mapped[str] = mapped_column(String(600), nullable=False, default="")
    sender_identity: Mapped[str] = mapped_column(String(400), nullable=False, default="", index=True)
    at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # JSON object with the step's details.
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a consumer writes; busy_timeout rides out short write locks
    # taken by the other processes that share the file in `make run`.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite the file's directory is created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername == "postgresql":
        # Plain postgresql:// means psycopg 3 here, the driver Baton installs.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # No pool_pre_ping: it cost a round trip per checkout (a quarter of the sender's time in the
    # bench profile). A connection the server dropped fails once with OperationalError, which the
    # stages treat as retriable, and SQLAlchemy then replaces the pool's connections.
    return create_engine(url, pool_recycle=1800, pool_size=5, max_overflow=5)
