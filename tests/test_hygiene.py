"""Request hygiene, attacked the way issue 11 found it broken: chunked bodies past the limit,
wrong content types, repeated fields, invalid UTF-8 and lone surrogates, a forged Host, GET on
the submit URL, HEAD on a download link, and readiness with nowhere to keep a post."""

from __future__ import annotations

import http.client
import io
import socket
import urllib.error
import urllib.parse
import urllib.request
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, make_url, select

from capture import create_app
from capture.catalog import load_catalog
from capture.config import ConfigError
from capture.db.models import Download, Lead, Submission
from capture.db.store import get_store
from leads import find_lead
from live import ROOT, LiveServer

SITE_ORIGIN = "https://site.example.com"
MIB = 1024 * 1024


def count(store, model) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def padded(form_post, size: int, **fields: str) -> bytes:
    """A valid post whose ``company`` field brings it to ``size`` bytes, with
    ``marketing_opt_in=yes`` last: past the cut, where Werkzeug silently dropped it."""
    head = urlencode({k: v for k, v in form_post(**fields).items()}).encode()
    tail = b"&marketing_opt_in=yes"
    filler = size - len(head) - len(tail) - len(b"&padding=")
    return head + b"&padding=" + b"x" * max(filler, 0) + tail


def chunked(body: bytes, size: int = 8192):
    for i in range(0, len(body), size):
        yield body[i:i + size]


# --- Bodies: the size limit holds for streamed bodies too -----------------------------------

