"""The form's rate limits, tried as a script would: many posts from one address, one network,
for one email address in several spellings, behind a proxy or pretending to be, and against
two service processes sharing Redis.

A refused post gets 429 with Retry-After and a message (JSON for the page script, the site's
page for people) and leaves nothing behind: no lead, no held post, no spool line.
"""

from __future__ import annotations

import http.client
import json
import os
import uuid
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from capture.catalog import load_catalog
from capture.config import ConfigError
from capture.db.models import HeldPost, Lead, Submission
from capture.db.store import Store
from live import ROOT, LiveServer

JSON = {"Accept": "application/json"}
REDIS_URL = "redis://127.0.0.1:6379"


def post(client, form_post, address: str = "203.0.113.5", headers: dict | None = None, **fields):
    return client.post("/submit", data=form_post(**fields), headers=headers or {},
                       environ_base={"REMOTE_ADDR": address, "HTTP_ORIGIN": "https://site.example.com"})


def stored(store) -> tuple[int, int, int]:
    """Leads, submissions and held posts in the database."""
    with store.read() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Lead, Submission, HeldPost))


def spool_lines(app) -> int:
    path = app.config["SPOOL_PATH"]
    return sum(1 for _ in open(path)) if os.path.exists(path) else 0


def test_an_address_over_its_limit_gets_429_with_retry_after_and_nothing_is_stored(make_app, store, form_post):
    app = make_app(RATE_LIMIT="3/minute;100/hour", FORM_MIN_SECONDS=0)
    client = app.test_client()
    for n in range(3):  # people with the page script: tokens, so that each post is a lead
        token = client.get("/form-token").get_json()["token"]
        assert post(client, form_post, email=f"p{n}@example.com", form_token=token).status_code == 303

    refused = post(client, form_post, email="p3@example.com", headers=JSON)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    body = refused.get_json()
    assert body["ok"] is False and body["title"] == "Too many requests"
    assert body["error"].startswith("Too many requests from your network address. Wait ")
    assert body["error"].endswith("then send the form again; nothing was stored.")
    assert refused.headers["Access-Control-Allow-Origin"] == "https://site.example.com"

    page = post(client, form_post, email="p4@example.com")
    assert page.status_code == 429 and 1 <= int(page.headers["Retry-After"]) <= 60
    html = page.get_data(as_text=True)
    assert page.mimetype == "text/html" and "Too many requests from your network address" in html
    assert "sign-in" not in html.lower()  # not the workspace's refusal
    assert stored(store) == (3, 3, 0) and spool_lines(app) == 0

    elsewhere = post(client, form_post, address="198.51.100.7", email="p5@example.com")
    assert elsewhere.status_code == 303  # another address still gets through


