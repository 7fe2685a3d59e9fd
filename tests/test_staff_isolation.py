"""Staff exports never take the visitors' capacity: slots, refusals, release, priority, bytes."""

from __future__ import annotations

import http.client
import importlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from flask import Flask
from sqlalchemy import create_engine, insert

from capture.catalog import ConsentText, load_catalog
from capture.config import ConfigError
from capture.db.models import Lead
from capture.leads.submission import NewSubmission, record_submission
from capture.staff import exports, slots
from live import ROOT, LiveServer
from staff import signed_in
from test_api_export import TOKEN, create_token

TERMS = ConsentText("terms", "terms-2026-11", "I agree that my details are stored.")
MARKETING = ConsentText("marketing", "marketing-2026-11", "Send me news.")
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
BUSY = ("2 exports are already being downloaded, the most this service streams at once so that "
        "visitors are never kept waiting. Nothing was exported; try again in 30 seconds.")


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_app) -> Iterator[Path]:
    """An instance folder of the test's own, where the slot files live. Before the apps'
    databases are closed, every export's thread has ended (its slot is free)."""
    folder = tmp_path / "instance"
    monkeypatch.setenv("LEADGATE_INSTANCE_PATH", str(folder))
    yield folder
    count = len(list(folder.glob("export-slot-*.lock")))
    assert wait_for_free_slots(folder, count) == count, "an export's thread never ended"


@pytest.fixture
def app(make_app, instance):
    return make_app()


@pytest.fixture
def leads(store) -> None:
    for n, company in enumerate(("Acme", "=HYPERLINK(1)", 'Globex, "The" Corp', "-minus Ltd")):
        record_submission(store, NewSubmission(
            email=f"lead{n}@example.com", terms=TERMS, marketing=MARKETING, resource_id="leads-vs-prospects",
            company=company, marketing_opt_in=n % 2 == 0, created_at=T0 + timedelta(days=n)))


def api(client, token: str, **kwargs):
    return client.get("/api/leads.csv", headers={"Authorization": f"Bearer {token}"}, **kwargs)


def free_slots(instance: Path, count: int) -> int:
    """How many of ``count`` slots could be taken now (all given back at once)."""
    taken = []
    while (slot := slots.take_slot(instance, count)) is not None:
        taken.append(slot)
    for slot in taken:
        slot.release()
    return len(taken)


def wait_for_free_slots(instance: Path, count: int, expected: int | None = None, timeout: float = 5) -> int:
    """Free slots once ``expected`` (all by default) are free, or after ``timeout``: the
    thread making an export's rows lets go of its slot a moment after the response closes."""
    expected = count if expected is None else expected
    deadline = time.monotonic() + timeout
    while (free := free_slots(instance, count)) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return free


# --- The limit, as staff meet it -------------------------------------------------------------

def test_the_export_beyond_the_slots_is_refused_with_503_and_retry_after(client, runner, instance, leads):
    token = create_token(runner)
    held = [api(client, token, buffered=False), api(client, token, buffered=False)]
    assert [r.status_code for r in held] == [200, 200]

    refused = api(client, token)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "30"
    assert "Content-Disposition" not in refused.headers
    assert refused.get_json() == {"ok": False, "title": "Too many exports at once", "error": BUSY}

    # The workspace's Download CSV, in the workspace's layout.
    staff = client.application.test_client()
    signed_in(staff, runner, email="rep@example.com")
    page = staff.get("/workspace/leads.csv")
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "30"
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.get_data(as_text=True)
    assert "Too many exports at once" in html and "try again in 30 seconds" in html
    assert "Back to the leads" in html

    held[0].close()  # one download ends: the next may start
    assert wait_for_free_slots(instance, 2, expected=1) == 1
    again = api(client, token)
    assert again.status_code == 200 and again.data.count(b"@example.com") == 4
    again.close()
    held[1].close()
    assert wait_for_free_slots(instance, 2) == 2


def test_one_slot_speaks_of_one_export(make_app, instance, leads):
    app = make_app(EXPORT_SLOTS=1)
    client = app.test_client()
    token = create_token(app.test_cli_runner())
    held = api(client, token, buffered=False)
    refused = api(client, token)
    assert (refused.status_code, refused.get_json()["error"].split(",")[0]) == (
        503, "An export is already being downloaded")
    held.close()


def test_without_slots_there_is_no_limit(make_app, instance, leads):
    app = make_app(EXPORT_SLOTS=0)
    client = app.test_client()
    token = create_token(app.test_cli_runner())
    taken = [slots.take_slot(instance, 2) for _ in range(2)]  # as if two exports held the slots
    response = api(client, token)
    assert response.status_code == 200 and response.data.count(b"@example.com") == 4
    for slot in taken:
        slot.release()


