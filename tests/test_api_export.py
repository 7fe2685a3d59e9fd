"""The export over HTTP as scripts and staff use it: tokens, filters, streaming, headers."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from capture.catalog import ConsentText
from capture.config import ConfigError
from capture.leads.submission import NewSubmission
from capture.leads.submission import record_submission
from capture.scoring.apply import get_scoring
from staff import add_user, signed_in
from test_export import RULES

TERMS = ConsentText("terms", "terms-2026-11", "I agree that my details are stored.")
MARKETING = ConsentText("marketing", "marketing-2026-11", "Send me news.")
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
TOKEN = re.compile(r"lg_[A-Za-z0-9_-]{20,}")


def record(store, email: str, **fields) -> None:
    fields.setdefault("resource_id", "leads-vs-prospects")
    fields.setdefault("marketing_opt_in", False)
    fields.setdefault("created_at", T0)
    record_submission(store, NewSubmission(email=email, terms=TERMS, marketing=MARKETING, **fields))


def create_token(runner, email: str = "sam.sales@example.com") -> str:
    """`leadgate token create EMAIL`, as an admin does it; the token it prints once."""
    assert add_user(runner, email).exit_code == 0
    result = runner.invoke(args=["token", "create", email, "--name", "CRM sync"])
    assert result.exit_code == 0, result.output
    return TOKEN.search(result.output).group(0)


@pytest.fixture
def token(runner) -> str:
    return create_token(runner)


def get(client, token: str | None, query: str = "", **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(f"/api/leads.csv{query}", headers=headers, **kwargs)


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def leads(store):
    record(store, "ann@acme.example", company="Acme", utm_source="linkedin", utm_campaign="q4",
           marketing_opt_in=True, created_at=T0 + timedelta(days=10))
    record(store, "bob@acme.example", company="Acme", utm_source="linkedin", created_at=T0 + timedelta(days=12))
    record(store, "cy@initech.example", company="=Initech", utm_source="newsletter", marketing_opt_in=True,
           created_at=T0 + timedelta(days=11))


@pytest.mark.parametrize("header", [None, "Basic c2FtOnB3", "Bearer ", "Bearer lg_not-a-real-token"])
def test_no_valid_token_401(client, leads, header):
    response = client.get("/api/leads.csv", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.get_json()["ok"] is False
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_401(client, runner, token, leads):
    assert get(client, token).status_code == 200
    listing = runner.invoke(args=["token", "list"])
    token_id = re.search(r"^\s*(\d+)\s", listing.output, re.M).group(1)
    assert runner.invoke(args=["token", "revoke", token_id]).exit_code == 0
    response = get(client, token)
    assert response.status_code == 401
    assert "revoked" in response.get_json()["error"]


def test_valid_token_streams_the_filtered_csv(client, token, leads):
    response = get(client, token, "?utm_source=LinkedIn&marketing=yes")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert response.headers["Content-Disposition"] == f'attachment; filename="leads-{today}.csv"'
    assert response.headers["Cache-Control"] == "private, no-store"
    rows = csv_rows(response)
    assert [(r["email"], r["latest_utm_campaign"], r["marketing_opt_in"]) for r in rows] == [
        ("ann@acme.example", "q4", "yes")]


def test_api_columns_order_jsonl_and_excel(client, token, leads):
    response = get(client, token, "?columns=email,company&sort=last_seen&dir=desc")
    assert response.get_data(as_text=True).splitlines() == [
        "email,company", "bob@acme.example,Acme", "cy@initech.example,'=Initech", "ann@acme.example,Acme"]
    response = get(client, token, "?format=jsonl&columns=id,company&q=initech")
    assert response.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response.headers["Content-Disposition"].endswith('.jsonl"')
    assert [json.loads(line) for line in response.get_data(as_text=True).splitlines()] == [
        {"id": 3, "company": "=Initech"}]
    response = get(client, token, "?excel=yes&columns=email")
    assert response.data.startswith(b"\xef\xbb\xbfemail\r\n")


def test_bad_parameters_400_json_before_any_byte(client, token, leads):
    response = get(client, token, "?from=yesterday&marketing=maybe&columns=email,phone&type=video&sort=x")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert "Content-Disposition" not in response.headers
    body = response.get_json()
    assert body["ok"] is False
    assert set(body["errors"]) == {"from", "marketing", "columns", "type", "sort"}
    assert "YYYY-MM-DD" in body["errors"]["from"][0]
    assert "Valid columns: id, email," in body["errors"]["columns"][0]
    assert "ebook, whitepaper" in body["errors"]["type"][0]


def test_first_bytes_leave_before_the_query(client, store, token, leads):
    selects = []

    def watch(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM leads" in statement:
            selects.append(statement)

    event.listen(store.engine, "before_cursor_execute", watch)
    try:
        response = get(client, token, buffered=False)
        assert response.headers["Content-Disposition"].startswith("attachment;")
        body = iter(response.response)
        assert next(body).startswith(b"email,first_name,")
        assert selects == []  # headers and the CSV header left before the leads were read
        rest = b"".join(body)
        response.close()
    finally:
        event.remove(store.engine, "before_cursor_execute", watch)
    assert len(selects) == 1
    assert rest.count(b"\r\n") == 3


def download_link(client, list_query: str):
    """Open the lead list and follow its Download CSV button, as a sales rep does."""
    page = client.get(f"/workspace/{list_query}")
    assert page.status_code == 200
    link = re.search(r'href="(/workspace/leads\.csv[^"]*)"', page.get_data(as_text=True)).group(1)
    return client.get(link.replace("&amp;", "&"))


def test_workspace_download_is_what_the_list_shows(client, runner, leads):
    signed_in(client, runner)
    response = download_link(client, "?utm_source=linkedin")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="leads-')
    # The list's default order: last seen, newest first.
    assert [r["email"] for r in csv_rows(response)] == ["bob@acme.example", "ann@acme.example"]
    response = download_link(client, "?utm_source=linkedin&sort=email&dir=asc")
    assert [r["email"] for r in csv_rows(response)] == ["ann@acme.example", "bob@acme.example"]
    response = download_link(client, "?sort=company&dir=asc")
    assert [r["company"] for r in csv_rows(response)] == ["'=Initech", "Acme", "Acme"]


def test_workspace_download_needs_a_signed_in_member_of_staff(client, leads):
    response = client.get("/workspace/leads.csv")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/workspace/login")


def test_workspace_download_refuses_bad_filters(client, runner, leads):
    signed_in(client, runner)
    response = client.get("/workspace/leads.csv?to=2026-13-01")
    assert response.status_code == 400
    assert "is not a date" in response.get_data(as_text=True)


def test_an_unknown_resource_is_refused_everywhere_like_an_unknown_type(client, runner, token, leads):
    """A misspelt resource id would select no lead and say nothing: the API, the workspace and
    `leadgate export` all name the ids there are."""
    answer = get(client, token, "?resource=leads-vs-prospect")
    assert answer.status_code == 400
    assert answer.get_json()["errors"]["resource"] == [
        "Unknown resource 'leads-vs-prospect': use one of leads-vs-prospects, scoring."]
    signed_in(client, runner, "mia@example.com", "marketing")
    page = client.get("/workspace/?resource=leads-vs-prospect")
    assert page.status_code == 422
    assert "Unknown resource" in page.get_data(as_text=True)
    result = runner.invoke(args=["export", "--resource", "leads-vs-prospect"])
    assert result.exit_code == 2 and "Unknown resource 'leads-vs-prospect'" in result.output


@pytest.fixture
def scored_leads(app, content_dir, store):
    """Three leads scored by test_export.RULES as their posts arrive: ann an MQL (60), bob 30, cy 20."""
    (content_dir / "scoring.yml").write_text(RULES, encoding="utf-8")
    scoring = get_scoring(app)
    for email, fields in (("ann@acme.example", {"industry": "Software", "resource_id": "scoring"}),
                          ("bob@acme.example", {"resource_id": "scoring"}),
                          ("cy@initech.example", {"job_title": "Intern"})):
        fields.setdefault("resource_id", "leads-vs-prospects")
        record_submission(store, NewSubmission(email=email, terms=TERMS, marketing=MARKETING,
                                               marketing_opt_in=False, **fields), scoring)


def test_api_filters_by_stage_and_score_with_the_new_columns(client, token, scored_leads):
    response = get(client, token, "?stage=mql&columns=email,stage,fit,engagement,score,score_reasons")
    assert response.status_code == 200
    assert csv_rows(response) == [{
        "email": "ann@acme.example", "stage": "mql", "fit": "60", "engagement": "60", "score": "60",
        "score_reasons": "industry Software +60; whitepaper scoring +60"}]
    response = get(client, token, "?score_min=20&score_max=30&format=jsonl&columns=email,score,score_reasons")
    assert [json.loads(line) for line in response.get_data(as_text=True).splitlines()] == [
        {"email": "bob@acme.example", "score": 30, "score_reasons": [{"rule": "whitepaper scoring", "points": 60}]},
        {"email": "cy@initech.example", "score": 20,
         "score_reasons": [{"rule": 'job title "intern"', "points": -20},
                           {"rule": "ebook leads-vs-prospects", "points": 40}]}]
    today = datetime.now(UTC).date().isoformat()
    response = get(client, token, f"?fit_min=1&engagement_min=60&mql_from={today}&columns=email")
    assert response.get_data(as_text=True).splitlines() == ["email", "ann@acme.example"]


def test_api_refuses_bad_stage_and_score(client, token, scored_leads):
    response = get(client, token, "?stage=hot&score_min=x&engagement_min=90&engagement_max=10")
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert set(errors) == {"stage", "score_min", "engagement_max"}
    assert errors["score_min"] == ["'x' is not a whole number from 0 to 100."]


def test_workspace_download_by_stage_sorted_by_score(client, runner, scored_leads):
    signed_in(client, runner)
    response = download_link(client, "?stage=lead")
    assert [(r["email"], r["stage"], r["score"]) for r in csv_rows(response)] == [
        ("bob@acme.example", "lead", "30"), ("cy@initech.example", "lead", "20")]
    response = download_link(client, "?score_min=25")
    assert [r["email"] for r in csv_rows(response)] == ["ann@acme.example", "bob@acme.example"]


# --- Pages: limit and cursor -----------------------------------------------------------------

@pytest.fixture
def many_leads(store) -> list[str]:
    """Eight leads with ties in every order: two posts at each moment, companies shared."""
    emails = []
    for n in range(8):
        email = f"lead{n}@example.com"
        record(store, email, company=("Acme", "Globex", "Initech")[n % 3],
               created_at=T0 + timedelta(days=n // 2))
        emails.append(email)
    return emails


def pages(client, token: str, query: str) -> list[list[str]]:
    """Follow the Link headers from the first page to the last; each page's emails."""
    seen, url = [], f"/api/leads.csv{query}"
    while url:
        response = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_data(as_text=True)
        seen.append([row["email"] for row in csv_rows(response)])
        link = response.headers.get("Link")
        if link is None:
            assert "Leadgate-Next-Cursor" not in response.headers
            break
        match = re.fullmatch(r'<(/api/leads\.csv\?[^>]+)>; rel="next"', link)
        assert match, link
        url = match.group(1)
        assert f"cursor={response.headers['Leadgate-Next-Cursor']}" in url
        assert len(seen) < 20, "the pages never end"
    return seen


