"""The rights of the person: a copy of everything held (access), erasure that leaves no trace in
any file, the suppression list, and the retention purge — driven as people use them: form posts,
download links, `leadgate` commands and the workspace."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, inspect, make_url, select, text
from mailsink import Sink, running_sink
from staff import add_user, csrf_token, sign_in, signed_in

from capture.catalog import get_catalog
from capture.db.models import (
    ConsentEvent,
    Download,
    Email,
    Erasure,
    ExportRecord,
    HeldPost,
    Job,
    Lead,
    StageChange,
    Submission,
    Suppression,
    utcnow,
)
from capture.db.store import get_store
from capture.jobs import queue, schedule
from capture.jobs.worker import Worker
from capture.leads.submission import NewSubmission, record_submission
from capture.spool import get_spool
from capture.spool.lines import submission_line

ZEPH = "Zephyrine.Quillfeather@Example.org"
OTHER = "bertrand.oakhollow@example.net"
NAMES = ("Zephyrine", "Quillfeather", "Quillfeather Analytics")


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "instance"
    monkeypatch.setenv("LEADGATE_INSTANCE_PATH", str(folder))
    return folder


@pytest.fixture
def app(make_app, instance):
    return make_app(SPOOL_PATH=str(instance / "spool.jsonl"), RATE_LIMIT="off")


@pytest.fixture
def sink() -> Iterator[Sink]:
    yield from running_sink()


@pytest.fixture
def mailing_app(make_app, instance, sink):
    """The service with email delivery on: each post queues an email and the job sending it."""
    return make_app(SPOOL_PATH=str(instance / "spool.jsonl"), RATE_LIMIT="off", SMTP_URL=sink.url,
                    MAIL_FROM="Example Marketing <hello@example.com>", EMAIL_DELIVERY=True)


def submit(client, form_post, email: str, **fields) -> str | None:
    """A form post as a browser sends it; the download link's path (None: it is emailed)."""
    answer = client.post("/submit", data=form_post(email=email, **fields), headers={"Accept": "application/json"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    url = answer.get_json().get("download_url")
    return urlsplit(url).path if url else None


def zephyrine(client, form_post, runner, app, sink: Sink | None = None) -> None:
    """Ann's story for Zephyrine: two posts, a download, consent, a stage move with a note that
    names her, a post held as spam and a line waiting in the spool. With a ``sink``, email
    delivery is on: the worker sends her two emails and she opens the link in the first."""
    link = submit(client, form_post, ZEPH, first_name="Zephyrine", last_name="Quillfeather",
                  company="Quillfeather Analytics", marketing="yes",
                  marketing_opt_in="yes")
    submit(client, form_post, ZEPH.lower(), resource_id="scoring", first_name="Zephyrine",
           last_name="Quillfeather", company="Quillfeather Analytics")
    if sink is not None:
        assert link is None and Worker(app).run_pending() == 2
        [link] = re.findall(r"https?://\S+(/download/\S+)", sink.wait_for(2)[0].get_body(("plain",)).get_content())
    fetch(client, link)
    assert add_user(runner, "sam.sales@example.com", "sales").exit_code == 0
    moved = runner.invoke(args=["stage", ZEPH, "sql", "--by", "sam.sales@example.com",
                                "--reason", "Zephyrine Quillfeather asked for a call"])
    assert moved.exit_code == 0, moved.output
    held = client.post("/submit", data=form_post(email=ZEPH, first_name="Zephyrine", website="http://x.example"))
    assert held.status_code == 303
    with app.app_context():
        catalog = get_catalog()
    resource = catalog.get("leads-vs-prospects")
    get_spool(app).file.append(submission_line(NewSubmission(
        email=ZEPH.upper(), resource_id=resource.id, terms=resource.terms, marketing=catalog.settings.marketing,
        marketing_opt_in=False, first_name="Zephyrine", last_name="Quillfeather")))


def fetch(client, link: str) -> None:
    """Open a download link, as the person does."""
    response = client.get(link)
    assert response.status_code == 200
    response.close()


def traces(folder: Path, words: tuple[str, ...]) -> list[str]:
    """Every file under ``folder`` holding one of ``words`` (any case; UTF-8 and UTF-16)."""
    found = []
    needles = [w.lower() for w in words]
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes().lower()
        for needle in needles:
            for encoded in (needle.encode("utf-8"), needle.encode("utf-16-le"), needle.encode("utf-16-be")):
                if encoded in data:
                    found.append(f"{path.name}: {needle}")
    return found


def report(runner) -> dict:
    result = runner.invoke(args=["report", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def count(app, model, *where) -> int:
    with get_store(app).read() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


# --- Access ----------------------------------------------------------------------------------

def test_the_export_holds_everything_about_the_person_and_nobody_else(app, client, form_post, runner, tmp_path):
    zephyrine(client, form_post, runner, app)
    submit(client, form_post, OTHER, first_name="Bertrand", last_name="Oakhollow", company="Oak Ltd")
    out = tmp_path / "mine.json"
    result = runner.invoke(args=["privacy", "export", ZEPH.upper(), "--output", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["format"] == "leadgate-person-data/1"
    assert document["lead"]["first_name"] == "Zephyrine" and document["lead"]["stage"] == "sql"
    assert document["lead"]["score"]["reasons"] is not None
    assert [s["resource_id"] for s in document["submissions"]] == ["leads-vs-prospects", "scoring"]
    assert len(document["downloads"]) == 1
    marketing = [e for e in document["consent_events"] if e["kind"] == "marketing"]
    assert marketing[0]["event"] == "given" and marketing[0]["text"] == get_catalog_text(app)
    assert [c["reason"] for c in document["stage_changes"]] == ["Zephyrine Quillfeather asked for a call"]
    assert len(document["held_as_spam"]) == 1 and document["held_as_spam"][0]["post"]["first_name"] == "Zephyrine"
    assert [line["kind"] for line in document["waiting_in_spool"]] == ["submission"]
    whole = out.read_text(encoding="utf-8").lower()
    assert "oakhollow" not in whole and "bertrand" not in whole
    assert out.stat().st_mode & 0o777 == 0o600
    with get_store(app).read() as s:
        logged = s.scalars(select(ExportRecord).order_by(ExportRecord.id.desc())).first()
    assert logged.channel == "cli" and logged.completed and "zephyrine" not in logged.filters.lower()


def get_catalog_text(app) -> str:
    with app.app_context():
        return get_catalog().settings.marketing.text


def test_nothing_held_is_said_and_exits_1(app, runner):
    result = runner.invoke(args=["privacy", "export", "nobody@example.org"])
    assert result.exit_code == 1 and "Nothing is held about nobody@example.org" in result.output


def test_the_workspace_download_is_an_attachment_for_who_may_export(app, client, form_post, runner):
    submit(client, form_post, ZEPH, first_name="Zephyrine")
    submit(client, form_post, OTHER, first_name="Bertrand")
    with get_store(app).read() as s:
        lead_id = s.scalar(select(Lead.id).where(Lead.email_key == ZEPH.lower()))
    signed_in(client, runner, "mia@example.com", "marketing")
    page = client.get(f"/workspace/leads/{lead_id}").get_data(as_text=True)
    assert "Download their data (JSON)" in page and "Erase this person" not in page
    answer = client.get(f"/workspace/leads/{lead_id}/privacy.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"] == f'attachment; filename="lead-{lead_id}-personal-data.json"'
    body = answer.get_data(as_text=True)
    assert "Zephyrine" in body and "Bertrand" not in body
    assert client.get(f"/workspace/leads/{lead_id}/erase").status_code == 403


# --- Erasure ---------------------------------------------------------------------------------

def test_an_erased_person_leaves_no_trace_in_any_file_and_reports_keep_their_counts(
        mailing_app, sink, form_post, tmp_path, database_kind, database_url):
    app = mailing_app
    client, runner = app.test_client(), app.test_cli_runner()
    reader = None
    if database_kind == "sqlite":
        # A reader keeps the WAL from being reused while she posts: her rows stay in old frames
        # of the -wal file, as on a busy service, where only a truncating checkpoint removes them.
        reader = sqlite3.connect(make_url(database_url).database, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM leads").fetchone()
    zephyrine(client, form_post, runner, app, sink)
    submit(client, form_post, OTHER, first_name="Bertrand", last_name="Oakhollow", company="Oak Ltd")
    assert Worker(app).run_pending() == 1
    # Her emails name her address; so did the jobs that sent them.
    assert count(app, Email, func.lower(Email.to_address) == ZEPH.lower()) == 2
    if reader is not None:
        reader.execute("COMMIT")
        reader.close()
    # Staff search for her, in the workspace and on the command line: the export log keeps
    # what they typed.
    assert sign_in(client, "sam.sales@example.com").status_code == 303
    for search, finds in ((ZEPH, True), ("quillfeather", True), ("Zephyrine Quillfeather", False),
                          ("Quillfeather Analytics", True)):
        csv = client.get("/workspace/leads.csv", query_string={"q": search})
        assert csv.status_code == 200 and ("Zephyrine" in csv.get_data(as_text=True)) == finds, search
        csv.close()
    exported = runner.invoke(args=["export", "--search", "ZEPHYRINE"])
    assert exported.exit_code == 0 and "Quillfeather" in exported.output
    company = client.get("/workspace/leads.csv", query_string={"q": "Oak Ltd"})
    company.close()
    before = report(runner)
    result = runner.invoke(args=["privacy", "erase", ZEPH.lower(), "--yes"])
    assert result.exit_code == 0, result.output
    assert "Erased zephyrine.quillfeather@example.org" in result.output
    assert "1 post(s) held as spam deleted; 1 line(s) removed from the spool" in result.output
    assert "Database files: clean." in result.output
    # Scanned while the service's connections are open: closing the last one would checkpoint
    # and remove the WAL by itself, and hide what the erasure left there.
    assert report(runner) == before
    if database_kind == "sqlite":
        assert traces(tmp_path, (ZEPH, *NAMES)) == []
        assert traces(tmp_path, (OTHER, "Oakhollow")) != []
    else:
        assert postgres_rows_holding(app, ("zephyrine", "quillfeather")) == []
        assert postgres_rows_holding(app, ("oakhollow",)) != []
    with get_store(app).read() as s:
        searches = s.scalars(select(ExportRecord.filters).order_by(ExportRecord.id)).all()
    assert searches == ["q=[erased]", "q=[erased]", "q=[erased] [erased]", "q=[erased]", "--search [erased]",
                        "q=Oak Ltd"]
    with get_store(app).read() as s:
        tomb = s.scalars(select(Lead).where(Lead.erased_at.is_not(None))).one()
        other = s.scalars(select(Lead).where(Lead.erased_at.is_(None))).one()
        assert (tomb.email, tomb.email_key, tomb.first_name, tomb.stage) == ("", f"erased:{tomb.id}", "", "sql")
        assert [r.resource_id for r in s.scalars(select(Submission).where(Submission.lead_id == tomb.id))] \
            == ["leads-vs-prospects", "scoring"]
        assert s.scalar(select(func.count()).select_from(ConsentEvent).where(ConsentEvent.lead_id == tomb.id)) == 0
        assert s.scalar(select(func.count()).select_from(ConsentEvent).where(ConsentEvent.lead_id == other.id)) == 2
        assert s.scalars(select(Download.ip_prefix).where(Download.lead_id == tomb.id)).all() == [None]
        assert s.scalars(select(StageChange.reason).where(StageChange.lead_id == tomb.id)).all() == [""]
        erasure = s.scalars(select(Erasure)).one()
        assert (erasure.lead_id, erasure.channel) == (tomb.id, "cli")
        assert other.first_name == "Bertrand"
    assert count(app, HeldPost) == 0 and count(app, Suppression) == 1
    assert count(app, Email) == count(app, Email, Email.lead_id == other.id) == 1
    assert count(app, Job, Job.lead_id == tomb.id) == 0 and count(app, Job, Job.lead_id == other.id) == 1


def postgres_rows_holding(app, words: tuple[str, ...]) -> list[str]:
    """Every row of every table whose text holds one of ``words`` (any case)."""
    found = []
    with get_store(app).engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT t::text FROM "{table}" t')).scalars():
                found += [f"{table}: {w}" for w in words if w in row.lower()]
    return found


def test_the_workspace_erases_for_an_admin_who_types_the_address(app, client, form_post, runner):
    submit(client, form_post, ZEPH, first_name="Zephyrine")
    with get_store(app).read() as s:
        lead_id = s.scalar(select(Lead.id))
    signed_in(client, runner, "ada@example.com", "admin")
    page = client.get(f"/workspace/leads/{lead_id}")
    assert "Erase this person" in page.get_data(as_text=True)
    token = csrf_token(client, f"/workspace/leads/{lead_id}/erase")
    wrong = client.post(f"/workspace/leads/{lead_id}/erase", data={"csrf_token": token, "email": OTHER})
    assert wrong.status_code == 422 and "Type the lead&#39;s email address exactly" in wrong.get_data(as_text=True)
    assert count(app, Lead, Lead.erased_at.is_(None)) == 1
    assert client.post(f"/workspace/leads/{lead_id}/erase", data={"email": ZEPH}).status_code == 400
    done = client.post(f"/workspace/leads/{lead_id}/erase", data={"csrf_token": token, "email": ZEPH.upper()})
    assert done.status_code == 303
    assert count(app, Lead, Lead.erased_at.is_(None)) == 0
    with get_store(app).read() as s:
        assert s.execute(select(Erasure.channel, Erasure.actor)).one() == ("workspace", "ada@example.com")
    assert client.get(f"/workspace/leads/{lead_id}/erase").status_code == 404
    gone = client.get(f"/workspace/leads/{lead_id}")
    assert gone.status_code == 404 and "it may have been erased" in gone.get_data(as_text=True)


def test_sales_cannot_erase(app, client, form_post, runner):
    submit(client, form_post, ZEPH)
    with get_store(app).read() as s:
        lead_id = s.scalar(select(Lead.id))
    signed_in(client, runner)
    token = csrf_token(client, f"/workspace/leads/{lead_id}")
    answer = client.post(f"/workspace/leads/{lead_id}/erase", data={"csrf_token": token, "email": ZEPH})
    assert answer.status_code == 403
    assert count(app, Lead, Lead.erased_at.is_(None)) == 1


# --- Suppression -----------------------------------------------------------------------------

def test_a_spooled_post_from_before_the_erasure_is_dropped_and_a_new_post_is_a_new_start(
        app, client, form_post, runner):
    submit(client, form_post, ZEPH, first_name="Zephyrine")
    with app.app_context():
        catalog = get_catalog()
    resource = catalog.get("leads-vs-prospects")
    old = NewSubmission(email=ZEPH, resource_id=resource.id, terms=resource.terms,
                        marketing=catalog.settings.marketing, marketing_opt_in=False, first_name="Zephyrine")
    assert runner.invoke(args=["privacy", "erase", ZEPH, "--yes"]).exit_code == 0
    # A line written before the erasure by another process (the rewrite had already run).
    get_spool(app).file.append(submission_line(old))
    status = runner.invoke(args=["spool", "status"])
    assert "1 submission(s) are of people erased since they were made" in status.output
    replayed = runner.invoke(args=["spool", "replay"])
    assert replayed.exit_code == 0, replayed.output
    assert "1 submission(s) of people erased since they were made were dropped" in replayed.output
    assert count(app, Lead, Lead.erased_at.is_(None)) == 0
    submit(client, form_post, ZEPH, first_name="Zephyrine")
    assert count(app, Lead, Lead.erased_at.is_(None)) == 1


def test_a_held_post_from_before_the_erasure_is_not_released(app, client, form_post, runner):
    with app.app_context():
        catalog = get_catalog()
    resource = catalog.get("leads-vs-prospects")
    from capture.spam import folder
    from capture.spam.verdict import judge, reason

    old = NewSubmission(email=ZEPH, resource_id=resource.id, terms=resource.terms, marketing=catalog.settings.marketing,
                        marketing_opt_in=False, spam=judge([reason("honeypot")]),
                        created_at=utcnow() - timedelta(minutes=5))
    assert runner.invoke(args=["privacy", "erase", ZEPH, "--yes"]).exit_code == 0
    folder.hold(get_store(app), old)  # a replay racing the erasure put it back
    assert add_user(runner, "sam.sales@example.com", "sales").exit_code == 0
    post_id = folder.find(get_store(app), old.uid).id
    result = runner.invoke(args=["spam", "release", str(post_id), "--by", "sam.sales@example.com"])
    assert result.exit_code == 0, result.output
    assert count(app, Lead) == 0 and count(app, HeldPost) == 0


@pytest.fixture
def service_without_its_key(make_app, instance, monkeypatch):
    """The service as deployed (not in test mode), and a `leadgate` command run on its host
    without LEADGATE_SECRET_KEY: the suppression list's key is unknown to that command."""
    monkeypatch.delenv("LEADGATE_SECRET_KEY", raising=False)
    return make_app(SPOOL_PATH=str(instance / "spool.jsonl"), RATE_LIMIT="off", TESTING=False)


def test_spam_release_without_the_key_works_while_nobody_was_erased(service_without_its_key, form_post):
    app = service_without_its_key
    client, runner = app.test_client(), app.test_cli_runner()
    assert client.post("/submit", data=form_post(email=ZEPH, website="http://x.example")).status_code == 303
    assert add_user(runner, "sam.sales@example.com", "sales").exit_code == 0
    post_id = folder_post_id(app)
    result = runner.invoke(args=["spam", "release", str(post_id), "--by", "sam.sales@example.com"])
    assert result.exit_code == 0, result.output
    assert f"{post_id} Zephyrine.Quillfeather@example.org: released as lead" in result.output
    assert count(app, Lead) == 1


def test_spam_release_without_the_key_once_someone_was_erased_says_to_set_it(
        service_without_its_key, form_post, monkeypatch):
    app = service_without_its_key
    client, runner = app.test_client(), app.test_cli_runner()
    with monkeypatch.context() as with_key:
        with_key.setenv("LEADGATE_SECRET_KEY", app.config["SECRET_KEY"])
        assert runner.invoke(args=["privacy", "erase", OTHER, "--yes"]).exit_code == 0
    assert client.post("/submit", data=form_post(email=ZEPH, website="http://x.example")).status_code == 303
    assert add_user(runner, "sam.sales@example.com", "sales").exit_code == 0
    post_id = folder_post_id(app)
    result = runner.invoke(args=["spam", "release", str(post_id), "--by", "sam.sales@example.com"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: set LEADGATE_SECRET_KEY to the service's secret key: the suppression list of erased people "
        "is keyed with it (to tell whether a post's sender was erased since); nothing was released."]
    assert count(app, Lead) == 0 and count(app, HeldPost, HeldPost.released_at.is_(None)) == 1


def folder_post_id(app) -> int:
    with get_store(app).read() as s:
        return s.scalars(select(HeldPost.id)).one()


# --- Retention -------------------------------------------------------------------------------

def posted_long_ago(app, email: str) -> int:
    """A post from 2020, stored as a spool replay stores an old post; the lead's number."""
    with app.app_context():
        catalog = get_catalog()
    resource = catalog.get("leads-vs-prospects")
    lead, _ = record_submission(get_store(app), NewSubmission(
        email=email, resource_id=resource.id, terms=resource.terms, marketing=catalog.settings.marketing,
        marketing_opt_in=False, first_name="Zephyrine", created_at=datetime(2020, 1, 1, tzinfo=UTC)))
    return lead.id


def test_the_purge_erases_leads_inactive_past_the_retention_period(make_app, instance, form_post):
    app = make_app(SPOOL_PATH=str(instance / "spool.jsonl"), RATE_LIMIT="off", RETENTION_PURGE=True)
    client, runner = app.test_client(), app.test_cli_runner()
    old_id = posted_long_ago(app, ZEPH)
    submit(client, form_post, OTHER, first_name="Bertrand")
    dry = runner.invoke(args=["privacy", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would erase 1 lead without activity since" in dry.output and f": {old_id}." in dry.output
    assert "zephyrine" not in dry.output.lower()
    assert count(app, Lead, Lead.erased_at.is_(None)) == 2
    with get_store(app).writes() as tx:
        queue.enqueue(tx, get_store(app).dialect, "privacy_purge", {}, dedupe_key="privacy_purge:test")
    assert Worker(app).run_pending() == 1
    with get_store(app).read() as s:
        assert s.scalars(select(Lead.id).where(Lead.erased_at.is_not(None))).all() == [old_id]
        assert s.execute(select(Erasure.channel)).scalar_one() == "retention"
    again = runner.invoke(args=["privacy", "purge"])
    assert "No lead is without activity since" in again.output


def test_a_stage_move_counts_as_activity(app, runner):
    posted_long_ago(app, ZEPH)
    assert add_user(runner, "sam.sales@example.com", "sales").exit_code == 0
    assert runner.invoke(args=["stage", ZEPH, "sql", "--by", "sam.sales@example.com"]).exit_code == 0
    assert "No lead is without activity" in runner.invoke(args=["privacy", "purge"]).output
    assert count(app, Lead, Lead.erased_at.is_(None)) == 1


def test_a_returning_visitor_whose_new_post_waits_in_the_spam_folder_is_kept(app, client, form_post, runner):
    posted_long_ago(app, ZEPH)
    held = client.post("/submit", data=form_post(email=ZEPH.upper(), website="http://x.example"))
    assert held.status_code == 303 and count(app, HeldPost) == 1
    dry = runner.invoke(args=["privacy", "purge", "--dry-run"])
    assert "No lead is without activity" in dry.output
    assert "No lead is without activity" in runner.invoke(args=["privacy", "purge"]).output
    assert count(app, Lead, Lead.erased_at.is_(None)) == 1 and count(app, HeldPost) == 1


def test_a_returning_visitor_whose_new_post_waits_in_the_spool_is_kept(app, runner):
    posted_long_ago(app, ZEPH)
    with app.app_context():
        catalog = get_catalog()
    resource = catalog.get("scoring")
    get_spool(app).file.append(submission_line(NewSubmission(
        email=ZEPH.lower(), resource_id=resource.id, terms=resource.terms, marketing=catalog.settings.marketing,
        marketing_opt_in=False, first_name="Zephyrine")))
    assert "No lead is without activity" in runner.invoke(args=["privacy", "purge"]).output
    replayed = runner.invoke(args=["spool", "replay"])
    assert replayed.exit_code == 0, replayed.output
    with get_store(app).read() as s:
        lead = s.scalars(select(Lead)).one()
    assert lead.erased_at is None and count(app, Submission, Submission.lead_id == lead.id) == 2


def test_a_new_post_held_during_the_purge_keeps_the_person(app, client, form_post):
    """The check inside the erasing transaction: held after the purge listed her, before it erased her."""
    from capture.privacy import retention

    posted_long_ago(app, ZEPH)
    listed = retention.inactive

    def listed_then_she_posts(*args):
        found = listed(*args)
        assert client.post("/submit", data=form_post(email=ZEPH, website="http://x.example")).status_code == 303
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retention, "inactive", listed_then_she_posts)
        done = retention.purge(app)
    assert done.lead_ids == [] and count(app, Lead, Lead.erased_at.is_(None)) == 1 and count(app, HeldPost) == 1


def test_the_days_purge_erases_every_old_lead_and_holds_its_job_while_it_runs(make_app, instance, monkeypatch):
    app = make_app(SPOOL_PATH=str(instance / "spool.jsonl"), RETENTION_PURGE=True, JOB_LEASE_SECONDS=60)
    old = [posted_long_ago(app, ZEPH), posted_long_ago(app, OTHER)]
    store = get_store(app)
    [job_id] = schedule.enqueue_today(store, app.config, utcnow())
    extended = []
    extend = queue.extend
    monkeypatch.setattr(queue, "extend", lambda *a: extended.append(a) or extend(*a))
    # The job is due at 03:00 UTC: the queue's clock is at least there.
    due = datetime.combine(utcnow().date(), schedule.PERIODIC[0].at, UTC)
    monkeypatch.setattr(queue, "utcnow", lambda: max(utcnow(), due))
    assert Worker(app).run_pending() == 1
    with store.read() as s:
        assert sorted(s.scalars(select(Lead.id).where(Lead.erased_at.is_not(None)))) == old
        assert s.scalars(select(Job.state).where(Job.id == job_id)).one() == "done"
    assert len(extended) == 2  # before each lead


def test_a_purge_taken_over_by_another_worker_stops(make_app, instance, monkeypatch):
    app = make_app(SPOOL_PATH=str(instance / "spool.jsonl"), RETENTION_PURGE=True)
    posted_long_ago(app, ZEPH)
    posted_long_ago(app, OTHER)
    store = get_store(app)
    with store.writes() as tx:
        queue.enqueue(tx, store.dialect, "privacy_purge", {}, dedupe_key="privacy_purge:taken")
    answers = iter([True, False])  # the lease held for the first lead, then another worker took it
    monkeypatch.setattr(queue, "extend", lambda *a: next(answers))
    assert Worker(app).run_pending() == 1
    assert count(app, Lead, Lead.erased_at.is_not(None)) == 1


def test_the_daily_job_does_nothing_when_the_purge_is_turned_off(make_app, instance):
    app = make_app(SPOOL_PATH=str(instance / "spool.jsonl"), RETENTION_PURGE=False)
    posted_long_ago(app, ZEPH)
    with get_store(app).writes() as tx:
        queue.enqueue(tx, get_store(app).dialect, "privacy_purge", {}, dedupe_key="privacy_purge:off")
    assert Worker(app).run_pending() == 1
    assert count(app, Lead, Lead.erased_at.is_(None)) == 1


def test_a_person_with_only_a_post_held_as_spam_is_erased_too(app, client, form_post, runner):
    held = client.post("/submit", data=form_post(email=ZEPH, website="http://x.example"))
    assert held.status_code == 303 and count(app, HeldPost) == 1
    result = runner.invoke(args=["privacy", "erase", ZEPH, "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 post(s) held as spam deleted" in result.output
    assert count(app, HeldPost) == 0 and count(app, Suppression) == 1 and count(app, Erasure) == 0


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_a_wal_that_readers_hold_is_reported_not_hidden(app, client, form_post, runner, database_url, tmp_path):
    submit(client, form_post, ZEPH, first_name="Zephyrine")
    reader = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM leads").fetchone()
        result = runner.invoke(args=["privacy", "erase", ZEPH, "--yes"])
    finally:
        reader.close()
    assert result.exit_code == 1
    assert "the SQLite WAL could not be emptied" in result.output
    assert count(app, Lead, Lead.erased_at.is_(None)) == 0
    again = runner.invoke(args=["privacy", "erase", ZEPH, "--yes"])
    assert again.exit_code == 0 and "Database files: clean." in again.output
    assert traces(tmp_path, (ZEPH, "Zephyrine")) == []


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_accented_names_leave_no_trace_in_any_spelling(app, client, form_post, runner, tmp_path):
    email = "Élodie.Çavaillès@example.org"
    link = submit(client, form_post, email, first_name="Élodie", last_name="Çavaillès", company="Maison Çavaillès")
    fetch(client, link)
    held = client.post("/submit", data=form_post(email=email.upper(), last_name="Çavaillès", website="http://x.example"))
    assert held.status_code == 303 and count(app, HeldPost) == 1
    submit(client, form_post, OTHER, first_name="Bertrand")
    result = runner.invoke(args=["privacy", "erase", email.lower(), "--yes"])
    assert result.exit_code == 0, result.output
    escaped = json.dumps("Çavaillès").strip('"')  # as a spool line or a held post's payload writes it
    assert traces(tmp_path, (email, "Çavaillès", "Élodie", escaped)) == []
    assert count(app, HeldPost) == 0
