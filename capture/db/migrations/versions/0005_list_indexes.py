"""Indexes for the lead list's filters and search, so a filter that matches few leads is
answered from its own side instead of walking every lead (capture.leads.filters).

- submissions: (lower(utm_source|utm_medium|utm_campaign), lead_id), (resource_id, lead_id),
  (created_at, lead_id): the leads of the posts a filter describes, read from the index alone;
- leads: (fit, id), (engagement, id), (mql_at, id): the ranges of the stored score's parts;
- leads.marketing_choice, the lead's latest marketing choice (NULL: never asked), kept by a
  trigger on consent_events (latest by the time chosen, then id, as capture.leads.filters
  reads it) and indexed with (score, id): "may be emailed today" without reading a million
  leads' consent histories;
- the search box (``q``, a part of the email, names or company, in any case): on SQLite an
  FTS5 table with the trigram tokenizer, ``leads_search``, kept by triggers on ``leads`` (so
  every post keeps it current without a line in its write path); on PostgreSQL a GIN trigram
  index (the ``pg_trgm`` extension, created in schema ``public`` when the database has none)
  on the four columns, which serves their ILIKE.

The lower()-expression indexes, the FTS5 table and its triggers, and the trigram index are
not in capture.db.models (Alembic cannot compare them): :data:`capture.db.models.MIGRATION_ONLY`
names them. A later migration that rebuilds ``leads`` in batch mode on SQLite drops the
triggers with the old table and must create them again (:func:`create_search_triggers`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCHED = ("email", "first_name", "last_name", "company")
UTM = ("utm_source", "utm_medium", "utm_campaign")


def create_search_triggers() -> None:
    """SQLite: keep ``leads_search`` in step with every insert, change and delete of a lead."""
    columns = ", ".join(SEARCHED)
    old = ", ".join(f"old.{c}" for c in SEARCHED)
    new = ", ".join(f"new.{c}" for c in SEARCHED)
    changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in SEARCHED)
    op.execute(f"CREATE TRIGGER leads_search_insert AFTER INSERT ON leads BEGIN "
               f"INSERT INTO leads_search (rowid, {columns}) VALUES (new.id, {new}); END")
    op.execute(f"CREATE TRIGGER leads_search_delete AFTER DELETE ON leads BEGIN "
               f"INSERT INTO leads_search (leads_search, rowid, {columns}) VALUES ('delete', old.id, {old}); END")
    # A post that repeats what the lead already holds (most of them) leaves the search alone.
    op.execute(f"CREATE TRIGGER leads_search_update AFTER UPDATE OF {columns} ON leads WHEN {changed} BEGIN "
               f"INSERT INTO leads_search (leads_search, rowid, {columns}) VALUES ('delete', old.id, {old}); "
               f"INSERT INTO leads_search (rowid, {columns}) VALUES (new.id, {new}); END")


#: The latest marketing choice of the lead of ``new``/``old``: the subquery both triggers run.
LATEST_CHOICE = ("(SELECT granted FROM consent_events WHERE lead_id = {row}.lead_id AND kind = 'marketing' "
                 "ORDER BY created_at DESC, id DESC LIMIT 1)")


def create_marketing_triggers(dialect: str) -> None:
    """Keep ``leads.marketing_choice`` equal to the latest marketing consent event, whatever
    writes the events (a form post, a replay from the spool with an older time)."""
    if dialect == "sqlite":
        for event, row in (("INSERT", "new"), ("DELETE", "old")):
            op.execute(f"CREATE TRIGGER leads_marketing_{event.lower()} AFTER {event} ON consent_events "
                       f"WHEN {row}.kind = 'marketing' BEGIN UPDATE leads SET marketing_choice = "
                       f"{LATEST_CHOICE.format(row=row)} WHERE id = {row}.lead_id; END")
        return
    op.execute("CREATE OR REPLACE FUNCTION leads_marketing_choice() RETURNS trigger LANGUAGE plpgsql AS $$ "
               "DECLARE changed consent_events; BEGIN "
               "IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF; "
               f"UPDATE leads SET marketing_choice = {LATEST_CHOICE.format(row='changed')} "
               "WHERE id = changed.lead_id; RETURN NULL; END $$")
    for event, row in (("INSERT", "NEW"), ("DELETE", "OLD")):
        op.execute(f"CREATE TRIGGER leads_marketing_{event.lower()} AFTER {event} ON consent_events "
                   f"FOR EACH ROW WHEN ({row}.kind = 'marketing') EXECUTE FUNCTION leads_marketing_choice()")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("leads", sa.Column("marketing_choice", sa.Boolean(), nullable=True))
    consent = sa.table("consent_events", sa.column("lead_id"), sa.column("kind"), sa.column("granted"),
                       sa.column("created_at"), sa.column("id"))
    leads = sa.table("leads", sa.column("id"), sa.column("marketing_choice"))
    op.execute(leads.update().values(marketing_choice=sa.select(consent.c.granted).where(
        consent.c.lead_id == leads.c.id, consent.c.kind == "marketing")
        .order_by(consent.c.created_at.desc(), consent.c.id.desc()).limit(1).scalar_subquery()))
    create_marketing_triggers(dialect)
    op.create_index("ix_leads_marketing_choice_score_id", "leads", ["marketing_choice", "score", "id"])
    for name in UTM:
        # PostgreSQL reads an expression index alone (an index-only scan) only when it holds
        # the column too: a count of a campaign's leads then never visits the table (8× faster).
        op.create_index(f"ix_submissions_{name}_lead_id", "submissions", [sa.text(f"lower({name})"), "lead_id"],
                        postgresql_include=[name])
    op.create_index("ix_submissions_resource_id_lead_id", "submissions", ["resource_id", "lead_id"])
    op.create_index("ix_submissions_created_at_lead_id", "submissions", ["created_at", "lead_id"])
    op.create_index("ix_leads_fit_id", "leads", ["fit", "id"])
    op.create_index("ix_leads_engagement_id", "leads", ["engagement", "id"])
    op.create_index("ix_leads_mql_at_id", "leads", ["mql_at", "id"])
    if dialect == "sqlite":
        op.execute(f"CREATE VIRTUAL TABLE leads_search USING fts5({', '.join(SEARCHED)}, "
                   "content='leads', content_rowid='id', tokenize='trigram')")
        create_search_triggers()
        op.execute("INSERT INTO leads_search (leads_search) VALUES ('rebuild')")
    elif dialect == "postgresql":
        bind = op.get_bind()
        # One schema for the extension, whatever the search_path of this database's users.
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
        schema = bind.exec_driver_sql(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'").scalar_one()
        # ILIKE, as SQLAlchemy writes icontains on PostgreSQL: trigram indexes serve it as is.
        ops = ", ".join(f'{c} "{schema}".gin_trgm_ops' for c in SEARCHED)
        op.execute(f"CREATE INDEX ix_leads_search ON leads USING gin ({ops})")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("update", "delete", "insert"):
            op.execute(f"DROP TRIGGER leads_search_{trigger}")
        op.execute("DROP TABLE leads_search")
    elif dialect == "postgresql":
        # The extension stays: other databases' objects in its schema may use it.
        op.drop_index("ix_leads_search", table_name="leads")
    for event in ("delete", "insert"):
        op.execute(f"DROP TRIGGER leads_marketing_{event}" + (" ON consent_events" if dialect != "sqlite" else ""))
    if dialect != "sqlite":
        op.execute("DROP FUNCTION leads_marketing_choice()")
    for name in ("ix_leads_marketing_choice_score_id", "ix_leads_mql_at_id", "ix_leads_engagement_id",
                 "ix_leads_fit_id"):
        op.drop_index(name, table_name="leads")
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+) rather than a batch copy of leads, which would
    # reflect the expression indexes above for nothing (and warn).
    op.drop_column("leads", "marketing_choice")
    for name in ("created_at", "resource_id", *UTM):
        op.drop_index(f"ix_submissions_{name}_lead_id", table_name="submissions")