@pytest.mark.parametrize("order", ["", "&sort=last_seen&dir=desc", "&sort=company&dir=asc",
                                   "&sort=email&dir=desc", "&sort=score&dir=desc", "&sort=first_seen&dir=asc"])
def test_limit_and_cursor_page_through_every_lead_once(client, token, many_leads, order):
    everything = [row["email"] for row in csv_rows(get(client, token, f"?columns=email{order}"))]
    assert sorted(everything) == sorted(many_leads)
    seen = pages(client, token, f"?columns=email&limit=3{order}")
    assert [len(page) for page in seen] == [3, 3, 2]
    assert [email for page in seen for email in page] == everything


def test_the_last_full_page_has_no_next_link(client, token, many_leads):
    assert [len(page) for page in pages(client, token, "?limit=4&columns=email")] == [4, 4]
    assert [len(page) for page in pages(client, token, "?limit=100000&columns=email")] == [8]


def test_pages_keep_the_filter_and_format(client, token, many_leads):
    response = get(client, token, "?q=example&limit=2&format=jsonl&columns=id,company&company=x")
    link = response.headers["Link"]
    assert "format=jsonl" in link and "q=example" in link and "columns=id,company" in link
    assert [json.loads(line)["id"] for line in response.get_data(as_text=True).splitlines()] == [1, 2]


