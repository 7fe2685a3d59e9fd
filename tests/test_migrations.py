"""Alembic owns the schema: the migrations build what the models describe and keep every row."""

from __future__ import annotations

import multiprocessing
import warnings
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from capture import create_app
from capture.db import migrate
from capture.db.engine import create_store_engine
from capture.db.models import MIGRATION_ONLY, ConsentState, metadata
from capture.db.store import Store, get_store
from capture.leads.submission import record_submission
from capture.leads.queries import known_consent_text
from leads import consent_events, find_lead
from test_store import MARKETING, TERMS, new

FIRST = "0001"
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
SUBMISSION_UIDS = (uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3))

# The tables as revision 0001 made them, written to without the models, which move on.
LEADS = sa.table("leads", *(sa.column(c) for c in ("id", "email", "email_key", "first_name", "company",
                                                   "first_submission_id", "last_submission_id")),
                 sa.column("first_seen", sa.DateTime(timezone=True)),
                 sa.column("last_seen", sa.DateTime(timezone=True)))
CONSENT_TEXTS = sa.table("consent_texts", *(sa.column(c) for c in ("sha256", "kind", "version", "text")),
                         sa.column("first_seen", sa.DateTime(timezone=True)))
SUBMISSIONS = sa.table(
    "submissions", sa.column("uid", sa.Uuid()), sa.column("created_at", sa.DateTime(timezone=True)),
    *(sa.column(c) for c in ("id", "lead_id", "resource_id", "email", "utm_source", "terms_accepted",
                             "terms_version", "terms_sha256", "marketing_opt_in", "marketing_version",
                             "marketing_sha256")))
CONSENT_EVENTS = sa.table(
    "consent_events", sa.column("created_at", sa.DateTime(timezone=True)),
    *(sa.column(c) for c in ("id", "lead_id", "submission_id", "kind", "granted", "version", "sha256",
                             "ip_prefix")))
DOWNLOADS = sa.table("downloads", sa.column("created_at", sa.DateTime(timezone=True)),
                     *(sa.column(c) for c in ("id", "lead_id", "submission_id", "resource_id")))


def tables(url: str) -> set[str]:
    engine = create_store_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_migrations_build_what_the_models_describe(database_url):
    engine = create_store_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "include_name": lambda name, type_, parent: name not in MIGRATION_ONLY})
            with warnings.catch_warnings():
                # SQLite's reflection skips expression indexes (ours are in MIGRATION_ONLY) with a warning.
                warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
                differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == [], (
        "capture/db/models.py and capture/db/migrations disagree. Write a migration for the change: "
        "`alembic upgrade head && alembic revision --autogenerate --rev-id NNNN -m '…'` "
        "(docs/architecture.md, 'Changing the schema'), then read and tidy what it generated.")