def test_exports_stream_the_same_bytes_with_and_without_slots(make_app, instance, leads):
    bodies = []
    for count in (2, 0):
        app = make_app(EXPORT_SLOTS=count)
        client = app.test_client()
        token = create_token(app.test_cli_runner(), email=f"sales{count}@example.com")
        for query in ("", "?columns=all", "?format=jsonl", "?excel=yes"):
            response = client.get(f"/api/leads.csv{query}", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
            bodies.append((query, response.headers["Content-Type"], response.data))
    with_slots, without = bodies[:4], bodies[4:]
    assert with_slots == without
    csv_text = with_slots[0][2].decode()
    assert "'=HYPERLINK(1)" in csv_text and "'-minus Ltd" in csv_text  # still formula-safe
    assert '"Globex, ""The"" Corp"' in csv_text


def test_an_export_still_streams_block_by_block(client, runner, instance, monkeypatch):
    made = []

    def blocks(*args, **kwargs):
        for n in range(10):
            made.append(n)
            yield f"block {n}\n".encode()

    monkeypatch.setattr(exports, "iter_export", blocks)
    token = create_token(runner)
    response = api(client, token, buffered=False)
    body = iter(response.response)
    assert next(body) == b"block 0\n"
    # The maker runs at most a few blocks ahead of the reader: memory stays flat.
    time.sleep(0.2)
    assert len(made) <= slots.AHEAD + 2
    assert b"".join(body) == b"".join(f"block {n}\n".encode() for n in range(1, 10))
    response.close()


# --- Slots come back -------------------------------------------------------------------------

def test_a_slot_comes_back_when_the_reader_goes_away_mid_stream(client, runner, instance, monkeypatch):
    closed = threading.Event()

    def endless(*args, **kwargs):
        try:
            while True:
                yield b"lead@example.com,Ann\r\n" * 1000
        finally:
            closed.set()  # the rows' generator, and its database connection, are ended

    monkeypatch.setattr(exports, "iter_export", endless)
    token = create_token(runner)
    response = api(client, token, buffered=False)
    body = iter(response.response)
    next(body), next(body)
    assert free_slots(instance, 2) == 1
    response.close()  # what the server does when the client disconnects
    assert closed.wait(5)
    assert wait_for_free_slots(instance, 2) == 2


def test_a_slot_comes_back_when_the_export_fails(client, runner, instance, monkeypatch, caplog):
    def failing(*args, **kwargs):
        yield b"email\r\n"
        raise RuntimeError("the database went away")

    monkeypatch.setattr(exports, "iter_export", failing)
    token = create_token(runner)
    response = api(client, token, buffered=False)
    body = iter(response.response)
    assert next(body) == b"email\r\n"
    with pytest.raises(RuntimeError, match="the database went away"):
        next(body)  # the stream is cut short, as the server sees it
    response.close()
    assert wait_for_free_slots(instance, 2) == 2
    assert "export failed after it started streaming" in caplog.text


def test_a_slot_comes_back_when_the_export_is_never_read(client, runner, instance, leads):
    token = create_token(runner)
    response = api(client, token, buffered=False)
    assert free_slots(instance, 2) == 1
    response.close()  # e.g. the client hung up before reading
    assert wait_for_free_slots(instance, 2) == 2


def test_slots_are_shared_by_every_process_of_a_host(instance):
    held = slots.take_slot(instance, 1)
    # Another worker: a process of its own, on the same folder.
    code = ("import sys; from capture.staff.slots import take_slot; "
            "print(take_slot(sys.argv[1], 1) is None)")
    answer = subprocess.run([sys.executable, "-c", code, str(instance)], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()
    assert answer == "True"
    held.release()
    held.release()  # twice is harmless
    assert free_slots(instance, 1) == 1


# --- Priority and gunicorn's heartbeat ------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux keeps a nice value per thread")
def test_rows_are_made_at_a_lower_priority_and_the_worker_keeps_its_own(client, runner, instance, monkeypatch):
    seen = []

    def blocks(*args, **kwargs):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        yield b"email\r\n"

    monkeypatch.setattr(exports, "iter_export", blocks)
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    token = create_token(runner)
    assert api(client, token).data == b"email\r\n"
    assert seen == [min(19, own + 10)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own


def test_each_block_tells_gunicorn_the_worker_is_alive(app, client, runner, instance, leads):
    beats = []
    slots.set_heartbeat(app, lambda: beats.append(1))
    token = create_token(runner)
    body = api(client, token, query_string={"columns": "email"}).data
    assert body.count(b"@example.com") == 4
    assert len(beats) == 2  # the header line, then one block of leads


# --- Settings --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value", "message"), [
    ("EXPORT_SLOTS", "-1", "LEADGATE_EXPORT_SLOTS must be 0 (no limit) to 16 exports at once, not -1."),
    ("EXPORT_SLOTS", "17", "LEADGATE_EXPORT_SLOTS must be 0 (no limit) to 16 exports at once, not 17."),
    ("EXPORT_SLOTS", "two", "LEADGATE_EXPORT_SLOTS must be a whole number, not 'two'."),
    ("EXPORT_NICENESS", "20", "LEADGATE_EXPORT_NICENESS must be 0 (the visitors' priority) to 19, not 20."),
    ("EXPORT_NICENESS", "-5", "LEADGATE_EXPORT_NICENESS must be 0 (the visitors' priority) to 19, not -5."),
])
def test_bad_export_settings_name_the_variable(make_app, monkeypatch, name, value, message):
    monkeypatch.setenv(f"LEADGATE_{name}", value)
    with pytest.raises(ConfigError) as e:
        make_app()
    assert str(e.value) == message


@pytest.mark.parametrize(("env", "workers"), [
    ({}, 4), ({"WEB_CONCURRENCY": "3"}, 5), ({"LEADGATE_EXPORT_SLOTS": "1"}, 3),
    ({"LEADGATE_EXPORT_SLOTS": "0", "WEB_CONCURRENCY": "2"}, 2),
])
def test_gunicorn_runs_the_visitors_workers_plus_one_per_export_slot(monkeypatch, env, workers):
    for name in ("WEB_CONCURRENCY", "LEADGATE_EXPORT_SLOTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    import capture.gunicorn_conf as conf

    assert importlib.reload(conf).workers == workers


def test_each_worker_of_the_service_reports_exports_to_gunicorn_and_other_apps_are_left_alone(make_app):
    import capture.gunicorn_conf as conf

    app = make_app(SCORE_REFRESH_SECONDS=0)
    beats = []
    conf.post_worker_init(SimpleNamespace(wsgi=app, notify=lambda: beats.append(1)))
    app.extensions[slots.HEARTBEAT]()
    assert beats == [1]
    other = Flask("baseline_app")  # benchmarks/run.py serves its baseline with these settings
    conf.post_worker_init(SimpleNamespace(wsgi=other, notify=lambda: None))
    assert other.extensions == {}


# --- The real server ---------------------------------------------------------------------------

def bulk_leads(url: str, count: int) -> None:
    """Enough leads that an export outlasts the socket buffers (about 20 MB of CSV)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Lead), [
            {"email": f"lead{n}@example.com", "email_key": f"lead{n}@example.com", "first_name": "Ann",
             "last_name": "Lee", "company": "Acme Analytics " * 8, "job_title": "Head of Growth",
             "first_seen": T0, "last_seen": T0} for n in range(count)])
    engine.dispose()


@pytest.mark.slow  # gunicorn in a child process
def test_with_every_slot_streaming_visitors_are_served_and_staff_told_to_wait(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>Home</title>", encoding="utf-8")
    with LiveServer(tmp_path, site_dir=site, build=False, workers=1,
                    settings={"LEADGATE_EXPORT_SLOTS": "1", "LEADGATE_SCORE_REFRESH_SECONDS": "0"}) as server:
        bulk_leads(server.database_url, 60_000)
        env = {**server.env}
        leadgate = server.leadgate
        subprocess.run([leadgate, "user", "add", "sam@example.com", "--role", "sales", "--password-stdin"],
                       input="correct horse battery\n", env=env, cwd=ROOT, check=True, capture_output=True,
                       text=True, timeout=60)
        out = subprocess.run([leadgate, "token", "create", "sam@example.com"], env=env, cwd=ROOT,
                             check=True, capture_output=True, text=True, timeout=60).stdout
        auth = {"Authorization": f"Bearer {TOKEN.search(out).group(0)}"}

        def export() -> http.client.HTTPResponse:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", "/api/leads.csv", headers=auth)
            return conn.getresponse()

        # A script starts a full export and reads slowly: it holds the one slot.
        first = export()
        assert first.status == 200
        assert first.read(64 * 1024).startswith(b"email,")

        # Another export is told to come back, at once and before any byte of CSV.
        second = export()
        assert (second.status, second.getheader("Retry-After")) == (503, "30")
        assert b"Too many exports at once" in second.read()

        # A visitor's form post and the health check are answered meanwhile.
        catalog = load_catalog(ROOT / "content")
        resource = next(iter(catalog))
        form = urlencode({"email": "visitor@example.com", "terms": "accepted", "resource_id": resource.id,
                          "terms_sha256": resource.terms.sha256,
                          "marketing_sha256": catalog.settings.marketing.sha256}).encode()
        started = time.monotonic()
        post = urllib.request.Request(f"{server.url}/submit", data=form, headers={
            "Origin": server.url, "Accept": "application/json"})
        with urllib.request.urlopen(post, timeout=10) as answer:
            assert answer.status == 201
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as answer:
            assert answer.status == 200
        assert time.monotonic() - started < 5

        # The script hangs up halfway: the slot comes back and the next export runs to the end.
        first.close()
        deadline = time.monotonic() + 10
        while (third := export()).status == 503 and time.monotonic() < deadline:
            third.read()
            time.sleep(0.2)
        assert third.status == 200
        body = third.read()
        assert body.count(b"\nlead") == 60_000 and body.count(b"\nvisitor@example.com") == 1
        log = server.log()
    assert "WORKER TIMEOUT" not in log and "Traceback" not in log