def test_a_lead_added_between_pages_is_not_lost(client, token, store, many_leads):
    first = get(client, token, "?columns=email&limit=5")
    record(store, "late@example.com", created_at=T0)
    rest = client.get(re.search(r"<([^>]+)>", first.headers["Link"]).group(1),
                      headers={"Authorization": f"Bearer {token}"})
    assert [r["email"] for r in csv_rows(first) + csv_rows(rest)] == [*many_leads, "late@example.com"]


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "100001", "１０", " 5", "99999999999"])
def test_bad_limit_is_refused_naming_it(client, token, many_leads, limit):
    response = get(client, token, "", query_string={"limit": limit})
    assert response.status_code == 400
    assert "Content-Disposition" not in response.headers
    assert response.get_json()["errors"] == {
        "limit": [f"'{limit[:20]}' is not a whole number from 1 to 100,000."]}


def test_a_cursor_that_was_changed_is_refused(client, token, many_leads):
    first = get(client, token, "?columns=email&limit=3&sort=last_seen&dir=desc")
    cursor = first.headers["Leadgate-Next-Cursor"]
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    for query, problem in (
            ({"cursor": flipped}, "was not made by this service, or was changed"),
            ({"cursor": "eyJpZCI6IDV9"}, "was not made by this service, or was changed"),
            ({"cursor": cursor.split(".")[0] + ".forged"}, "was not made by this service, or was changed"),
            ({"cursor": cursor, "sort": "company"}, "was made for another order"),
            ({"cursor": cursor, "sort": "last_seen", "dir": "asc"}, "was made for another order")):
        response = get(client, token, "", query_string={"columns": "email", "limit": "3", "sort": "last_seen",
                                                        "dir": "desc", **query})
        assert response.status_code == 400, query
        [message] = response.get_json()["errors"]["cursor"]
        assert problem in message, query
    # Another service (another secret key) cannot hand out cursors for this one.
    good = get(client, token, "", query_string={"columns": "email", "limit": "3", "sort": "last_seen",
                                                "dir": "desc", "cursor": cursor})
    assert good.status_code == 200 and len(csv_rows(good)) == 3


