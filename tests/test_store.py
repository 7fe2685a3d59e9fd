"""The store: one lead per person, newest details win, and all of a submission or nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, inspect, make_url, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from capture import create_app
from capture.catalog import ConsentText
from capture.db.models import ConsentEvent, ConsentTextRow, Download, Lead, Submission
from capture.db.store import Store, get_store
from capture.leads.submission import NewSubmission
from capture.leads.submission import record_submission
from capture.staff import accounts
from capture.leads.queries import known_consent_text
from capture.leads.downloads import has_download, record_download

from leads import consent_events, find_lead

TERMS = ConsentText("terms", "terms-1", "I agree that my details are stored.")
MARKETING = ConsentText("marketing", "marketing-1", "Send me news.")


def new(email: str = "ann@example.com", **fields) -> NewSubmission:
    fields.setdefault("resource_id", "leads-vs-prospects")
    fields.setdefault("marketing_opt_in", False)
    return NewSubmission(email=email, terms=TERMS, marketing=MARKETING, **fields)


def count(store, model) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_first_submission_creates_lead_submission_and_consent(store):
    lead, submission = record_submission(store, new(first_name="Ann", marketing_opt_in=True,
                                                   ip_prefix="203.0.113.0/24"))
    assert (lead.email, lead.first_name) == ("ann@example.com", "Ann")
    assert lead.first_submission_id == lead.last_submission_id == submission.id
    assert submission.lead_id == lead.id
    with store.read() as s:
        events = s.scalars(select(ConsentEvent).order_by(ConsentEvent.kind.desc())).all()
        texts = {row.sha256: row.text for row in s.scalars(select(ConsentTextRow))}
    assert [(e.kind, e.granted, e.version, e.sha256, e.ip_prefix) for e in events] == [
        ("terms", True, "terms-1", TERMS.sha256, "203.0.113.0/24"),
        ("marketing", True, "marketing-1", MARKETING.sha256, "203.0.113.0/24"),
    ]
    assert texts == {TERMS.sha256: TERMS.text, MARKETING.sha256: MARKETING.text}


def test_same_person_in_any_case_is_one_lead(store):
    first, _ = record_submission(store, new("Ann.Lee@example.com"))
    again, _ = record_submission(store, new("ann.lee@example.com", resource_id="scoring"))
    assert again.id == first.id
    assert count(store, Lead) == 1
    assert count(store, Submission) == 2
    assert find_lead(store, "ANN.LEE@EXAMPLE.COM").id == first.id


def test_newest_non_empty_values_win(store):
    t0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    record_submission(store, new(first_name="Ann", company="Acme", job_title="Analyst", created_at=t0))
    lead, latest = record_submission(store, new(
        first_name="Annie", company="", job_title="Head of Growth", industry="Software",
        created_at=t0 + timedelta(days=3)))
    assert (lead.first_name, lead.company, lead.job_title, lead.industry) == (
        "Annie", "Acme", "Head of Growth", "Software")
    assert lead.first_seen == t0
    assert lead.last_seen == t0 + timedelta(days=3)
    assert lead.last_submission_id == latest.id
    assert lead.first_submission_id != latest.id


def test_a_late_replay_only_fills_gaps(store):
    t0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    record_submission(store, new(first_name="Annie", created_at=t0 + timedelta(days=1)))
    lead, older = record_submission(store, new(first_name="Ann", company="Acme", created_at=t0))
    assert (lead.first_name, lead.company) == ("Annie", "Acme")
    assert lead.first_seen == t0 and lead.first_submission_id == older.id
    assert lead.last_seen == t0 + timedelta(days=1)


def test_recording_the_same_submission_twice_stores_it_once(store):
    data = new()
    first = record_submission(store, data)
    second = record_submission(store, data)
    assert second[1].id == first[1].id
    assert count(store, Submission) == 1
    assert count(store, ConsentEvent) == 2


def test_consent_words_are_stored_once(store):
    record_submission(store, new("ann@example.com"))
    record_submission(store, new("bob@example.com"))
    assert count(store, ConsentTextRow) == 2
    assert known_consent_text(store, TERMS.sha256) == TERMS
    assert known_consent_text(store, "0" * 64) is None


def test_consent_history_of_a_lead(store):
    lead, _ = record_submission(store, new(marketing_opt_in=True))
    record_submission(store, new(marketing_opt_in=False))
    record_submission(store, new("bob@example.com"))
    events = consent_events(store, lead.id)
    assert [(e.kind, e.granted) for e in events] == [
        ("terms", True), ("marketing", True), ("terms", True), ("marketing", False)]
    assert {e.sha256 for e in events if e.kind == "marketing"} == {MARKETING.sha256}


def test_times_are_utc_and_timezone_aware(store):
    lead, submission = record_submission(store, new())
    found = find_lead(store, "ann@example.com")
    for moment in (lead.first_seen, submission.created_at, found.first_seen, found.last_seen):
        assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


#: A trigger that makes the database refuse the consent events, the post's last statement.
REFUSE_CONSENT_EVENTS = {
    "sqlite": ["CREATE TRIGGER refuse BEFORE INSERT ON consent_events "
               "BEGIN SELECT RAISE(ABORT, 'the disk refused the write'); END"],
    "postgresql": ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'the disk refused the write'; END $$",
                   "CREATE TRIGGER refuse BEFORE INSERT ON consent_events "
                   "FOR EACH ROW EXECUTE FUNCTION refuse()"],
}


@pytest.mark.parametrize("direct", [True, False], ids=["driver", "sqlalchemy"])
def test_a_failure_midway_leaves_nothing(store, direct):
    """The database fails at the last statement (the consent events): the lead, submission
    and consent texts written before it are rolled back, and the error is SQLAlchemy's."""
    with store.engine.begin() as conn:
        for statement in REFUSE_CONSENT_EVENTS[store.dialect]:
            conn.execute(text(statement))
    with pytest.raises(SQLAlchemyError, match="the disk refused the write"):
        record_submission(store, new(), direct=direct)
    for model in (Lead, Submission, ConsentTextRow, ConsentEvent):
        assert count(store, model) == 0, model.__tablename__
    with store.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse" + (" ON consent_events" if store.dialect == "postgresql" else "")))
    record_submission(store, new(), direct=direct)
    assert count(store, Lead) == 1


