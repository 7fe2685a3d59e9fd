"""Failed sign-ins and API tokens are limited across workers and hosts, however the address is typed.

The attacks of issue 11: with counts in each worker's memory, two workers allowed 10 password
checks a minute on one account; the limit was keyed by the typed text, so full-width spellings
got 30; after a lock-out the right password still worked on the other worker. The live tests
run two service processes (each with two gunicorn workers) on one database, with the counts in
the database (no Redis, the default) and in Redis.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from live import ROOT, LiveServer, PostgresUnavailable, postgres_database
from sqlalchemy import select
from staff import EMAIL, PASSWORD, add_user, sign_in

from capture.config import ConfigError
from capture.db.models import RateCount

REDIS = "redis://127.0.0.1:6379"
WRONG = "wrong password!"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TOKEN = re.compile(r"lg_[A-Za-z0-9_-]+")
FULL_WIDTH = "ｓａｍ．ｓａｌｅｓ＠ｅｘａｍｐｌｅ．ｃｏｍ"  # EMAIL in full-width letters


def redis_reachable() -> None:
    """Redis on 127.0.0.1:6379, else skip (or fail when CI=true: CI has one)."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError as e:
        message = f"no Redis on 127.0.0.1:6379 ({e})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true needs it", pytrace=False)
        pytest.skip(message)


@pytest.fixture(params=["database", "redis"])
def counted_in(request) -> dict[str, str]:
    """Settings that keep the counts in the database (the default) or in Redis, under a key
    prefix of this test alone (Redis is shared by other runs)."""
    if request.param == "database":
        return {}
    redis_reachable()
    return {"RATELIMIT_STORAGE_URI": REDIS, "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}"}


@pytest.fixture
def workers(make_app, counted_in):
    """Two apps on one database and one count store: two workers, in this process."""
    return [make_app(**counted_in) for _ in range(2)]


def page(response) -> str:
    return response.get_data(as_text=True)


# --- One count for every spelling, every worker --------------------------------------------------

def test_the_lock_out_holds_on_every_worker_with_the_right_password(workers):
    add_user(workers[0].test_cli_runner())
    browsers = [worker.test_client() for worker in workers]
    for n in range(5):
        assert sign_in(browsers[n % 2], password=WRONG).status_code == 422
    for browser in browsers:
        locked = sign_in(browser)
        assert locked.status_code == 429
        assert "Too many failed sign-ins from your network address." in page(locked)
        assert 0 < int(locked.headers["Retry-After"]) <= 60
        assert browser.get("/workspace/").status_code == 302  # not signed in


@pytest.mark.parametrize("spellings", [
    [FULL_WIDTH, EMAIL.upper(), "Sam.Sales@Example.COM", f"  {EMAIL}  ", FULL_WIDTH.upper()],
])
def test_every_spelling_of_an_address_counts_against_its_account(workers, spellings):
    add_user(workers[0].test_cli_runner())
    browsers = [worker.test_client() for worker in workers]
    for n, spelling in enumerate(spellings):
        assert sign_in(browsers[n % 2], spelling, WRONG).status_code == 422
    assert sign_in(browsers[0], EMAIL).status_code == 429
    assert sign_in(browsers[1], FULL_WIDTH).status_code == 429
    # Another account from the same client still gets its own tries.
    add_user(workers[0].test_cli_runner(), "mia@example.com")
    assert sign_in(browsers[1], "mia@example.com").status_code == 303


