"""Qualification: each lead's score (fit, engagement, reasons, rules version) and stage, the
stage changes that moved it, the rules of each scoring version, and what sources and campaigns cost.

Every existing lead starts at stage ``lead`` with a score of 0 and no rules version, so
``leadgate rescore`` (or the service's daily refresh) scores it on its stored posts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("fit", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("engagement", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("score", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("score_reasons", sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("rules_version", sa.String(64), server_default="", nullable=False))
        batch.add_column(sa.Column("scored_at", WHEN, nullable=True))
        batch.add_column(sa.Column("stage", sa.String(20), server_default="lead", nullable=False))
        batch.add_column(sa.Column("stage_changed_at", WHEN, nullable=True))
        for name in ("mql_at", "sql_at", "prospect_at", "customer_at"):
            batch.add_column(sa.Column(name, WHEN, nullable=True))
        batch.add_column(sa.Column("disqualified_reason", sa.String(500), server_default="", nullable=False))
        batch.add_column(sa.Column("deal_value", sa.Numeric(14, 2), nullable=True))
        batch.add_column(sa.Column("deal_currency", sa.String(3), server_default="", nullable=False))
    op.create_index("ix_leads_score_id", "leads", ["score", "id"])
    op.create_index("ix_leads_stage_score_id", "leads", ["stage", "score", "id"])

    op.create_table(
        "stage_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("from_stage", sa.String(20), nullable=False),
        sa.Column("to_stage", sa.String(20), nullable=False),
        sa.Column("actor_kind", sa.String(10), nullable=False),
        sa.Column("actor", sa.String(300), server_default="", nullable=False),
        sa.Column("reason", sa.String(500), server_default="", nullable=False),
        sa.Column("channel", sa.String(20), server_default="", nullable=False),
        sa.Column("value", sa.Numeric(14, 2), nullable=True),
        sa.Column("currency", sa.String(3), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_stage_changes_lead_id_leads"),
        sa.PrimaryKeyConstraint("id", name="pk_stage_changes"),
    )
    op.create_index("ix_stage_changes_lead_id_created_at", "stage_changes", ["lead_id", "created_at"])

    op.create_table(
        "rules_versions",
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("first_seen", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_rules_versions"),
    )
    op.create_table(
        "spend",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("utm_source", sa.String(200), server_default="", nullable=False),
        sa.Column("utm_campaign", sa.String(200), server_default="", nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("imported_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_spend"),
    )
    op.create_index("ix_spend_day_source_campaign", "spend", ["day", "utm_source", "utm_campaign"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ix_spend_day_source_campaign", table_name="spend")
    op.drop_table("spend")
    op.drop_table("rules_versions")
    op.drop_index("ix_stage_changes_lead_id_created_at", table_name="stage_changes")
    op.drop_table("stage_changes")
    op.drop_index("ix_leads_stage_score_id", table_name="leads")
    op.drop_index("ix_leads_score_id", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        for name in ("deal_currency", "deal_value", "disqualified_reason", "customer_at",
                     "prospect_at", "sql_at", "mql_at", "stage_changed_at", "stage", "scored_at",
                     "rules_version", "score_reasons", "score", "engagement", "fit"):
            batch.drop_column(name)