def test_downloads_are_recorded(store):
    lead, submission = record_submission(store, new())
    download = record_download(store, submission_uid=submission.uid, resource_id="leads-vs-prospects",
                                     user_agent="x" * 600, ip_prefix="2001:db8:1::/48")
    assert download is not None
    with store.read() as s:
        row = s.scalars(select(Download)).one()
    assert (row.lead_id, row.submission_id, row.resource_id, row.ip_prefix) == (
        lead.id, submission.id, "leads-vs-prospects", "2001:db8:1::/48")
    assert len(row.user_agent) == 500


def test_download_of_a_submission_not_stored_is_not_recorded(store):
    assert record_download(store, submission_uid=uuid.uuid4(), resource_id="scoring") is None
    assert count(store, Download) == 0


def test_a_download_replayed_from_the_spool_keeps_its_time(store):
    _, submission = record_submission(store, new())
    at = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
    assert not has_download(store, submission.uid, at)
    record_download(store, submission_uid=submission.uid, resource_id="scoring", at=at)
    assert has_download(store, submission.uid, at)
    assert not has_download(store, submission.uid, at + timedelta(microseconds=1))
    with store.read() as s:
        assert s.scalars(select(Download.created_at)).all() == [at]


def test_find_lead_with_an_address_that_is_not_one(store):
    record_submission(store, new())
    assert find_lead(store, "not an address") is None
    assert find_lead(store, "someone@example.com") is None


@pytest.mark.parametrize("same_email", [False, True], ids=["many people", "one person"])
def test_concurrent_posts_are_all_stored(store, same_email):
    """Writers queue for the lock (SQLite: BEGIN IMMEDIATE) instead of failing as locked."""
    errors: list[Exception] = []

    def post(worker: int) -> None:
        try:
            for i in range(10):
                email = "ann@example.com" if same_email else f"w{worker}-{i}@example.com"
                record_submission(store, new(email))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(store, Submission) == 40
    assert count(store, Lead) == (1 if same_email else 40)