def test_the_migrations_make_the_search_and_filter_indexes(database_url):
    """What the models cannot describe, by name: the lead list needs every one (0005)."""
    engine = create_store_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
            indexes = {i["name"] for table in ("leads", "submissions") for i in inspector.get_indexes(table)}
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                names = set(conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type IN ('index', 'table', 'trigger')").scalars())
                expected = {"leads_search", "leads_search_insert", "leads_search_update",
                            "leads_search_delete"}
            else:
                names = indexes
                expected = {"ix_leads_search"}
    finally:
        engine.dispose()
    utm = {f"ix_submissions_{name}_lead_id" for name in ("utm_source", "utm_medium", "utm_campaign")}
    assert expected | utm <= names | indexes


def fill_revision_0001(url: str) -> None:
    """Two leads with submissions, consent and downloads, as revision 0001 stores them.

    Ids come from the database, numbered from 1 in a new one, as the service's rows do.
    """
    engine = create_store_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(LEADS), [
                {"email": "Ann.Lee@example.com", "email_key": "ann.lee@example.com",
                 "first_name": "Ann", "company": "Acme", "first_seen": T0, "last_seen": T0},
                {"email": "bob@example.com", "email_key": "bob@example.com",
                 "first_name": "", "company": "", "first_seen": T0, "last_seen": T0},
            ])
            conn.execute(sa.insert(CONSENT_TEXTS), [
                {"sha256": text.sha256, "kind": text.kind, "version": text.version, "text": text.text,
                 "first_seen": T0} for text in (TERMS, MARKETING)])
            conn.execute(sa.insert(SUBMISSIONS), [
                {"uid": uid, "lead_id": lead, "resource_id": resource, "created_at": T0,
                 "email": email, "utm_source": source, "terms_accepted": True,
                 "terms_version": TERMS.version, "terms_sha256": TERMS.sha256,
                 "marketing_opt_in": uid == SUBMISSION_UIDS[0], "marketing_version": MARKETING.version,
                 "marketing_sha256": MARKETING.sha256}
                for uid, lead, resource, email, source in zip(
                    SUBMISSION_UIDS, (1, 1, 2), ("leads-vs-prospects", "scoring", "scoring"),
                    ("Ann.Lee@example.com", "ann.lee@example.com", "bob@example.com"),
                    ("newsletter", "linkedin", ""))])
            conn.execute(sa.update(LEADS).where(LEADS.c.id == 1).values(
                first_submission_id=1, last_submission_id=2))
            conn.execute(sa.update(LEADS).where(LEADS.c.id == 2).values(
                first_submission_id=3, last_submission_id=3))
            conn.execute(sa.insert(CONSENT_EVENTS), [
                {"lead_id": lead, "submission_id": submission, "kind": kind, "granted": granted,
                 "version": text.version, "sha256": text.sha256, "created_at": T0,
                 "ip_prefix": "203.0.113.0/24"}
                for lead, submission, kind, granted, text in [
                    (1, 1, "terms", True, TERMS), (1, 1, "marketing", True, MARKETING),
                    (1, 2, "terms", True, TERMS), (1, 2, "marketing", False, MARKETING),
                    (2, 3, "terms", True, TERMS), (2, 3, "marketing", False, MARKETING)]])
            conn.execute(sa.insert(DOWNLOADS), [
                {"lead_id": 1, "submission_id": 1, "resource_id": "leads-vs-prospects",
                 "created_at": T0},
                {"lead_id": 2, "submission_id": 3, "resource_id": "scoring", "created_at": T0},
            ])
    finally:
        engine.dispose()


def test_upgrading_from_the_first_revision_keeps_every_lead(empty_database_url):
    """A database of the first release, with leads in it, upgraded to whatever head is now."""
    migrate.upgrade(empty_database_url, FIRST)
    fill_revision_0001(empty_database_url)

    migrate.upgrade(empty_database_url)

    engine = create_store_engine(empty_database_url)
    try:
        assert migrate.current(engine) == migrate.head()
        with engine.connect() as conn:
            counts = {t.name: conn.scalar(sa.select(sa.func.count()).select_from(t))
                      for t in (LEADS, CONSENT_TEXTS, SUBMISSIONS, CONSENT_EVENTS, DOWNLOADS)}
            uids = conn.scalars(sa.select(SUBMISSIONS.c.uid).order_by(SUBMISSIONS.c.id)).all()
            sources = conn.scalars(sa.select(SUBMISSIONS.c.utm_source).order_by(SUBMISSIONS.c.id)).all()
    finally:
        engine.dispose()
    assert counts == {"leads": 2, "consent_texts": 2, "submissions": 3, "consent_events": 6,
                      "downloads": 2}
    assert uids == list(SUBMISSION_UIDS)
    assert sources == ["newsletter", "linkedin", ""]

    # The service of today reads the old rows and adds to them.
    store = Store(empty_database_url)
    try:
        ann = find_lead(store, "ANN.LEE@example.com")
        assert (ann.id, ann.email, ann.first_name, ann.company, ann.first_seen) == (
            1, "Ann.Lee@example.com", "Ann", "Acme", T0)
        assert (ann.first_submission_id, ann.last_submission_id) == (1, 2)
        assert [(e.kind, e.granted, e.sha256) for e in consent_events(store, ann.id)] == [
            ("terms", True, TERMS.sha256), ("marketing", True, MARKETING.sha256),
            ("terms", True, TERMS.sha256), ("marketing", False, MARKETING.sha256)]
        assert known_consent_text(store, TERMS.sha256) == TERMS
        # 0008 folded each history into consent_states: Ann's later unticked box does not withdraw.
        assert ann.marketing_choice is True and find_lead(store, "bob@example.com").marketing_choice is False
        with store.read() as s:
            states = s.execute(sa.select(ConsentState.lead_id, ConsentState.purpose, ConsentState.state,
                                         ConsentState.event_id).order_by(ConsentState.lead_id,
                                                                         ConsentState.purpose)).all()
        assert [tuple(row) for row in states] == [(1, "marketing", "given", 2), (1, "terms", "given", 3),
                                                  (2, "marketing", "declined", 6), (2, "terms", "given", 5)]
        lead, submission = record_submission(store, new("ann.lee@example.com", resource_id="scoring"))
        assert lead.id == 1 and submission.id == 4
    finally:
        store.dispose()


