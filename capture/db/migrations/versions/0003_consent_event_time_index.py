"""Consent events indexed by time: the latest marketing choice per lead is read without a sort.

The list, its filter and the export pick a lead's latest marketing choice by when it was made
(a replayed older post must not win over a newer one), which the (lead_id, kind, id) index
could not serve in that order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_consent_events_lead_kind_time", "consent_events",
                    ["lead_id", "kind", "created_at", "id"])
    op.drop_index("ix_consent_events_lead_kind", table_name="consent_events")


def downgrade() -> None:
    op.create_index("ix_consent_events_lead_kind", "consent_events", ["lead_id", "kind", "id"])
    op.drop_index("ix_consent_events_lead_kind_time", table_name="consent_events")