def test_two_workers_racing_for_a_new_address_make_one_lead(database_url):
    """Two processes' stores post for the same new person at the same instant, round after round.

    A barrier holds each worker at the point of the race: both have just taken a connection
    from their pool, about to send BEGIN IMMEDIATE (SQLite: both reach for the write lock) or
    BEGIN and INSERT … ON CONFLICT on email_key (PostgreSQL: both insert the lead).
    """
    workers = [Store(database_url), Store(database_url)]
    barrier = threading.Barrier(len(workers), timeout=10)
    racers: set[threading.Thread] = set()
    met: list[int] = []

    def wait_for_the_other(dbapi_connection, record, proxy):
        if threading.current_thread() in racers:  # not the SQLite checkpointer
            met.append(barrier.wait())

    for worker in workers:
        event.listen(worker.engine, "checkout", wait_for_the_other)
    rounds, errors = 10, []

    def post(worker: Store, name: str) -> None:
        try:
            for n in range(rounds):
                record_submission(worker, new(f"racer{n}@example.com", first_name=name))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=post, args=(w, name)) for w, name in zip(workers, "AB")]
    racers.update(threads)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    racers.clear()
    try:
        assert errors == []
        assert len(met) == 2 * rounds  # the race was run every round
        with workers[0].read() as s:
            leads = s.scalars(select(Lead).order_by(Lead.id)).all()
            posts = {lead.id: s.scalars(select(Submission.id).where(Submission.lead_id == lead.id)).all()
                     for lead in leads}
            events = s.scalar(select(func.count()).select_from(ConsentEvent))
        assert [lead.email for lead in leads] == [f"racer{n}@example.com" for n in range(rounds)]
        for lead in leads:
            assert len(posts[lead.id]) == 2
            assert {lead.first_submission_id, lead.last_submission_id} <= set(posts[lead.id])
            assert lead.first_name in {"A", "B"}
        assert events == 4 * rounds
    finally:
        for worker in workers:
            worker.dispose()


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_sqlite_settings(store):
    with store.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("busy_timeout") == 5000
        assert pragma("foreign_keys") == 1


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_a_post_waits_for_the_write_lock_until_the_busy_timeout(store):
    """Another process holds SQLite's write lock: the post waits and goes in once it is free;
    held past the busy timeout, the post fails (and is spooled by the caller)."""
    path = make_url(store.url).database
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, holder.rollback)
    release.start()
    started = time.monotonic()
    record_submission(store, new("waited@example.com"))
    assert time.monotonic() - started >= 0.25
    assert find_lead(store, "waited@example.com") is not None

    impatient = Store(store.url, sqlite_busy_timeout_ms=100)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked"):
            record_submission(impatient, new("gave-up@example.com"))
        assert 0.09 <= time.monotonic() - started < 1
        with impatient.engine.connect() as conn:  # the connection's own timeout is back
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 100
    finally:
        holder.rollback()
        holder.close()
        impatient.dispose()
    assert find_lead(store, "gave-up@example.com") is None


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_other_writes_wait_for_the_lock_the_same_way(store):
    """Writes through the ORM (a staff account here) take the write lock as a post does."""
    path = make_url(store.url).database
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, holder.rollback).start()
    started = time.monotonic()
    accounts.add_user(store, "ann.admin@example.com", "a long password 1", "admin")
    assert time.monotonic() - started >= 0.25

    impatient = Store(store.url, sqlite_busy_timeout_ms=100)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            accounts.add_user(impatient, "bob.admin@example.com", "a long password 2", "admin")
    finally:
        holder.rollback()
        holder.close()
        impatient.dispose()
    assert [user.email for user in accounts.users(store)] == ["ann.admin@example.com"]


def checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "leadgate-sqlite-checkpoint"]


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_leads_reach_the_database_file_within_a_second(store, tmp_path):
    """Commits go to the WAL; the service's checkpointer copies them into the database file
    (SQLite itself would only at 20,000 pages). A copy of the file alone, as a backup
    tool that ignores the WAL would take, holds the leads."""
    path = Path(make_url(store.url).database)
    running = set(checkpointers())
    for n in range(20):
        record_submission(store, new(f"wal{n}@example.com"))
    mine = set(checkpointers()) - running
    assert len(mine) == 1
    copy = tmp_path / "copy.db"
    deadline = time.monotonic() + 5
    while True:
        copy.write_bytes(path.read_bytes())
        with sqlite3.connect(copy) as db:
            if db.execute("SELECT count(*) FROM leads").fetchone()[0] == 20:
                break
        assert time.monotonic() < deadline, "the WAL was not checkpointed"
        time.sleep(0.1)
    store.dispose()
    assert not [thread for thread in mine if thread.is_alive()]


def terminate(postgres_admin, pid: int) -> None:
    """End a server process as a PostgreSQL restart would, and wait until it is gone."""
    with postgres_admin.connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        for _ in range(100):
            if not admin.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).first():
                break
            time.sleep(0.05)