@pytest.mark.parametrize("size", [MIB, 20 * MIB], ids=["1MiB", "20MiB"])
def test_chunked_post_past_the_limit_is_refused_and_nothing_is_stored(client, form_post, store, size):
    response = client.post("/submit", input_stream=io.BytesIO(padded(form_post, size)),
                           headers={"Transfer-Encoding": "chunked",
                                    "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert "more data than the service accepts" in response.get_data(as_text=True)
    assert count(store, Submission) == count(store, Lead) == 0


def test_chunked_post_within_the_limit_is_read_whole(client, form_post, store):
    # Under the limit with the opt-in at the very end: stored as yes, never cut to "no".
    body = padded(form_post, 60 * 1024)
    response = client.post("/submit", input_stream=io.BytesIO(body),
                           headers={"Transfer-Encoding": "chunked", "Accept": "application/json",
                                    "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 201, response.get_json()
    assert find_lead(store, "ann.lee@example.com").marketing_choice is True


def test_a_post_with_a_length_past_the_limit_is_refused(client, form_post, store):
    response = client.post("/submit", data=padded(form_post, 65 * 1024),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert count(store, Submission) == 0


# --- Content types, repeated fields, invalid text --------------------------------------------

@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_submit_refuses_what_is_not_a_form(client, form_post, store, content_type):
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/submit", data=urlencode(form_post()).encode(), headers=headers)
    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.get_json()["error"]
    assert count(store, Submission) == 0


def test_multipart_form_is_accepted(client, form_post, store):
    response = client.post("/submit", data=form_post(), content_type="multipart/form-data",
                           headers={"Accept": "application/json"})
    assert response.status_code == 201
    assert count(store, Lead) == 1


@pytest.mark.parametrize(("extra", "field"), [
    ("&email=mallory%40example.com", "email"),
    ("&terms=accepted", "terms"),
], ids=["two-emails", "two-terms"])
def test_a_field_sent_twice_is_refused_naming_it(client, form_post, store, extra, field):
    body = urlencode(form_post()) + extra
    response = client.post("/submit", data=body, content_type="application/x-www-form-urlencoded",
                           headers={"Accept": "application/json"})
    assert response.status_code == 400
    answer = response.get_json()
    assert list(answer["errors"]) == [field]
    assert "more than once" in answer["error"]
    assert count(store, Submission) == 0


def test_a_field_sent_twice_in_multipart_is_refused(client, form_post, store):
    data = {**form_post(), "email": ["ann.lee@example.com", "mallory@example.com"]}
    response = client.post("/submit", data=data, content_type="multipart/form-data",
                           headers={"Accept": "application/json"})
    assert (response.status_code, list(response.get_json()["errors"])) == (400, ["email"])


def with_raw(form_post, field: str, raw: bytes) -> bytes:
    """The post with one field's value replaced by raw (already encoded) bytes."""
    fields = form_post()
    fields.pop(field)
    return urlencode(fields).encode() + b"&" + field.encode() + b"=" + raw


@pytest.mark.parametrize(("field", "raw"), [
    ("first_name", b"a%ED%A0%80b"),        # an encoded lone surrogate (U+D800)
    ("email", b"a%FF%FEb%40example.com"),  # bytes that are not UTF-8
    ("company", b"Acme\xff"),              # a raw byte: the whole form used to read as empty
    ("job_title", b"%C0%AF"),              # an overlong encoding of "/"
], ids=["lone-surrogate", "ff-fe", "raw-ff", "overlong"])
def test_invalid_utf8_is_refused_naming_the_field(client, form_post, store, field, raw):
    response = client.post("/submit", data=with_raw(form_post, field, raw),
                           content_type="application/x-www-form-urlencoded",
                           headers={"Accept": "application/json"})
    assert response.status_code == 400
    answer = response.get_json()
    assert list(answer["errors"]) == [field]
    assert "not valid UTF-8" in answer["error"]
    assert count(store, Submission) == count(store, Lead) == 0


def test_a_real_replacement_character_in_a_urlencoded_post_is_stored(client, form_post, store):
    """U+FFFD is text like any other when it was sent as valid UTF-8 (%EF%BF%BD)."""
    response = client.post("/submit", data=with_raw(form_post, "company", b"Acme%EF%BF%BD"),
                           content_type="application/x-www-form-urlencoded",
                           headers={"Accept": "application/json"})
    assert response.status_code == 201, response.get_json()
    with store.read() as s:
        assert s.scalars(select(Lead.company)).one() == "Acme\ufffd"


def test_invalid_utf8_is_told_to_a_person_on_a_page(client, form_post, store):
    response = client.post("/submit", data=with_raw(form_post, "first_name", b"a%ED%A0%80b"),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "“First name” (first_name) holds bytes that are not valid UTF-8" in response.get_data(as_text=True)


def test_invalid_utf8_in_multipart_is_refused(client, form_post, store):
    boundary = "leadgateboundary"
    fields = form_post()
    fields.pop("first_name")
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="first_name"\r\n\r\n'.encode()
                 + b"a\xed\xa0\x80b\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    response = client.post("/submit", data=body, content_type=f"multipart/form-data; boundary={boundary}",
                           headers={"Accept": "application/json"})
    assert (response.status_code, list(response.get_json()["errors"])) == (400, ["first_name"])
    assert count(store, Submission) == 0


def test_valid_non_ascii_text_still_passes(client, form_post, store):
    response = client.post("/submit", data=form_post(first_name="Zoë", company="Ørsted 東京"),
                           headers={"Accept": "application/json"})
    assert response.status_code == 201
    lead = find_lead(store, "ann.lee@example.com")
    assert (lead.first_name, lead.company) == ("Zoë", "Ørsted 東京")


def test_workspace_posts_are_held_to_valid_utf8(client):
    response = client.post("/workspace/login", data=b"email=a%FF%40example.com&password=x",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "not valid UTF-8" in response.get_data(as_text=True)


# --- The submit URL takes POST ------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
@pytest.mark.parametrize("with_site", [False, True], ids=["no-site", "built-site"])
def test_submit_answers_other_methods_with_405(make_app, tmp_path, method, with_site):
    config = {}
    if with_site:
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "index.html").write_text("<h1>site</h1>", encoding="utf-8")
        config["SITE_DIR"] = str(tmp_path / "site")
    response = make_app(**config).test_client().open("/submit", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_cors_preflight_still_works(client):
    response = client.options("/submit", headers={"Origin": SITE_ORIGIN,
                                                  "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SITE_ORIGIN


# --- HEAD on a download link records nothing -------------------------------------------------

def test_head_on_a_download_link_records_nothing(client, form_post, store):
    answer = client.post("/submit", data=form_post(), headers={"Accept": "application/json"}).get_json()
    path = urllib.parse.urlsplit(answer["download_url"]).path
    head = client.head(path)
    head.close()
    assert head.status_code == 200
    assert head.headers["Content-Type"] == "application/pdf"
    assert head.headers["Cache-Control"] == "private, no-store"
    assert head.get_data() == b""
    assert count(store, Download) == 0
    got = client.get(path)
    got.close()
    assert got.status_code == 200
    assert count(store, Download) == 1


def test_head_on_a_forged_download_link_is_404(client):
    assert client.head("/download/not-a-token").status_code == 404


# --- Trusted hosts and links from BASE_URL ---------------------------------------------------

@pytest.mark.parametrize("origin", [None, "http://evil.example"], ids=["no-origin", "matching-origin"])
def test_a_forged_host_is_refused_and_never_linked(app, form_post, store, origin):
    client = app.test_client()
    headers = {"Host": "evil.example"}
    if origin:
        headers["Origin"] = origin
    response = client.post("/submit", data=form_post(), headers=headers)
    assert response.status_code == 400
    assert "evil.example" not in response.headers.get("Location", "")
    assert "evil.example" not in response.get_data(as_text=True)
    assert count(store, Submission) == 0


@pytest.mark.parametrize("path", ["/workspace/", "/workspace/login", "/thanks/x", "/nowhere", "/api/leads.csv"])
def test_the_refusal_of_a_forged_host_renders_everywhere(client, path):
    response = client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert "evil.example" not in response.get_data(as_text=True)
    assert "Content-Security-Policy" in response.headers


def test_links_start_with_base_url_whatever_the_host(make_app, form_post):
    client = make_app(BASE_URL="https://leads.example.com/").test_client()
    # 127.0.0.1 is trusted in test mode, but links still come from BASE_URL.
    response = client.post("/submit", data=form_post(), headers={"Host": "127.0.0.1:5000"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("https://leads.example.com/thanks/")
    answer = client.post("/submit", data=form_post(), headers={"Accept": "application/json"}).get_json()
    assert answer["thanks_url"].startswith("https://leads.example.com/thanks/")
    assert answer["download_url"].startswith("https://leads.example.com/download/")
    page = client.post("/submit", data=form_post(email="nope")).get_data(as_text=True)
    assert 'action="https://leads.example.com/submit"' in page


def test_base_url_under_a_path(make_app, form_post):
    client = make_app(BASE_URL="https://example.com/leads").test_client()
    answer = client.post("/submit", data=form_post(), headers={"Accept": "application/json"}).get_json()
    assert answer["thanks_url"].startswith("https://example.com/leads/thanks/")


def test_trusted_hosts_from_the_setting(make_app, form_post):
    app = make_app(BASE_URL="https://leads.example.com/", TRUSTED_HOSTS="www.example.com, leads.example.com")
    assert app.config["TRUSTED_HOSTS"] == ["www.example.com", "leads.example.com", "127.0.0.1", "localhost"]
    client = app.test_client()
    assert client.get("/healthz", headers={"Host": "www.example.com"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "leads.example.com:8443"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/healthz", headers={"Host": "www.example.com.evil.example"}).status_code == 400


def config(tmp_path, content_dir, **extra):
    return {"SECRET_KEY": "k" * 32, "CONTENT_DIR": str(content_dir),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", **extra}


def test_base_url_is_required_outside_demo_and_test_mode(tmp_path, content_dir):
    with pytest.raises(ConfigError) as e:
        create_app(config(tmp_path, content_dir))
    assert "LEADGATE_BASE_URL" in str(e.value) and "https://leads.example.com/" in str(e.value)


@pytest.mark.parametrize("value", ["leads.example.com", "ftp://leads.example.com/", "https://x.com/?a=1"])
def test_a_base_url_that_is_not_an_address_is_refused(tmp_path, content_dir, value):
    with pytest.raises(ConfigError, match="^LEADGATE_BASE_URL must be an http"):
        create_app(config(tmp_path, content_dir, BASE_URL=value))


def test_production_trusts_only_base_url_host(tmp_path, content_dir):
    app = create_app(config(tmp_path, content_dir, BASE_URL="https://leads.example.com"))
    try:
        assert app.config["BASE_URL"] == "https://leads.example.com/"
        assert app.config["TRUSTED_HOSTS"] == ["leads.example.com"]
        assert app.test_client().get("/healthz", headers={"Host": "localhost"}).status_code == 400
    finally:
        get_store(app).dispose()


@pytest.mark.parametrize("value", ["https://leads.example.com", "a/b"])
def test_trusted_hosts_must_be_names(tmp_path, content_dir, value):
    with pytest.raises(ConfigError, match="^LEADGATE_TRUSTED_HOSTS"):
        create_app(config(tmp_path, content_dir, BASE_URL="https://x.example/", TRUSTED_HOSTS=value))


# --- /readyz: can a post be kept? -----------------------------------------------------------

UNWRITABLE_SPOOL = "/sys/leadgate-spool.jsonl"  # sysfs: read-only even to root


def test_ready_while_the_spool_can_take_posts_though_the_database_cannot(make_app, database_url,
                                                                        tmp_path):
    read_only = read_only_url(database_url)
    app = make_app(DATABASE_URL=read_only)
    answer = app.test_client().get("/readyz")
    assert (answer.status_code, answer.get_json()) == (
        200, {"ok": True, "database": "database cannot take a write", "spool": "ok"})


def test_not_ready_when_neither_the_database_nor_the_spool_can_take_a_write(make_app, database_url,
                                                                           form_post):
    app = make_app(DATABASE_URL=read_only_url(database_url), SPOOL_PATH=UNWRITABLE_SPOOL)
    client = app.test_client()
    answer = client.get("/readyz")
    assert (answer.status_code, answer.get_json()) == (503, {
        "ok": False, "database": "database cannot take a write",
        "spool": "spool cannot be written: Permission denied"})
    # What readiness predicts: a post now is refused, not lost.
    assert client.post("/submit", data=form_post()).status_code == 503


def test_not_ready_on_a_full_disk(make_app, database_url, monkeypatch):
    import capture.web.health as health

    app = make_app(DATABASE_URL=read_only_url(database_url))
    monkeypatch.setattr(health, "MIN_FREE_BYTES", 1 << 62)  # no disk has this much free
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["spool"] == "spool cannot be written: the disk is full"


def read_only_url(database_url: str) -> str:
    """The same database, opened read-only: SQLite's ``mode=ro``, PostgreSQL's read-only
    transactions (what a replica or a full disk's refusals look like to the service)."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    url = make_url(database_url)
    options = " ".join(filter(None, [url.query.get("options"), "-c default_transaction_read_only=on"]))
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


# --- Against a real server: gunicorn reads the chunked body ----------------------------------

@pytest.fixture(scope="module")
def shipped_post():
    """form_post for the shipped content, which the live server publishes."""
    catalog = load_catalog(ROOT / "content")
    resource = next(iter(catalog))

    def build(**fields: str) -> dict[str, str]:
        return {"email": "live@example.com", "first_name": "Live", "terms": "accepted",
                "resource_id": resource.id, "terms_sha256": resource.terms.sha256,
                "marketing_sha256": catalog.settings.marketing.sha256, **fields}
    return build


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("hygiene")) as server:
        yield server


def raw_chunked_post(port: int, body: bytes, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """POST /submit with a chunked body over a plain socket, from the site's own page (the
    Origin a browser sends, so the post is judged a person's, not a script's); (status, head of
    the answer). The server may answer and close before the whole body is sent: that is a
    refusal, not a failure."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"POST /submit HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: http://{host}:{port}\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\n"
                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
        try:
            for chunk in chunked(body, 64 * 1024):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = s.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    return int(answer.split(b" ", 2)[1]), answer


@pytest.mark.slow
@pytest.mark.parametrize("size", [MIB, 20 * MIB], ids=["1MiB", "20MiB"])
def test_live_chunked_post_past_the_limit_is_refused(live, shipped_post, size):
    before = len(live.export_rows())
    status, _ = raw_chunked_post(live.port, padded(shipped_post, size, email=f"chunk{size}@example.com"))
    assert status == 413
    assert len(live.export_rows()) == before


@pytest.mark.slow
def test_live_chunked_post_within_the_limit_keeps_the_opt_in(live, shipped_post):
    status, answer = raw_chunked_post(live.port, padded(shipped_post, 60 * 1024, email="whole@example.com"))
    assert status == 303, answer
    row = next(r for r in live.export_rows() if r["email"] == "whole@example.com")
    assert row["marketing_opt_in"] in ("yes", "true", "True", "1"), row


@pytest.mark.slow
def test_live_forged_host_is_refused_with_http_client(live, shipped_post):
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    connection.request("POST", "/submit", body=urlencode(shipped_post(email="host@example.com")),
                       headers={"Host": "evil.example", "Origin": "http://evil.example",
                                "Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    response.close()
    connection.close()
    assert response.status == 400
    assert "evil.example" not in (response.getheader("Location") or "")
    assert not [r for r in live.export_rows() if r["email"] == "host@example.com"]


@pytest.mark.slow
def test_live_get_submit_is_405(live):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{live.url}/submit", timeout=10)
    e.value.close()
    assert (e.value.code, e.value.headers["Allow"]) == (405, "POST")