def test_another_client_is_not_locked_out_by_an_attacker(workers):
    add_user(workers[0].test_cli_runner())
    attacker, owner = workers[0].test_client(), workers[1].test_client()
    for _ in range(6):
        sign_in(attacker, password=WRONG, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert sign_in(attacker, environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 429
    assert sign_in(owner, environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 303


def test_one_client_is_stopped_after_twenty_failures_whatever_the_accounts(workers):
    add_user(workers[0].test_cli_runner())
    browsers = [worker.test_client() for worker in workers]
    for n in range(20):
        assert sign_in(browsers[n % 2], f"guess{n}@example.com", WRONG).status_code == 422
    assert sign_in(browsers[0]).status_code == 429
    assert sign_in(browsers[1], "another@example.com", WRONG).status_code == 429


def test_an_ipv6_client_is_its_64_network(workers):
    """One machine has a whole /64: changing the last bits is not a new client."""
    add_user(workers[0].test_cli_runner())
    browser = workers[0].test_client()
    for n in range(5):
        assert sign_in(browser, password=WRONG, environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{n + 1}"}
                       ).status_code == 422
    assert sign_in(browser, environ_base={"REMOTE_ADDR": "2001:db8:1:2:ffff::9"}).status_code == 429
    assert sign_in(browser, environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"}).status_code == 303


def test_signing_in_gives_its_count_back(workers):
    add_user(workers[0].test_cli_runner())
    browser = workers[0].test_client()
    for _ in range(4):
        assert sign_in(browser, password=WRONG).status_code == 422
    for _ in range(3):  # signing in uses no try, and gives none back either
        assert sign_in(workers[1].test_client()).status_code == 303
    assert sign_in(browser, password=WRONG).status_code == 422
    assert sign_in(browser).status_code == 429


# --- Failed API tokens -----------------------------------------------------------------------------

def create_token(runner) -> str:
    result = runner.invoke(args=["token", "create", EMAIL])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_failed_api_tokens_are_throttled_per_client(workers):
    runner = workers[0].test_cli_runner()
    add_user(runner)
    token = create_token(runner)
    scripts = [worker.test_client() for worker in workers]
    assert scripts[0].get("/api/leads.csv", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    for n in range(10):
        guess = scripts[n % 2].get("/api/leads.csv", headers={"Authorization": f"Bearer lg_guess{n}"})
        assert guess.status_code == 401
    throttled = scripts[1].get("/api/leads.csv", headers={"Authorization": f"Bearer {token}"})
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["Retry-After"]) <= 60
    assert throttled.get_json()["ok"] is False
    assert "Too many requests with API tokens that are not valid" in throttled.get_json()["error"]
    elsewhere = scripts[0].get("/api/leads.csv", headers={"Authorization": f"Bearer {token}"},
                               environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert elsewhere.status_code == 200


def test_requests_without_a_token_use_no_tries(workers):
    runner = workers[0].test_cli_runner()
    add_user(runner)
    token = create_token(runner)
    script = workers[0].test_client()
    for _ in range(15):
        assert script.get("/api/leads.csv").status_code == 401
    assert script.get("/api/leads.csv", headers={"Authorization": f"Bearer {token}"}).status_code == 200


# --- The database's counts -------------------------------------------------------------------------

def test_the_database_counts_hold_no_address_and_end_with_their_window(client, runner, store):
    add_user(runner)
    for _ in range(5):
        sign_in(client, password=WRONG)
    assert sign_in(client).status_code == 429
    with store.read() as s:
        counts = list(s.scalars(select(RateCount)))
    assert sorted(row.count for row in counts) == [6, 6]  # per account and client, per client
    assert not any("@" in row.key or "sam" in row.key or "127.0.0.1" in row.key for row in counts)
    with store.write() as s:
        for row in s.scalars(select(RateCount)):
            row.expires_at -= timedelta(seconds=61)
    assert sign_in(client).status_code == 303  # the minute is over


def test_counts_that_cannot_be_reached_refuse_sign_in(make_app):
    """Redis down: sign-in and the API refuse (503) rather than count nothing."""
    app = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:9")
    add_user(app.test_cli_runner())
    refused = sign_in(app.test_client())
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "60"
    assert "Sign-in is not possible just now" in page(refused)
    api = app.test_client().get("/api/leads.csv", headers={"Authorization": "Bearer lg_x"})
    assert api.status_code == 503


def test_a_count_store_that_cannot_work_stops_the_service_at_start(make_app):
    with pytest.raises(ConfigError, match="LEADGATE_RATELIMIT_STORAGE_URI 'redis-ish://x' cannot be used"):
        make_app(RATELIMIT_STORAGE_URI="redis-ish://x")


# --- Two real service processes ----------------------------------------------------------------------

class Browser:
    """A browser without JavaScript: one cookie, sent to every server on 127.0.0.1."""

    def __init__(self) -> None:
        self.cookie = ""

    def send(self, server: LiveServer, method: str, path: str, form: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        sent = {**(headers or {}), **({"Cookie": self.cookie} if self.cookie else {})}
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode()
            got = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        if "set-cookie" in got:
            self.cookie = got["set-cookie"].split(";", 1)[0]
        return response.status, got, text

    def sign_in(self, server: LiveServer, email: str, password: str) -> tuple[int, dict[str, str], str]:
        _, _, form = self.send(server, "GET", "/workspace/login")
        token = CSRF.search(form).group(1)
        return self.send(server, "POST", "/workspace/login",
                         {"email": email, "password": password, "csrf_token": token})


def two_servers(tmp_path: Path, database_url: str | None, settings: dict[str, str]):
    """Two `leadgate serve` processes, two workers each, on one database and one count store."""
    site = tmp_path / "site"
    for folder in (site, tmp_path / "a", tmp_path / "b"):
        folder.mkdir()
    (site / "index.html").write_text("<!doctype html><title>Home</title>", encoding="utf-8")
    env = {"LEADGATE_SCORE_REFRESH_SECONDS": "0", "LEADGATE_SPOOL_RETRY_SECONDS": "0",
           **{f"LEADGATE_{k}": v for k, v in settings.items()}}
    first = LiveServer(tmp_path / "a", database_url or f"sqlite:///{tmp_path / 'live.db'}",
                       site_dir=site, build=False, settings=env)
    return first, lambda: LiveServer(tmp_path / "b", first.database_url, site_dir=site, build=False,
                                     settings=env)


def leadgate(server: LiveServer, *args: str, stdin: str = "") -> str:
    return subprocess.run([server.leadgate, *args], input=stdin, env=server.env, cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=60).stdout


def attack(servers: list[LiveServer]) -> None:
    """Issue 11's attacks on two service processes; every check holds on both."""
    leadgate(servers[0], "user", "add", EMAIL, "--role", "sales", "--password-stdin", stdin=PASSWORD + "\n")
    leadgate(servers[0], "user", "add", "ann@example.com", "--role", "sales", "--password-stdin",
             stdin=PASSWORD + "\n")

    # Five wrong passwords, alternating servers and spellings: then even the right one is refused on both.
    browser = Browser()
    for n, spelling in enumerate([EMAIL, FULL_WIDTH, EMAIL.upper(), FULL_WIDTH, EMAIL]):
        status, _, _ = browser.sign_in(servers[n % 2], spelling, WRONG)
        assert status == 422, n
    for server in servers:
        status, headers, text = browser.sign_in(server, EMAIL, PASSWORD)
        assert status == 429
        assert 0 < int(headers["retry-after"]) <= 60
        assert "Too many failed sign-ins from your network address." in text

    # A burst on both servers at once checks no more passwords than the limit.
    burst = [Browser() for _ in range(12)]
    tokens = [CSRF.search(one.send(servers[n % 2], "GET", "/workspace/login")[2]).group(1)
              for n, one in enumerate(burst)]
    start = threading.Barrier(len(burst))
    statuses: list[int] = []

    def post(n: int) -> None:
        start.wait()
        status, _, _ = burst[n].send(servers[n % 2], "POST", "/workspace/login", {
            "email": "ANN@example.com", "password": WRONG, "csrf_token": tokens[n]})
        statuses.append(status)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(burst))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [422] * 5 + [429] * 7

    # Failed API tokens: ten, then every token is refused for the minute, on both servers.
    token = TOKEN.search(leadgate(servers[0], "token", "create", EMAIL)).group(0)
    script = Browser()
    for n in range(10):
        assert script.send(servers[n % 2], "GET", "/api/leads.csv",
                           headers={"Authorization": f"Bearer lg_guess{n}"})[0] == 401
    for server in servers:
        status, headers, _ = script.send(server, "GET", "/api/leads.csv",
                                         headers={"Authorization": f"Bearer {token}"})
        assert status == 429 and int(headers["retry-after"]) > 0


@pytest.mark.slow  # four gunicorn workers in two service processes
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_service_processes_share_the_database_counts(tmp_path, database):
    """No Redis configured (the default): the counts are the database's."""
    if database == "sqlite":
        run(tmp_path, None, {})
        return
    try:
        with postgres_database("leadgate_limits") as url:
            run(tmp_path, url, {})
    except PostgresUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{e}; CI=true needs it", pytrace=False)
        pytest.skip(str(e))


@pytest.mark.slow  # four gunicorn workers in two service processes
def test_two_service_processes_share_the_redis_counts(tmp_path):
    redis_reachable()
    run(tmp_path, None, {"RATELIMIT_STORAGE_URI": REDIS, "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}"})


def run(tmp_path: Path, database_url: str | None, settings: dict[str, str]) -> None:
    first, second = two_servers(tmp_path, database_url, settings)
    with first, second() as other:
        attack([first, other])