@pytest.mark.parametrize("database_kind", ["postgresql"], indirect=True)
def test_first_query_after_postgresql_restarted_succeeds(store, postgres_admin):
    """A restart closes every pooled connection; pre-ping replaces them before they are used."""
    record_submission(store, new())
    with store.engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    terminate(postgres_admin, pid)
    assert find_lead(store, "ann@example.com") is not None


@pytest.mark.parametrize("database_kind", ["postgresql"], indirect=True)
def test_a_post_on_a_connection_the_server_dropped_goes_in_once(store, postgres_admin):
    """The pool tests a connection before a post uses it: one the server dropped is replaced,
    and the post is stored once."""
    record_submission(store, new("first@example.com"))
    with store.engine.connect() as conn:  # the pool's one connection, idle again after
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    terminate(postgres_admin, pid)
    lead, submission = record_submission(store, new("after.restart@example.com"))
    assert find_lead(store, "after.restart@example.com").id == lead.id
    assert count(store, Submission) == 2
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid


def test_the_service_never_creates_tables(empty_database_url, content_dir):
    """Unmigrated, the store fails (the caller answers 503) and leaves the database as it was."""
    app = create_app({"TESTING": True, "SECRET_KEY": "k" * 32, "CONTENT_DIR": str(content_dir),
                      "DATABASE_URL": empty_database_url})
    store = get_store(app)
    try:
        with pytest.raises(SQLAlchemyError):
            record_submission(store, new())
        assert inspect(store.engine).get_table_names() == []
    finally:
        store.dispose()


def test_nothing_connects_before_first_use(tmp_path: Path, content_dir):
    db = tmp_path / "lazy.db"
    app = create_app({"TESTING": True, "SECRET_KEY": "k" * 32, "CONTENT_DIR": str(content_dir),
                      "DATABASE_URL": f"sqlite:///{db}"})
    assert not db.exists()
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    store = get_store(app)
    assert find_lead(store, "ann@example.com") is None
    store.dispose()


def stored_rows(store) -> list[list[tuple]]:
    """Every row a post writes, without ids and times of storage, in a comparable order."""
    with store.read() as s:
        leads = s.execute(select(Lead.email, Lead.first_name, Lead.company, Lead.first_seen,
                                 Lead.last_seen).order_by(Lead.email_key)).all()
        submissions = s.execute(select(Submission.uid, Submission.email, Submission.first_name,
                                       Submission.utm_source, Submission.user_agent,
                                       Submission.marketing_opt_in).order_by(Submission.uid)).all()
        events = s.execute(select(ConsentEvent.kind, ConsentEvent.granted, ConsentEvent.sha256,
                                  ConsentEvent.created_at).order_by(ConsentEvent.created_at,
                                                                    ConsentEvent.kind)).all()
        texts = s.execute(select(ConsentTextRow.sha256, ConsentTextRow.text).order_by(ConsentTextRow.sha256)).all()
    return [list(leads), list(submissions), list(events), list(texts)]


def test_both_ways_of_running_a_post_store_the_same_rows(store):
    """The driver's cursor (every visitor's post) and SQLAlchemy's execution (spool replays)
    run the same statements: the same posts leave the same rows, replays included."""
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    posts = [new("Ann@example.com", first_name="Ann", created_at=t0, utm_source="news"),
             new("ann@example.com", company="Acme", created_at=t0 + timedelta(hours=1),
                 marketing_opt_in=True, user_agent="u" * 600),
             new("bob@example.com", created_at=t0 - timedelta(days=1))]
    outcomes = []
    for direct in (True, False):
        answers = [record_submission(store, data, direct=direct) for data in (*posts, posts[0])]
        outcomes.append((stored_rows(store), [(lead.email, lead.first_name, lead.company,
                                               submission.uid) for lead, submission in answers]))
        with store.engine.begin() as conn:
            # The ledger gives its rows up to erasure only (migration 0008): as if each was erased.
            conn.execute(text("INSERT INTO erasures (lead_id, created_at, channel, actor) "
                              "SELECT id, first_seen, 'cli', '' FROM leads"))
            conn.execute(text("DELETE FROM consent_events"))
            conn.execute(text("UPDATE leads SET first_submission_id = NULL, last_submission_id = NULL"))
            for table in ("submissions", "leads", "consent_texts"):
                conn.execute(text(f"DELETE FROM {table}"))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1][-1] == ("ann@example.com", "Ann", "Acme", posts[0].uid)  # the replay
