"""Initial schema: accounts, sent_records, message_events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand to match ``baton.store`` as of this revision; tests/integration/test_migrations.py
fails when the models drift from the migrated schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sent_records",
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("recipient", sa.String(512), primary_key=True),
        sa.Column("outcome", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "message_events",
        # INTEGER PRIMARY KEY on SQLite is the rowid alias, the only autoincrementing integer there.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(600), nullable=False),
        sa.Column("sender_identity", sa.String(400), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.UniqueConstraint("message_id", "kind", "key", name="uq_message_events_step"),
    )
    op.create_index("ix_message_events_message_id", "message_events", ["message_id"])
    op.create_index("ix_message_events_sender_identity", "message_events", ["sender_identity"])


def downgrade() -> None:
    op.drop_index("ix_message_events_sender_identity", table_name="message_events")
    op.drop_index("ix_message_events_message_id", table_name="message_events")
    op.drop_table("message_events")
    op.drop_table("sent_records")
    op.drop_table("accounts")