def test_upgrading_again_changes_nothing(database_url):
    before = tables(database_url)
    migrate.upgrade(database_url)
    assert tables(database_url) == before


def upgrade_after(barrier, url: str) -> None:
    barrier.wait()
    migrate.upgrade(url)


@pytest.mark.slow
def test_servers_starting_together_migrate_once(empty_database_url):
    """Two processes upgrade at once: one migrates, the other waits for its lock, then has
    nothing to do. (Processes, as servers are: Alembic's context is one per process.)"""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2, timeout=60)
    starts = [spawn.Process(target=upgrade_after, args=(barrier, empty_database_url)) for _ in range(2)]
    for p in starts:
        p.start()
    for p in starts:
        p.join(120)
    assert [p.exitcode for p in starts] == [0, 0]
    engine = create_store_engine(empty_database_url)
    try:
        assert migrate.current(engine) == migrate.head()
    finally:
        engine.dispose()


def test_downgrading_to_nothing_and_back(database_url):
    with migrate.migrating(database_url) as conn:
        command.downgrade(migrate.alembic_config(conn), "base")
    assert tables(database_url) == {"alembic_version"}
    migrate.upgrade(database_url)
    assert set(metadata.tables) <= tables(database_url)


def leadgate(content_dir, url: str, *args: str):
    """`leadgate ARGS` with the service configured for the database at url."""
    app = create_app({"TESTING": True, "SECRET_KEY": "k" * 32, "CONTENT_DIR": str(content_dir),
                      "DATABASE_URL": url})
    try:
        return app.test_cli_runner().invoke(args=list(args))
    finally:
        get_store(app).dispose()


def test_db_commands_show_and_bring_the_schema_up_to_date(content_dir, empty_database_url):
    head = migrate.head()
    assert leadgate(content_dir, empty_database_url, "db", "current").stdout == (
        f"none (this version needs {head})\n")
    result = leadgate(content_dir, empty_database_url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Database schema at revision {head}, the newest.\n"
    assert leadgate(content_dir, empty_database_url, "db", "current").stdout == f"{head} (the newest)\n"
    assert leadgate(content_dir, empty_database_url, "db", "upgrade").exit_code == 0


@pytest.mark.parametrize(("url", "message"), [
    ("sqlite:////nonexistent-folder/leadgate.db",
     "Error: cannot open the database at /nonexistent-folder/leadgate.db: the folder /nonexistent-folder "
     "does not exist"),
    ("postgresql+psycopg://postgres@127.0.0.1:9/test",
     "Error: cannot connect to the database at postgresql+psycopg://postgres@127.0.0.1:9/test: "),
], ids=["sqlite", "postgresql"])
def test_db_upgrade_says_why_it_cannot_reach_the_database(content_dir, url, message):
    result = leadgate(content_dir, url, "db", "upgrade")
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1
