"""The consent ledger's events in full, the outbox of jobs, the emails sent, and what erasure
leaves: a suppression list of keyed hashes and a log of erasures.

- consent_events gains ``event`` (given, declined, confirmed, withdrawn: backfilled from
  ``granted``), ``method``, ``resource_id``, ``page`` and ``user_agent`` (backfilled from each
  event's submission) and ``actor``.
- leads gains ``confirmed_at`` (double opt-in) and ``erased_at``.
- jobs, emails, suppressions, erasures: new tables.

Columns are added with plain ``ALTER TABLE … ADD COLUMN``, never a batch copy: on SQLite a copy
of ``leads`` would drop its search triggers, and one of ``consent_events`` its marketing triggers.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("consent_events", sa.Column("event", sa.String(12), server_default="given", nullable=False))
    for name, length, default in (("method", 20, "form"), ("resource_id", 64, ""), ("page", 2000, ""),
                                  ("user_agent", 500, ""), ("actor", 300, "")):
        op.add_column("consent_events", sa.Column(name, sa.String(length), server_default=default, nullable=False))
    events = sa.table("consent_events", *(sa.column(c) for c in (
        "submission_id", "granted", "event", "resource_id", "page", "user_agent")))
    submissions = sa.table("submissions", *(sa.column(c) for c in (
        "id", "resource_id", "landing_page", "user_agent")))
    op.execute(events.update().where(events.c.granted == sa.false()).values(event="declined"))
    of_submission = submissions.c.id == events.c.submission_id
    op.execute(events.update().where(events.c.submission_id.is_not(None)).values(
        resource_id=sa.select(submissions.c.resource_id).where(of_submission).scalar_subquery(),
        page=sa.select(submissions.c.landing_page).where(of_submission).scalar_subquery(),
        user_agent=sa.select(submissions.c.user_agent).where(of_submission).scalar_subquery()))
    if dialect == "postgresql":
        # The default only filled the rows there were; every new event names its own.
        op.alter_column("consent_events", "event", server_default=None)

    op.add_column("leads", sa.Column("confirmed_at", WHEN, nullable=True))
    op.add_column("leads", sa.Column("erased_at", WHEN, nullable=True))

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text(), server_default="{}", nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("dedupe_key", sa.String(200), nullable=True),
        sa.Column("state", sa.String(12), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("run_at", WHEN, nullable=False),
        sa.Column("locked_until", WHEN, nullable=True),
        sa.Column("locked_by", sa.String(100), server_default="", nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_jobs_lead_id_leads"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("dedupe_key", name="uq_jobs_dedupe_key"),
    )
    op.create_index("ix_jobs_state_run_at", "jobs", ["state", "run_at"])
    op.create_index("ix_jobs_lead_id", "jobs", ["lead_id"])

    op.create_table(
        "emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("to_address", sa.String(254), nullable=False),
        sa.Column("resource_id", sa.String(64), server_default="", nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(300), server_default="", nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_emails_lead_id_leads"),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], name="fk_emails_submission_id_submissions"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_emails_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_emails"),
        sa.UniqueConstraint("message_id", name="uq_emails_message_id"),
    )
    op.create_index("ix_emails_lead_id_created_at", "emails", ["lead_id", "created_at"])

    op.create_table(
        "suppressions",
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name="pk_suppressions"),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(300), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erasures"),
    )
    op.create_index("ix_erasures_lead_id", "erasures", ["lead_id"])


def downgrade() -> None:
    for table in ("erasures", "suppressions", "emails", "jobs"):
        op.drop_table(table)
    op.drop_column("leads", "erased_at")
    op.drop_column("leads", "confirmed_at")
    for name in ("actor", "user_agent", "page", "resource_id", "method", "event"):
        op.drop_column("consent_events", name)
