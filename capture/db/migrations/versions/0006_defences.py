"""Defences: each post's spam verdict, the spam folder, server-side staff sessions, rate
counters kept in the database, and the export audit log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("spam_score", sa.Float(), server_default="0", nullable=False))
        batch.add_column(sa.Column("spam_reasons", sa.Text(), server_default="", nullable=False))

    op.create_table(
        "held_posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.Uuid(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("ip_prefix", sa.String(64), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("released_at", WHEN, nullable=True),
        sa.Column("released_by", sa.String(300), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_held_posts"),
        sa.UniqueConstraint("uid", name="uq_held_posts_uid"),
    )
    op.create_index("ix_held_posts_created_at", "held_posts", ["created_at"])

    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN, nullable=True),
        sa.Column("user_agent", sa.String(500), server_default="", nullable=False),
        sa.Column("ip_prefix", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_staff_sessions_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_staff_sessions"),
    )
    op.create_index("ix_staff_sessions_user_id", "staff_sessions", ["user_id"])

    op.create_table(
        "rate_counts",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_counts"),
    )

    op.create_table(
        "export_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(300), server_default="", nullable=False),
        sa.Column("filters", sa.Text(), server_default="", nullable=False),
        sa.Column("rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_export_audit"),
    )
    op.create_index("ix_export_audit_created_at", "export_audit", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_export_audit_created_at", table_name="export_audit")
    op.drop_table("export_audit")
    op.drop_table("rate_counts")
    op.drop_index("ix_staff_sessions_user_id", table_name="staff_sessions")
    op.drop_table("staff_sessions")
    op.drop_index("ix_held_posts_created_at", table_name="held_posts")
    op.drop_table("held_posts")
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch rebuild would lose the
    # expression indexes migration 0005 put on submissions.
    for column in ("spam_reasons", "spam_score"):
        op.execute(f"ALTER TABLE submissions DROP COLUMN {column}")