def test_posts_to_fix_count_and_a_flood_is_refused_before_its_body_is_read(make_app, form_post):
    client = make_app(RATE_LIMIT="2/minute").test_client()
    assert post(client, form_post, email="").status_code == 422
    assert post(client, form_post, email="").status_code == 422
    assert post(client, form_post, email="").status_code == 429  # posts to fix count too
    # From now on nothing of this address's posts is read: one too large to read is refused alike.
    huge = {"email": "x" * 100_000}
    flood = client.post("/submit", data=huge, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert flood.status_code == 429 and int(flood.headers["Retry-After"]) >= 1
    assert client.post("/submit", data=huge, environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 413


@pytest.mark.parametrize("first, second, other", [
    ("203.0.113.5", "203.0.113.77", "203.0.114.5"),
    ("2001:db8:1:1::1", "2001:db8:1:ffff::2", "2001:db8:2::1"),
])
def test_a_network_shares_one_limit(make_app, store, form_post, first, second, other):
    client = make_app(RATE_LIMIT="100/minute", RATE_LIMIT_NETWORK="2/minute").test_client()
    assert post(client, form_post, first, email="a@example.com").status_code == 303
    assert post(client, form_post, second, email="b@example.com").status_code == 303
    assert post(client, form_post, second, email="c@example.com").status_code == 429
    assert post(client, form_post, other, email="d@example.com").status_code == 303
    assert stored(store)[0] == 3


def test_spellings_of_one_email_address_share_its_limit(make_app, store, form_post):
    client = make_app(RATE_LIMIT_EMAIL="2/minute").test_client()
    assert post(client, form_post, "203.0.113.1", email="ann.lee@example.com").status_code == 303
    assert post(client, form_post, "198.51.100.2", email="ＡＮＮ.ＬＥＥ@example.com").status_code == 303
    refused = post(client, form_post, "192.0.2.3", email="Ann.Lee@EXAMPLE.com", headers=JSON)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.get_json()["error"].startswith("This email address has been sent too many times")
    assert post(client, form_post, "192.0.2.3", email="bob@example.com").status_code == 303
    assert stored(store)[1] == 3


def test_a_post_refused_for_its_email_keeps_its_token_unspent(make_app, store, form_post):
    """Sent again once the window is over, the same token is no replay."""
    app = make_app(RATE_LIMIT_EMAIL="1/minute", FORM_MIN_SECONDS=0)
    client = app.test_client()
    token = client.get("/form-token").get_json()["token"]
    assert post(client, form_post, email="ann@example.com").status_code == 303
    assert post(client, form_post, email="ann@example.com", form_token=token).status_code == 429
    limits = app.extensions["leadgate.form_limits"]
    limits.storage.reset()  # the minute is over
    assert post(client, form_post, email="ann@example.com", form_token=token).status_code == 303
    with store.read() as s:
        reasons = s.scalars(select(Submission.spam_reasons).order_by(Submission.id)).all()
    assert "token_replayed" not in reasons[-1] and reasons[-1] == ""


def test_off_turns_every_form_limit_off(make_app, store, form_post):
    client = make_app(RATE_LIMIT="off", RATE_LIMIT_NETWORK="1/hour", RATE_LIMIT_EMAIL="1/hour").test_client()
    for n in range(25):
        assert post(client, form_post, email="same@example.com").status_code == 303
    assert stored(store)[1] == 25


def test_x_forwarded_for_is_ignored_without_trusted_proxies(make_app, form_post):
    client = make_app(RATE_LIMIT="2/minute", RATE_LIMIT_NETWORK="off").test_client()
    answers = [post(client, form_post, headers={"X-Forwarded-For": f"198.51.{n}.1"},
                    email=f"p{n}@example.com").status_code for n in range(3)]
    assert answers == [303, 303, 429]  # one peer, however many addresses it claims


def test_x_forwarded_for_is_the_client_behind_one_trusted_proxy(make_app, store, form_post):
    client = make_app(RATE_LIMIT="2/minute", RATE_LIMIT_NETWORK="off", PROXY_FIX_X_FOR=1).test_client()
    proxy = "10.0.0.2"
    for visitor in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for n in range(2):
            assert post(client, form_post, proxy, headers={"X-Forwarded-For": visitor},
                        email=f"{n}.{visitor}@example.com").status_code == 303
    again = post(client, form_post, proxy, headers={"X-Forwarded-For": "198.51.100.1"}, email="x@example.com")
    assert again.status_code == 429
    # A client's own X-Forwarded-For comes first: only the proxy's last entry is believed.
    forged = post(client, form_post, proxy, headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.2"},
                  email="y@example.com")
    assert forged.status_code == 429
    with store.read() as s:
        assert set(s.scalars(select(Submission.ip_prefix)).all()) == {"198.51.100.0/24"}


@pytest.mark.parametrize("name, value", [
    ("RATE_LIMIT", "twenty a minute"), ("RATE_LIMIT_NETWORK", "60/fortnight"), ("RATE_LIMIT_EMAIL", ""),
])
def test_a_limit_that_is_not_a_limit_stops_the_service_naming_it(make_app, name, value):
    with pytest.raises(ConfigError, match=f"LEADGATE_{name}"):
        make_app(**{name: value})


# --- Two processes, one Redis -----------------------------------------------------------------

@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own on the machine's Redis (shared with other runs); its
    keys deleted after. Unreachable Redis skips, or fails when CI=true."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} cannot be reached ({e}); CI=true needs it", pytrace=False)
        pytest.skip(f"Redis at {REDIS_URL} cannot be reached ({e})")
    prefix = f"test-{uuid.uuid4().hex}"
    yield prefix
    for key in client.scan_iter(f"LIMITS:LIMITER/{prefix}/*"):
        client.delete(key)
    client.close()


def live_post(server: LiveServer, email: str) -> int:
    catalog = load_catalog(ROOT / "content")
    resource = next(iter(catalog.resources.values()))
    body = urlencode({"email": email, "terms": "accepted", "resource_id": resource.id,
                      "terms_sha256": resource.terms.sha256,
                      "marketing_sha256": catalog.settings.marketing.sha256})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/submit", body, {"Content-Type": "application/x-www-form-urlencoded",
                                               "Origin": server.url, "Accept": "application/json"})
        response = conn.getresponse()
        payload = json.loads(response.read())
        assert response.status != 429 or int(response.getheader("Retry-After")) >= 1
        assert response.status in (201, 429), payload
        return response.status
    finally:
        conn.close()