def test_a_cursor_without_limit_streams_the_rest(client, token, many_leads):
    first = get(client, token, "?limit=6")
    cursor = first.headers["Leadgate-Next-Cursor"]
    first.close()
    rest = get(client, token, "", query_string={"cursor": cursor, "columns": "email"})
    assert [r["email"] for r in csv_rows(rest)] == many_leads[6:]
    assert "Link" not in rest.headers


# --- Rate limit per token --------------------------------------------------------------------

def test_each_token_has_its_own_rate_limit(make_app, many_leads):
    app = make_app(API_EXPORT_RATE_LIMIT="2/minute;50/hour", RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}")
    client, runner = app.test_client(), app.test_cli_runner()
    sam, ann = create_token(runner, "sam@example.com"), create_token(runner, "ann@example.com")
    assert [get(client, sam).status_code for _ in range(2)] == [200, 200]
    refused = get(client, sam, "?columns=email")
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    body = refused.get_json()
    assert body["ok"] is False and body["title"] == "Too many exports"
    assert "(2/minute;50/hour)" in body["error"] and "Nothing was exported" in body["error"]
    assert "Content-Disposition" not in refused.headers
    # Another token (another script) is not held back by the first one's count.
    other = get(client, ann)
    assert other.status_code == 200 and len(csv_rows(other)) == 8
    # A refused request is not an export: the log has the three that ran.
    log = app.test_cli_runner().invoke(args=["export-log", "--channel", "api"]).output.splitlines()
    assert [line.split()[2] for line in log] == ["ann@example.com", "sam@example.com", "sam@example.com"]


def test_a_bad_rate_limit_setting_names_the_variable(make_app):
    with pytest.raises(ConfigError, match="LEADGATE_API_EXPORT_RATE_LIMIT must be limits such as "
                                          "10/minute;100/hour, or off, not 'ten a minute'"):
        make_app(API_EXPORT_RATE_LIMIT="ten a minute")


def test_the_rate_limit_can_be_turned_off(make_app, many_leads):
    app = make_app(API_EXPORT_RATE_LIMIT="off")
    client = app.test_client()
    sam = create_token(app.test_cli_runner())
    assert {get(client, sam, "?columns=email").status_code for _ in range(12)} == {200}


def redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis at 127.0.0.1:6379 cannot be reached; CI=true needs it")
        return False
    return True


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_counts_live_in_redis_under_a_digest_of_the_token(make_app, many_leads):
    if not redis_reachable():
        pytest.skip("no Redis on 127.0.0.1:6379")
    import redis

    prefix = f"test-{uuid.uuid4().hex}"
    app = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379", RATELIMIT_KEY_PREFIX=prefix,
                   API_EXPORT_RATE_LIMIT="1/minute")
    client = app.test_client()
    sam = create_token(app.test_cli_runner())
    assert get(client, sam).status_code == 200
    assert get(client, sam).status_code == 429
    server = redis.Redis(host="127.0.0.1", port=6379)
    # The prefix is this test's own: no other test's keys can match it.
    keys = [key.decode() for key in server.scan_iter(f"*{prefix}*")]
    try:
        assert len(keys) == 1
        assert sam not in keys[0] and hashlib.sha256(sam.encode()).hexdigest() not in keys[0]
    finally:
        if keys:
            server.delete(*keys)


def test_refused_requests_do_not_count_against_the_limit(make_app, many_leads):
    app = make_app(API_EXPORT_RATE_LIMIT="2/minute", MARKETING_CAN_EXPORT=False)
    client, runner = app.test_client(), app.test_cli_runner()
    assert add_user(runner, "mia@example.com", "marketing").exit_code == 0
    mia = TOKEN.search(runner.invoke(args=["token", "create", "mia@example.com"]).output).group(0)
    assert {get(client, mia).status_code for _ in range(4)} == {403}  # her role, not the limit
    sam = create_token(runner)
    assert get(client, sam, "?limit=0").status_code == 400
    assert get(client, sam, "?columns=email").status_code == 200
    assert get(client, sam, "?columns=email").status_code == 429  # the bad request counted: 2 of 2
