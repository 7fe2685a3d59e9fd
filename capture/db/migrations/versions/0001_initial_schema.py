"""The first schema: leads, their form posts, consent (texts and events) and downloads.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 13:18:08.721974
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def profile() -> list[sa.Column]:
    """What a person tells about themselves, on a lead and on each submission."""
    return [
        sa.Column("first_name", sa.String(length=100), server_default="", nullable=False),
        sa.Column("last_name", sa.String(length=100), server_default="", nullable=False),
        sa.Column("company", sa.String(length=200), server_default="", nullable=False),
        sa.Column("job_title", sa.String(length=150), server_default="", nullable=False),
        sa.Column("company_size", sa.String(length=100), server_default="", nullable=False),
        sa.Column("industry", sa.String(length=100), server_default="", nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "consent_texts",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_consent_texts")),
    )
    # leads and submissions point at each other: leads gets its two keys once submissions exists.
    op.create_table(
        "leads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("email_key", sa.String(length=254), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_submission_id", sa.Integer(), nullable=True),
        sa.Column("last_submission_id", sa.Integer(), nullable=True),
        *profile(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("email_key", name=op.f("uq_leads_email_key")),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("utm_source", sa.String(length=200), server_default="", nullable=False),
        sa.Column("utm_medium", sa.String(length=200), server_default="", nullable=False),
        sa.Column("utm_campaign", sa.String(length=200), server_default="", nullable=False),
        sa.Column("utm_term", sa.String(length=200), server_default="", nullable=False),
        sa.Column("utm_content", sa.String(length=200), server_default="", nullable=False),
        sa.Column("referrer", sa.String(length=2000), server_default="", nullable=False),
        sa.Column("landing_page", sa.String(length=2000), server_default="", nullable=False),
        sa.Column("user_agent", sa.String(length=500), server_default="", nullable=False),
        sa.Column("ip_prefix", sa.String(length=64), nullable=True),
        sa.Column("terms_accepted", sa.Boolean(), nullable=False),
        sa.Column("terms_version", sa.String(length=40), nullable=False),
        sa.Column("terms_sha256", sa.String(length=64), nullable=False),
        sa.Column("marketing_opt_in", sa.Boolean(), nullable=False),
        sa.Column("marketing_version", sa.String(length=40), nullable=False),
        sa.Column("marketing_sha256", sa.String(length=64), nullable=False),
        *profile(),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_submissions_lead_id_leads")),
        sa.ForeignKeyConstraint(["marketing_sha256"], ["consent_texts.sha256"],
                                name=op.f("fk_submissions_marketing_sha256_consent_texts")),
        sa.ForeignKeyConstraint(["terms_sha256"], ["consent_texts.sha256"],
                                name=op.f("fk_submissions_terms_sha256_consent_texts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint("uid", name=op.f("uq_submissions_uid")),
    )
    op.create_index(op.f("ix_submissions_lead_id"), "submissions", ["lead_id"])
    with op.batch_alter_table("leads") as batch:
        batch.create_foreign_key(op.f("fk_leads_first_submission_id_submissions"), "submissions",
                                 ["first_submission_id"], ["id"])
        batch.create_foreign_key(op.f("fk_leads_last_submission_id_submissions"), "submissions",
                                 ["last_submission_id"], ["id"])
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip_prefix", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_consent_events_lead_id_leads")),
        sa.ForeignKeyConstraint(["sha256"], ["consent_texts.sha256"],
                                name=op.f("fk_consent_events_sha256_consent_texts")),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"],
                                name=op.f("fk_consent_events_submission_id_submissions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index("ix_consent_events_lead_kind", "consent_events", ["lead_id", "kind", "id"])
    op.create_table(
        "downloads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_agent", sa.String(length=500), server_default="", nullable=False),
        sa.Column("ip_prefix", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_downloads_lead_id_leads")),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"],
                                name=op.f("fk_downloads_submission_id_submissions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_downloads")),
    )
    op.create_index(op.f("ix_downloads_lead_id"), "downloads", ["lead_id"])


def downgrade() -> None:
    op.drop_table("downloads")
    op.drop_table("consent_events")
    with op.batch_alter_table("leads") as batch:
        batch.drop_constraint(op.f("fk_leads_last_submission_id_submissions"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_leads_first_submission_id_submissions"), type_="foreignkey")
    op.drop_table("submissions")
    op.drop_table("leads")
    op.drop_table("consent_texts")
