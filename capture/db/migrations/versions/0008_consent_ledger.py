"""The consent ledger made append-only, and each lead's state per purpose kept beside it.

- consent_events: triggers (SQLite and PostgreSQL) refuse every UPDATE, and every DELETE of a
  lead's events unless ``erasures`` has a row for the lead (capture.privacy writes it first).
  PostgreSQL also refuses TRUNCATE, which row triggers do not see. Deleting events (erasure)
  deletes the lead's derived state with them.
- consent_states: (lead, purpose) → state, and the event that set it (its id, version,
  SHA-256, time); backfilled by folding every lead's history with capture.consent.state.
- leads.erased_at indexed: lists leave the few erased leads out.
- leads.marketing_choice: no longer the 0005 triggers' "latest choice" but "marketing consent
  is current", written by the ledger's code with each event; backfilled with double opt-in off
  (no event could be confirmed before this release).

Plain CREATE and ALTER only: a batch copy of leads or consent_events on SQLite would drop
their triggers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 20:00:00
"""

import importlib.util
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from capture.consent.state import GRANTED, state_of

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_UPDATE = "consent_events is append-only: a consent event is never changed"
NO_DELETE = "consent_events is append-only: events are deleted only by erasure (no erasures row for this lead)"
#: Erasure removed the lead's events: what was derived from them goes too.
FORGET = ("DELETE FROM consent_states WHERE lead_id = OLD.lead_id AND purpose = OLD.kind; "
          "UPDATE leads SET marketing_choice = NULL WHERE id = OLD.lead_id AND OLD.kind = 'marketing';")
ERASED = "EXISTS (SELECT 1 FROM erasures WHERE erasures.lead_id = OLD.lead_id)"
BATCH = 5000


def create_append_only_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        op.execute(f"CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events "
                   f"BEGIN SELECT RAISE(ABORT, '{NO_UPDATE}'); END")
        op.execute(f"CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events "
                   f"WHEN NOT {ERASED} BEGIN SELECT RAISE(ABORT, '{NO_DELETE}'); END")
        op.execute(f"CREATE TRIGGER consent_events_erased AFTER DELETE ON consent_events BEGIN {FORGET} END")
        return
    op.execute("CREATE OR REPLACE FUNCTION consent_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               f"IF TG_OP <> 'DELETE' THEN RAISE EXCEPTION '{NO_UPDATE}'; END IF; "
               f"IF NOT {ERASED} THEN RAISE EXCEPTION '{NO_DELETE}'; END IF; "
               "RETURN OLD; END $$")
    op.execute("CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events "
               "FOR EACH ROW EXECUTE FUNCTION consent_events_append_only()")
    op.execute("CREATE TRIGGER consent_events_no_truncate BEFORE TRUNCATE ON consent_events "
               "FOR EACH STATEMENT EXECUTE FUNCTION consent_events_append_only()")
    op.execute(f"CREATE OR REPLACE FUNCTION consent_events_erased() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {FORGET} "
               "RETURN NULL; END $$")
    op.execute("CREATE TRIGGER consent_events_erased AFTER DELETE ON consent_events "
               "FOR EACH ROW EXECUTE FUNCTION consent_events_erased()")


def drop_append_only_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        for name in ("no_update", "no_delete", "erased"):
            op.execute(f"DROP TRIGGER consent_events_{name}")
        return
    for name in ("append_only", "no_truncate", "erased"):
        op.execute(f"DROP TRIGGER consent_events_{name} ON consent_events")
    op.execute("DROP FUNCTION consent_events_append_only()")
    op.execute("DROP FUNCTION consent_events_erased()")


def backfill_states() -> None:
    """Fold each lead's history per purpose into consent_states, a batch of rows at a time."""
    bind = op.get_bind()
    events = sa.table("consent_events", *(sa.column(c) for c in (
        "id", "lead_id", "kind", "event", "version", "sha256", "created_at")))
    states = sa.table("consent_states", *(sa.column(c) for c in (
        "lead_id", "purpose", "state", "event_id", "version", "sha256", "at")))
    ordered = bind.execute(sa.select(events).order_by(
        events.c.lead_id, events.c.kind, events.c.created_at, events.c.id)).mappings()
    rows = []
    for (lead_id, purpose), history in groupby(ordered, key=lambda e: (e["lead_id"], e["kind"])):
        state = state_of(history)
        rows.append({"lead_id": lead_id, "purpose": purpose, "state": state.state, "event_id": state.event_id,
                     "version": state.version, "sha256": state.sha256, "at": state.at})
        if len(rows) == BATCH:
            bind.execute(sa.insert(states), rows)
            rows = []
    if rows:
        bind.execute(sa.insert(states), rows)
    leads = sa.table("leads", sa.column("id"), sa.column("marketing_choice"))
    op.execute(leads.update().values(marketing_choice=sa.select(states.c.state.in_(sorted(GRANTED))).where(
        states.c.lead_id == leads.c.id, states.c.purpose == "marketing").scalar_subquery()))


def _revision_0005():
    """Migration 0005, whose triggers a downgrade puts back."""
    path = Path(__file__).with_name("0005_list_indexes.py")
    spec = importlib.util.spec_from_file_location("revision_0005", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for event in ("delete", "insert"):
        op.execute(f"DROP TRIGGER leads_marketing_{event}" + (" ON consent_events" if dialect != "sqlite" else ""))
    if dialect != "sqlite":
        op.execute("DROP FUNCTION leads_marketing_choice()")
    op.create_table(
        "consent_states",
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_consent_states_lead_id_leads"),
        sa.PrimaryKeyConstraint("lead_id", "purpose", name="pk_consent_states"),
    )
    backfill_states()
    create_append_only_triggers(dialect)
    op.create_index("ix_leads_erased_at", "leads", ["erased_at"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index("ix_leads_erased_at", table_name="leads")
    drop_append_only_triggers(dialect)
    op.drop_table("consent_states")
    # 0005's reading again: the latest marketing choice, kept by its triggers from here on.
    op.execute("UPDATE leads SET marketing_choice = (SELECT granted FROM consent_events WHERE lead_id = leads.id "
               "AND kind = 'marketing' ORDER BY created_at DESC, id DESC LIMIT 1)")
    _revision_0005().create_marketing_triggers(dialect)