@pytest.mark.slow
def test_two_service_processes_share_the_limit_through_redis(tmp_path, redis_prefix):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>Home</title>", encoding="utf-8")
    settings = {"LEADGATE_RATELIMIT_STORAGE_URI": REDIS_URL, "LEADGATE_RATELIMIT_KEY_PREFIX": redis_prefix,
                "LEADGATE_RATE_LIMIT": "4/minute", "LEADGATE_RATE_LIMIT_NETWORK": "off"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with LiveServer(tmp_path / "a", site_dir=site, build=False, workers=1, settings=settings) as a, \
            LiveServer(tmp_path / "b", site_dir=site, build=False, workers=1, settings=settings) as b:
        answers = [live_post(server, f"p{n}@example.com") for n, server in enumerate([a, b] * 4)]
    assert answers == [201] * 4 + [429] * 4  # with memory:// each would have allowed 4
    # Kept: as leads, or held (no token, and most of the address's posts used: suspect).
    kept = 0
    for server in (a, b):
        store = Store(server.database_url)
        try:
            kept += sum(stored(store)[1:])
        finally:
            store.dispose()
    assert kept == 4


def test_an_address_near_its_limit_makes_its_posts_a_little_suspect(make_app, store, form_post):
    client = make_app(RATE_LIMIT="4/minute;100/hour", FORM_MIN_SECONDS=0).test_client()
    for n in range(3):
        token = client.get("/form-token").get_json()["token"]
        assert post(client, form_post, email=f"p{n}@example.com", form_token=token).status_code == 303
    with store.read() as s:
        reasons = s.scalars(select(Submission.spam_reasons).order_by(Submission.id)).all()
    assert reasons[:2] == ["", ""]
    assert json.loads(reasons[2]) == [["rate", 0.5, "Post 3 of the 4 allowed per minute from this "
                                                    "network address."]]


def test_a_rate_limit_storage_that_fails_never_loses_a_post(make_app, store, form_post, caplog):
    """Redis down: the posts are stored unlimited, and the log says so (once a minute)."""
    client = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:9", RATE_LIMIT="1/minute").test_client()
    for n in range(3):
        assert post(client, form_post, email=f"p{n}@example.com").status_code == 303
    assert stored(store)[1] == 3
    assert [r.message for r in caplog.records].count(
        "the rate-limit storage failed: form posts are not limited now") == 1


def test_two_processes_on_one_redis_count_an_email_address_together(make_app, store, form_post, redis_prefix):
    settings = {"RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": redis_prefix,
                "RATE_LIMIT_EMAIL": "2/minute"}
    first, second = make_app(**settings).test_client(), make_app(**settings).test_client()
    assert post(first, form_post, "203.0.113.1", email="ann@example.com").status_code == 303
    assert post(second, form_post, "198.51.100.2", email="Ann@example.com").status_code == 303
    assert post(second, form_post, "192.0.2.3", email="ＡＮＮ@example.com").status_code == 429
    assert stored(store)[1] == 2


def test_a_token_spent_on_one_process_is_replayed_on_another(make_app, store, form_post, redis_prefix):
    """Two apps on one Redis, as two workers: the second sees the first's spent token."""
    settings = {"RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": redis_prefix,
                "FORM_MIN_SECONDS": 0}
    first, second = make_app(**settings).test_client(), make_app(**settings).test_client()
    token = first.get("/form-token").get_json()["token"]
    assert post(first, form_post, email="ann@example.com", form_token=token).status_code == 303
    assert post(second, form_post, email="bob@example.com", form_token=token).status_code == 303
    assert stored(store) == (1, 1, 1)
    with store.read() as s:
        held = s.scalars(select(HeldPost)).one()
    assert held.email == "bob@example.com"
    assert [signal for signal, _, _ in json.loads(held.reasons)] == ["token_replayed"]
