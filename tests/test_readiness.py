"""/healthz says the process answers; /readyz says the database is there and has our schema."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from capture import create_app
from capture.db import migrate
from capture.db.engine import create_store_engine
from capture.db.store import get_store
from live import BIN, ChildServer, free_port

#: A spool on a read-only file system (sysfs): refused even to root, as a read-only
#: instance folder or mount would be.
UNWRITABLE = "/sys/leadgate-spool.jsonl"


def probe(content_dir, url: str, spool_path: str = UNWRITABLE) -> tuple[int, dict, int]:
    """(/readyz status, its JSON, /healthz status) of a fresh service on the database at url,
    its spool unwritable unless spool_path says otherwise."""
    app = create_app({"TESTING": True, "SECRET_KEY": "k" * 32, "CONTENT_DIR": str(content_dir),
                      "DATABASE_URL": url, "SPOOL_PATH": spool_path})
    try:
        client = app.test_client()
        ready = client.get("/readyz")
        return ready.status_code, ready.get_json(), client.get("/healthz").status_code
    finally:
        get_store(app).dispose()


def test_ready_when_the_database_has_the_newest_schema(client):
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"ok": True, "database": "ok", "spool": "ok"})
    assert response.headers["Cache-Control"] == "no-store"


def test_not_ready_until_the_database_is_migrated(content_dir, empty_database_url, tmp_path):
    spool = str(tmp_path / "spool.jsonl")
    assert probe(content_dir, empty_database_url, spool) == (
        503, {"ok": False, "database": "database has no tables yet: run `leadgate db upgrade`",
              "spool": "ok"}, 200)
    migrate.upgrade(empty_database_url)
    assert probe(content_dir, empty_database_url, spool)[:2] == (
        200, {"ok": True, "database": "ok", "spool": "ok"})


def test_not_ready_on_a_schema_of_another_version(content_dir, database_url):
    engine = create_store_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    finally:
        engine.dispose()
    assert probe(content_dir, database_url)[:2] == (503, {"ok": False, "database": (
        f"database schema is at revision ffff; this version of Leadgate needs {migrate.head()}"),
        "spool": "spool cannot be written: Permission denied"})


@pytest.mark.parametrize("url", [
    "sqlite:////nonexistent-folder/leadgate.db",
    "postgresql+psycopg://postgres@127.0.0.1:9/test",
], ids=["sqlite", "postgresql"])
def test_not_ready_when_the_database_cannot_be_reached_nor_the_spool_written(content_dir, url, caplog):
    assert probe(content_dir, url) == (503, {"ok": False, "database": "database unreachable",
                                             "spool": "spool cannot be written: Permission denied"}, 200)
    assert "database unreachable" in caplog.text


@pytest.mark.parametrize("url", [
    "sqlite:////nonexistent-folder/leadgate.db",
    "postgresql+psycopg://postgres@127.0.0.1:9/test",
], ids=["sqlite", "postgresql"])
def test_ready_on_an_unreachable_database_while_the_spool_keeps_the_posts(content_dir, url, tmp_path):
    assert probe(content_dir, url, str(tmp_path / "spool.jsonl"))[:2] == (
        200, {"ok": True, "database": "database unreachable", "spool": "ok"})


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "status"), [(None, 200), ("false", 503)],
                         ids=["auto-upgrade", "no-auto-upgrade"])
def test_serve_migrates_before_its_workers_start(tmp_path, empty_database_url, setting, status):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>site</h1>", encoding="utf-8")
    port = free_port()
    env = {"LEADGATE_DATABASE_URL": empty_database_url, "LEADGATE_SECRET_KEY": "k" * 32,
           "LEADGATE_BASE_URL": f"http://127.0.0.1:{port}/",
           "LEADGATE_INSTANCE_PATH": str(tmp_path / "instance")}
    if setting is not None:
        env["LEADGATE_AUTO_UPGRADE"] = setting
    argv = [str(BIN / "leadgate"), "serve", "--no-build", "--site-dir", str(site),
            "--port", str(port), "--workers", "2"]
    with ChildServer(argv, port, tmp_path / "serve.log", env) as server:
        try:
            with urllib.request.urlopen(f"{server.url}/readyz", timeout=10) as response:
                answer = response.status
        except urllib.error.HTTPError as e:
            answer = e.code
    assert answer == status, server.log()
    assert ("Database schema at revision" in server.log()) is (status == 200)
