"""Nothing lost: when the database cannot take a lead, the visitor still gets the download and
the lead waits in the spool until `leadgate spool replay` (or the background retry) stores it."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SECRET_KEY, TINY_PDF
from flask import Flask
from sqlalchemy import create_engine, func, make_url, select
from sqlalchemy.exc import SQLAlchemyError

from capture import create_app
from capture.db import migrate
from capture.web.links import DownloadClaim, sign_download
from capture.spool import THREAD_NAME
from capture.spool.lines import decode
from capture.db.models import Download, Lead, Submission, metadata
from capture.db.store import get_store
from capture.leads.submission import record_submission

JSON = {"Accept": "application/json"}
POSTGRES_DOWN = "postgresql+psycopg://postgres@127.0.0.1:9/test"
SQLITE_ONLY = pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)


def replaying() -> bool:
    """Whether a thread of this process replays a spool."""
    return any(t.name == THREAD_NAME and t.is_alive() for t in threading.enumerate())


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    """Where make_app's apps keep their spool: one file, as the workers of one host share it."""
    return tmp_path / "spool.jsonl"


@pytest.fixture
def spooling(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """Apps that leave replaying to the test unless it asks for the background thread."""
    return lambda **config: make_app(**{"SPOOL_RETRY_SECONDS": 0, **config})


def drop_every_table(url: str) -> None:
    """As if nobody had run `leadgate db upgrade` on this database yet."""
    engine = create_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()


def count(app: Flask, model: type) -> int:
    with get_store(app).read() as s:
        return s.scalar(select(func.count()).select_from(model))


def spooled(path: Path) -> list[dict]:
    """The spool's lines, each checked to be one whole JSON object."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.splitlines()]


def replay(app: Flask):
    return app.test_cli_runner().invoke(args=["spool", "replay"])


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Visit:
    """Two visitors while the database is failing: the page script's and a plain form post."""

    def __init__(self, app: Flask, form_post: Callable[..., dict[str, str]]):
        client = app.test_client()
        scripted = client.post("/submit", data=form_post("scoring", email="bob@example.com"), headers=JSON)
        assert scripted.status_code == 201, scripted.get_data(as_text=True)
        body = scripted.get_json()
        assert body["ok"] is True
        self.download_url = body["download_url"]
        with client.get(self.download_url) as pdf:
            assert pdf.status_code == 200
            assert pdf.get_data() == TINY_PDF

        plain = client.post("/submit", data=form_post())
        assert plain.status_code == 303
        thanks = client.get(plain.headers["Location"])
        page = thanks.get_data(as_text=True)
        assert thanks.status_code == 200
        assert "Leads versus prospects" in page
        self.thanks_link = re.search(r'href="http://localhost(/download/[^"]+)"', page).group(1)


def check_kept_then_replayed(faulty: Flask, healthy: Callable[[], Flask], repair: Callable[[], None],
                             form_post: Callable[..., dict[str, str]], spool_path: Path) -> None:
    visit = Visit(faulty, form_post)
    lines = spooled(spool_path)
    assert [line["kind"] for line in lines] == ["submission", "download", "submission"]
    bob, download, ann = lines
    assert (bob["email"], bob["resource_id"]) == ("bob@example.com", "scoring")
    assert download["submission_uid"] == bob["uid"]
    assert ann["terms"]["text"] and ann["marketing"]["text"] and ann["created_at"].endswith("+00:00")

    repair()
    app = healthy()
    assert count(app, Lead) == count(app, Submission) == 0

    first = replay(app)
    assert first.exit_code == 0, first.output
    assert "Stored 2 submission(s) and 1 download(s)" in first.output
    assert not spool_path.exists()
    with get_store(app).read() as s:
        rows = s.execute(select(Submission.email, Submission.uid).order_by(Submission.created_at)).all()
        recorded = s.execute(select(Download.resource_id, Download.submission_id)).all()
    assert [(email, str(uid)) for email, uid in rows] == [
        ("bob@example.com", bob["uid"]), ("ann.lee@example.com", ann["uid"])]
    assert [resource for resource, _ in recorded] == ["scoring"]

    second = replay(app)
    assert second.exit_code == 0
    assert "Stored 0 submission(s) and 0 download(s)" in second.output
    assert (count(app, Lead), count(app, Submission), count(app, Download)) == (2, 2, 1)

    # The links handed out during the outage still work, now from the database.
    client = app.test_client()
    for link in (visit.download_url, visit.thanks_link):
        with client.get(link) as pdf:
            assert pdf.status_code == 200
    assert count(app, Download) == 3


@SQLITE_ONLY
def test_locked_sqlite(spooling, database_url, form_post, spool_path):
    holder = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    faulty = spooling(SQLITE_BUSY_TIMEOUT_MS=50)
    check_kept_then_replayed(faulty, spooling, holder.close, form_post, spool_path)


def test_postgresql_down(spooling, form_post, spool_path):
    faulty = spooling(DATABASE_URL=POSTGRES_DOWN)
    check_kept_then_replayed(faulty, spooling, lambda: None, form_post, spool_path)


@SQLITE_ONLY
def test_read_only_database(spooling, database_url, form_post, spool_path):
    path = make_url(database_url).database
    faulty = spooling(DATABASE_URL=f"sqlite:///file:{path}?mode=ro&uri=true")
    check_kept_then_replayed(faulty, spooling, lambda: None, form_post, spool_path)


def test_tables_missing(spooling, database_url, form_post, spool_path):
    """The operator forgot `leadgate db upgrade`: leads wait until the tables exist."""
    drop_every_table(database_url)
    check_kept_then_replayed(spooling(), spooling, lambda: migrate.upgrade(database_url),
                             form_post, spool_path)


def test_spool_line_is_on_disk_before_the_answer(spooling, form_post, spool_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", fsync)
    response = spooling(DATABASE_URL=POSTGRES_DOWN).test_client().post("/submit", data=form_post())
    assert response.status_code == 303
    # The line, then the folder (the new file's entry in it).
    assert synced == [str(spool_path.resolve()), str(spool_path.parent.resolve())]


@pytest.mark.parametrize("spool_fault", ["folder missing", "disk full"])
def test_when_the_spool_fails_too_the_visitor_is_asked_to_retry(spooling, form_post, tmp_path,
                                                                 spool_fault, caplog):
    if spool_fault == "folder missing":
        path = tmp_path / "gone" / "spool.jsonl"
    else:
        if not os.path.exists("/dev/full"):
            pytest.skip("needs /dev/full")
        path = tmp_path / "full" / "spool.jsonl"
        path.parent.mkdir()
        path.symlink_to("/dev/full")
    client = spooling(DATABASE_URL=POSTGRES_DOWN, SPOOL_PATH=str(path)).test_client()

    scripted = client.post("/submit", data=form_post(), headers=JSON)
    assert scripted.status_code == 503
    assert scripted.headers["Retry-After"] == "60"
    assert scripted.get_json() == {"ok": False, "title": "Please try again shortly", "error": (
        "Your details could not be saved just now. Nothing was stored; please submit again in a minute.")}

    page = client.post("/submit", data=form_post())
    text = page.get_data(as_text=True)
    assert (page.status_code, page.mimetype) == (503, "text/html")
    assert "Nothing was stored" in text and "submit again" in text
    assert "Thank" not in text and "/download/" not in text and "Traceback" not in text
    assert "NOT kept" in caplog.text


def test_replay_while_the_database_is_still_down_keeps_every_line(spooling, form_post, spool_path):
    faulty = spooling(DATABASE_URL=POSTGRES_DOWN)
    Visit(faulty, form_post)
    before = spool_path.read_bytes()

    result = replay(faulty)
    assert result.exit_code == 1
    assert "3 line(s) stay in the spool" in result.output
    assert "Connection refused" in result.output or "connection failed" in result.output
    assert spool_path.read_bytes() == before


def test_a_line_replayed_again_after_a_crash_adds_nothing(spooling, form_post, spool_path):
    Visit(spooling(DATABASE_URL=POSTGRES_DOWN), form_post)
    lines = spool_path.read_bytes()
    healthy = spooling()
    assert replay(healthy).exit_code == 0
    # A replay killed after its commits but before it removed the lines leaves them behind.
    spool_path.write_bytes(lines)

    again = replay(healthy)
    assert again.exit_code == 0
    assert "Stored 0 submission(s) and 0 download(s)" in again.output
    assert "2 submission(s) were already stored" in again.output
    assert (count(healthy, Lead), count(healthy, Submission), count(healthy, Download)) == (2, 2, 1)


def test_a_line_cut_short_by_a_crash_is_set_aside_and_reported(spooling, form_post, spool_path):
    faulty = spooling(DATABASE_URL=POSTGRES_DOWN)
    assert faulty.test_client().post("/submit", data=form_post()).status_code == 303
    whole = spool_path.read_bytes()
    cut = whole[: len(whole) // 2]
    with open(spool_path, "ab") as f:  # power lost midway through the next line
        f.write(cut)
    # The next post starts on a line of its own.
    assert faulty.test_client().post("/submit", data=form_post(email="bob@example.com")).status_code == 303

    healthy = spooling()
    status = healthy.test_cli_runner().invoke(args=["spool", "status"])
    assert "holds 2 submission(s)" in status.output and "1 line(s) are unreadable" in status.output

    result = replay(healthy)
    assert result.exit_code == 0, result.output
    assert "Stored 2 submission(s)" in result.output
    assert f"1 unreadable line(s) set aside in {spool_path}.corrupt" in result.output
    assert Path(f"{spool_path}.corrupt").read_bytes() == cut + b"\n"
    assert count(healthy, Submission) == 2

    status = healthy.test_cli_runner().invoke(args=["spool", "status"])
    assert "is empty" in status.output
    assert f"1 unreadable line(s) were set aside in {spool_path}.corrupt" in status.output


def test_status_tells_what_waits(spooling, form_post, spool_path):
    faulty = spooling(DATABASE_URL=POSTGRES_DOWN)
    runner = faulty.test_cli_runner()
    assert "is empty: every lead is in the database" in runner.invoke(args=["spool", "status"]).output
    Visit(faulty, form_post)
    output = runner.invoke(args=["spool", "status"]).output
    assert f"The spool {spool_path} holds 2 submission(s) and 1 download(s)" in output
    assert "leadgate spool replay" in output


def test_links_of_a_spooled_lead_keep_their_rules(spooling, form_post):
    client = spooling(DATABASE_URL=POSTGRES_DOWN).test_client()
    url = client.post("/submit", data=form_post(), headers=JSON).get_json()["download_url"]
    head, signature = url.rsplit(".", 1)
    assert client.get(f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}").status_code == 404
    # Authentic, but neither in the database nor in the spool: erased, or never kept.
    unknown = sign_download(SECRET_KEY, DownloadClaim(uuid.uuid4(), "leads-vs-prospects"))
    healthy = spooling().test_client()
    response = healthy.get(f"/download/{unknown}")
    assert response.status_code == 410
    assert "no longer valid" in response.get_data(as_text=True)


def test_the_service_replays_by_itself_when_the_database_is_back(spooling, database_url,
                                                                  form_post, spool_path):
    drop_every_table(database_url)
    app = spooling(SPOOL_RETRY_SECONDS=0.1)
    assert app.test_client().post("/submit", data=form_post()).status_code == 303
    time.sleep(0.3)  # a few retries fail while the tables are missing
    assert spool_path.exists()

    migrate.upgrade(database_url)
    assert wait_for(lambda: not spool_path.exists())
    assert count(app, Submission) == 1
    assert wait_for(lambda: not replaying())


def test_a_restarted_worker_picks_up_what_was_left(spooling, form_post, spool_path):
    Visit(spooling(DATABASE_URL=POSTGRES_DOWN), form_post)
    restarted = spooling(SPOOL_RETRY_SECONDS=0.1)
    assert restarted.test_client().get("/healthz").status_code == 200
    assert wait_for(lambda: not spool_path.exists())
    assert (count(restarted, Submission), count(restarted, Download)) == (2, 1)


def test_background_replay_is_off_at_zero(spooling, form_post, spool_path):
    app = spooling(DATABASE_URL=POSTGRES_DOWN, SPOOL_RETRY_SECONDS=0)
    assert app.test_client().post("/submit", data=form_post()).status_code == 303
    assert not replaying()


APPEND = """
import json, sys
from capture.spool.file import SpoolFile
spool = SpoolFile(sys.argv[1])
for n in range(int(sys.argv[2])):
    spool.append(json.dumps({"worker": int(sys.argv[3]), "n": n, "pad": "x" * 3000}).encode() + b"\\n")
"""


@pytest.mark.slow
def test_workers_append_side_by_side(spool_path):
    workers = [subprocess.Popen([sys.executable, "-c", APPEND, str(spool_path), "30", str(w)])
               for w in range(3)]
    assert [w.wait(timeout=60) for w in workers] == [0] * 3
    lines = spooled(spool_path)
    assert sorted((line["worker"], line["n"]) for line in lines) == [
        (w, n) for w in range(3) for n in range(30)]


def test_settings(content_dir, tmp_path, monkeypatch):
    config = {"TESTING": True, "SECRET_KEY": SECRET_KEY, "CONTENT_DIR": str(content_dir)}
    app = create_app(config)
    assert app.config["SPOOL_PATH"] == str(Path(app.instance_path).resolve() / "spool.jsonl")
    assert (app.config["SPOOL_RETRY_SECONDS"], app.config["SQLITE_BUSY_TIMEOUT_MS"]) == (30, 5000)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEADGATE_SPOOL_PATH", "var/spool.jsonl")
    monkeypatch.setenv("LEADGATE_SPOOL_RETRY_SECONDS", "2.5")
    monkeypatch.setenv("LEADGATE_SQLITE_BUSY_TIMEOUT_MS", "250")
    app = create_app(config)
    assert app.config["SPOOL_PATH"] == str(tmp_path / "var" / "spool.jsonl")
    assert (app.config["SPOOL_RETRY_SECONDS"], app.config["SQLITE_BUSY_TIMEOUT_MS"]) == (2.5, 250)
    assert get_store(app).sqlite_busy_timeout_ms == 250


def test_database_errors_carry_no_visitor_data(spooling, database_url, form_post, spool_path, caplog):
    """What the database says reaches logs and error pages; what a visitor typed must not."""
    drop_every_table(database_url)
    app = spooling()
    with caplog.at_level("DEBUG"):
        answer = app.test_client().post("/submit", data=form_post(email="private.person@example.com"))
    assert answer.status_code == 303
    submission = decode(spool_path.read_bytes().splitlines(keepends=True)[0])
    with pytest.raises(SQLAlchemyError) as failure:
        record_submission(get_store(app), submission)
    assert "private.person" not in str(failure.value) + caplog.text
    assert submission.email == "private.person@example.com"
