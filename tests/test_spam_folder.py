"""The spam folder as staff use it: posts held as spam are kept apart from the leads, shown with
their reasons in /workspace/spam, released as leads (once) or deleted, and purged after
SPAM_KEEP_DAYS; `leadgate spam list|release|purge` does the same from a terminal.

Held posts are made as the form's checks make them: a NewSubmission with a verdict that holds
it, handed to the spool (``get_spool(app).save``), the service's one way to keep a post.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SECRET_KEY, TINY_PDF
from flask import Flask
from sqlalchemy import func, select
from staff import add_user, csrf_token, sign_in, signed_in
from test_spool import wait_for

import capture.spool
from capture.catalog import Catalog
from capture.config import ConfigError
from capture.db.models import ConsentEvent, Download, HeldPost, Lead, Submission, utcnow
from capture.db.store import get_store
from capture.leads.submission import NewSubmission
from capture.scoring.apply import get_scoring
from capture.spam.verdict import CLEAN, judge, reason
from capture.spool import PURGE_THREAD_NAME, get_spool
from capture.web.links import DownloadClaim, sign_download

POSTGRES_DOWN = "postgresql+psycopg://postgres@127.0.0.1:9/test"
HONEYPOT = judge([reason("honeypot", "website=http://cheap-pills.example")])

#: Rules that give the test's posts a score to look for: software 60 fit, an ebook 40 engagement.
RULES = """
mql_threshold: 90
weights:
  fit: 50
  engagement: 50
fit:
  industry:
    - industries: [Software]
      points: 60
engagement:
  half_life_days: 30
  resource_types:
    ebook: 40
    whitepaper: 60
"""


@pytest.fixture
def post(app: Flask, catalog: Catalog) -> Callable[..., NewSubmission]:
    """Send a post through the spool as the form would, with the verdict given (held by default)."""
    def send(email: str = "bot@spam.example", *, spam=HONEYPOT, resource_id: str = "leads-vs-prospects",
             at: datetime | None = None, into: Flask | None = None, **fields) -> NewSubmission:
        resource = catalog.get(resource_id)
        data = NewSubmission(
            email=email, resource_id=resource_id, terms=resource.terms, marketing=catalog.settings.marketing,
            marketing_opt_in=fields.pop("marketing_opt_in", False), spam=spam,
            **{"first_name": "Bo", "company": "Acme", "industry": "Software", "ip_prefix": "203.0.113.0/24",
               "user_agent": "curl/8", **fields},
            **({"created_at": at} if at else {}))
        get_spool(into or app).save(data)
        return data
    return send


@pytest.fixture
def sales(client, runner):
    signed_in(client, runner)
    return client


def count(app: Flask, model: type) -> int:
    with get_store(app).read() as s:
        return s.scalar(select(func.count()).select_from(model))


def page(client, path: str = "/workspace/spam") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def text_of(markup: str) -> str:
    """A page's words as a reader sees them: tags gone (blocks apart), entities read, spaces squeezed."""
    inline = re.sub(r"</?(?:span|wbr|strong|code|a|time)\b[^>]*>", "", markup)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def cards(markup: str) -> list[str]:
    """The words of each held post's card on the page, in order."""
    return [text_of(card) for card in re.findall(r'<li class="ws-card spam-post">(.*?)</li>\s*(?=<li class="ws-card|</ol>)',
                                                  markup, re.S)]


def post_ids(markup: str) -> list[int]:
    return [int(n) for n in re.findall(r'action="/workspace/spam/(\d+)/release"', markup)]


def press(client, post_id: int, action: str):
    """Press a post's button on the folder's page (release, or delete for good)."""
    token = csrf_token(client, "/workspace/spam")
    return client.post(f"/workspace/spam/{post_id}/{action}", data={"csrf_token": token})


def notice(client) -> str:
    """The notice the page shows after an action."""
    return text_of(re.search(r'<p class="ws-notice" role="status">(.*?)</p>', page(client), re.S).group(1))


# --- Held posts are kept apart --------------------------------------------------------------

def test_a_held_post_goes_to_the_folder_and_nowhere_else(app, post):
    data = post()
    assert (count(app, HeldPost), count(app, Lead), count(app, Submission), count(app, ConsentEvent)) == (1, 0, 0, 0)
    with get_store(app).read() as s:
        held = s.scalars(select(HeldPost)).one()
    assert (held.uid, held.email, held.resource_id, held.score) == (data.uid, "bot@spam.example",
                                                                    "leads-vs-prospects", 1.0)
    assert json.loads(held.reasons) == [["honeypot", 1.0, "website=http://cheap-pills.example"]]
    assert held.released_at is None
    # The same post again (a retried request, a replayed line) adds nothing.
    assert get_spool(app).save(data) is True
    assert count(app, HeldPost) == 1


def test_a_post_below_the_threshold_is_a_lead_with_its_verdict(app, post):
    post("ann@example.com", spam=judge([reason("token_missing")]))
    assert (count(app, HeldPost), count(app, Lead)) == (0, 1)
    with get_store(app).read() as s:
        assert s.execute(select(Submission.spam_score)).scalar_one() == 0.5


# --- The page --------------------------------------------------------------------------------

def test_the_page_shows_each_post_with_its_reasons_and_the_counts_per_day(sales, post):
    today = utcnow()
    post("bot@spam.example", at=today - timedelta(days=3))
    post("fast@spam.example", spam=judge([reason("too_fast", "sent 0.4 s after the form was shown"),
                                          reason("no_origin")]), resource_id="scoring", at=today - timedelta(days=3))
    post("new@spam.example", spam=judge([reason("token_replayed")]))
    response = sales.get("/workspace/spam")
    markup = response.get_data(as_text=True)
    words = text_of(markup)
    assert response.status_code == 200
    # Newest first, each with its resource, score and every reason in words with its detail.
    assert [text_of(e) for e in re.findall(r'<h3 class="spam-post__who"[^>]*>(.*?)</h3>', markup, re.S)] == [
        "new@spam.example", "fast@spam.example", "bot@spam.example"]
    new, fast, bot = cards(markup)
    assert "Lead scoring sales trusts" in fast and "spam score 1.5" in fast
    assert "Too fast +1.0 sent 0.4 s after the form was shown" in fast
    assert "Sent sooner after the form was shown than a person can fill it in." in fast  # what it means
    assert "No origin +0.5 Neither an Origin nor a Referer header" in fast
    assert "Honeypot +1.0 website=http://cheap-pills.example The hidden field people never see was filled in." in bot
    assert "Leads versus prospects" in bot and "spam score 1.0" in bot
    assert "Token replayed +1.0 The form token had already been used for a stored post." in new
    assert "3 posts held, 0 of them released as leads; 3 waiting in the folder." in words
    days = re.findall(r'<tr><th scope="row"><time datetime="([\d-]+)">[\d-]+</time></th><td>(\d+)</td><td>(\d+)</td></tr>',
                      markup)
    assert days == [(today.date().isoformat(), "1", "0"), ((today - timedelta(days=3)).date().isoformat(), "2", "0")]
    assert "Held in the last 30 days" in words
    # The workspace's look: its stylesheet only, its navigation marking this page.
    assert "<style" not in markup and " style=" not in markup and "<script" not in markup
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "private, no-store"
    assert '<a href="/workspace/spam" aria-current="page">Spam</a>' in markup


def test_the_empty_folder_says_what_it_is_for(sales):
    words = text_of(page(sales))
    assert "The spam folder is empty." in words
    assert "Posts that look like spam" in words and "are held here instead of becoming leads" in words
    assert "deleted after 30 days" in words


def test_what_a_bot_typed_is_shown_as_text(sales, post):
    post("bot@spam.example", spam=judge([reason("honeypot", '<script>alert(1)</script><b style="x">')]))
    markup = page(sales)
    assert "<script>alert(1)" not in markup and "&lt;script&gt;alert(1)&lt;/script&gt;" in markup


def test_pages_of_the_folder_have_no_gaps_or_repeats(sales, post):
    start = utcnow() - timedelta(hours=1)
    # 52 posts, two at each moment: the page links keep order by (time, number).
    for n in range(52):
        post(f"bot{n:02d}@spam.example", at=start + timedelta(seconds=n // 2))
    first = page(sales)
    next_link = html.unescape(re.search(r'<a href="([^"]+)" rel="next">', first).group(1))
    second = page(sales, next_link)
    assert 'rel="next"' not in second
    emails = [re.match(r"bot(\d\d)@", card).group(1) for card in cards(first) + cards(second)]
    assert emails == [f"{n:02d}" for n in reversed(range(52))]
    assert len(post_ids(first)) == 50 and len(post_ids(second)) == 2
    # A page link that was cut starts from the newest again.
    assert post_ids(page(sales, "/workspace/spam?after=12x")) == post_ids(first)


@pytest.mark.parametrize("role", ["sales", "marketing", "admin"])
def test_every_role_sees_the_folder_and_nobody_else(client, runner, post, role):
    post()
    assert client.get("/workspace/spam").status_code == 302
    signed_in(client, runner, f"{role}@example.com", role=role)
    markup = page(client)
    assert "bot@spam.example" in text_of(markup)
    assert ("Release as a lead" in markup) == (role != "marketing")


def test_marketing_may_look_but_not_release_or_delete(client, runner, app, post):
    post()
    signed_in(client, runner, "mia@example.com", role="marketing")
    markup = page(client)
    assert "Release as a lead" not in markup and "Delete for good" not in markup
    assert "a sales or admin account releases and deletes posts" in text_of(markup)
    [held_id] = re.findall(r"<dt>Number</dt><dd>(\d+)</dd>", markup)
    for action in ("release", "delete"):
        assert press(client, int(held_id), action).status_code == 403
    assert (count(app, HeldPost), count(app, Lead)) == (1, 0)


def test_the_buttons_need_the_forms_csrf_token(sales, app, post):
    post()
    [held_id] = post_ids(page(sales))
    for action in ("release", "delete"):
        assert sales.post(f"/workspace/spam/{held_id}/{action}").status_code == 400
    assert (count(app, HeldPost), count(app, Lead)) == (1, 0)


# --- Release ---------------------------------------------------------------------------------

def test_release_makes_one_lead_as_a_clean_post_would(sales, app, post, content_dir):
    (content_dir / "scoring.yml").write_text(RULES, encoding="utf-8")
    data = post("ann@example.com", first_name="Ann", marketing_opt_in=True)
    [held_id] = post_ids(page(sales))

    response = press(sales, held_id, "release")
    assert (response.status_code, response.headers["Location"]) == (303, "/workspace/spam")
    assert notice(sales) == "ann@example.com was released: it is a lead now."
    assert "The spam folder is empty." in text_of(page(sales))
    assert "1 post held, 1 of them released as leads; 0 waiting" in text_of(page(sales))

    # Stored as a clean post is: the same uid, scored, both consents recorded…
    with get_store(app).read() as s:
        lead = s.scalars(select(Lead)).one()
        submission = s.scalars(select(Submission)).one()
        consents = s.execute(select(ConsentEvent.kind, ConsentEvent.granted).order_by(ConsentEvent.kind)).all()
        held = s.scalars(select(HeldPost)).one()
    assert submission.uid == data.uid and submission.created_at == data.created_at
    assert (lead.email, lead.fit, lead.engagement, lead.score) == ("ann@example.com", 60, 40, 50)
    assert consents == [("marketing", True), ("terms", True)]
    # … and marked as released from spam: the verdict stays on the submission.
    assert (submission.spam_score, json.loads(submission.spam_reasons)[0][0]) == (1.0, "honeypot")
    assert (held.released_by, held.released_at is not None) == ("sam.sales@example.com", True)

    # Once in the list, once in the export, with its score.
    leads_page = page(sales, "/workspace/")
    assert text_of(leads_page).count("ann@example.com") == 1
    assert '<span class="ws-score__value">50</span>' in leads_page
    with sales.get("/workspace/leads.csv") as export:
        rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["email"], r["score"]) for r in rows] == [("ann@example.com", "50")]
    # Its page says where it came from.
    assert ("Requested Leads versus prospects; held as spam (Honeypot), then released by staff"
            in text_of(page(sales, f"/workspace/leads/{lead.id}")))


def test_a_second_release_adds_nothing(sales, app, post, runner):
    post("ann@example.com")
    [held_id] = post_ids(page(sales))
    assert press(sales, held_id, "release").status_code == 303
    # The same button again, from a page opened before the first release.
    assert press(sales, held_id, "release").status_code == 303
    assert notice(sales) == ("ann@example.com was already released as a lead by sam.sales@example.com; "
                             "nothing was added.")
    result = runner.invoke(args=["spam", "release", str(held_id), "--by", "sam.sales@example.com"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{held_id} ann@example.com: already released by sam.sales@example.com; nothing added\n"
    assert (count(app, Lead), count(app, Submission), count(app, ConsentEvent)) == (1, 1, 2)


def test_releases_racing_each_other_store_one_lead(app, post, runner):
    from capture.spam import folder

    post("ann@example.com")
    with get_store(app).read() as s:
        held_id = s.scalar(select(HeldPost.id))
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def release(n: int) -> None:
        start.wait()
        try:
            folder.release(get_store(app), held_id, f"rep{n}@example.com", get_scoring(app))
            outcomes.append("released")
        except folder.AlreadyReleased:
            outcomes.append("already")

    threads = [threading.Thread(target=release, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already"] * 3 + ["released"]
    assert (count(app, Lead), count(app, Submission), count(app, ConsentEvent)) == (1, 1, 2)


def test_a_release_joins_the_lead_of_an_address_already_known(sales, app, post):
    post("ann@example.com", spam=CLEAN, resource_id="scoring")
    post("Ann@Example.com")
    [held_id] = post_ids(page(sales))
    press(sales, held_id, "release")
    assert (count(app, Lead), count(app, Submission)) == (1, 2)


# --- Delete ----------------------------------------------------------------------------------

def test_delete_asks_first_then_removes_the_post_for_good(sales, app, post):
    data = post()
    markup = page(sales)
    # Confirmed without a script: "Delete…" opens a box whose button deletes.
    confirm = re.search(r'<details class="spam-confirm">(.*?)</details>', markup, re.S).group(1)
    assert "Delete…" in confirm and "Delete this post for good? It cannot be brought back." in text_of(confirm)
    [held_id] = post_ids(markup)
    assert f'action="/workspace/spam/{held_id}/delete"' in confirm

    assert press(sales, held_id, "delete").status_code == 303
    assert notice(sales) == "The post from bot@spam.example was deleted."
    assert (count(app, HeldPost), count(app, Lead)) == (0, 0)
    # Its link is dead now, and a release of it finds nothing.
    token = sign_download(SECRET_KEY, DownloadClaim(data.uid, data.resource_id))
    assert sales.get(f"/download/{token}").status_code == 410
    assert press(sales, held_id, "release").status_code == 303
    assert notice(sales) == "That post is no longer in the spam folder: it was deleted or purged."
    assert count(app, Lead) == 0


# --- Purge -----------------------------------------------------------------------------------

def test_purge_by_age_from_the_command_line(app, post, runner):
    now = utcnow()
    post("old@spam.example", at=now - timedelta(days=31))
    post("week@spam.example", at=now - timedelta(days=7))
    post("new@spam.example")

    dry = runner.invoke(args=["spam", "purge", "--dry-run"])
    assert dry.exit_code == 0
    assert dry.output == "Would remove 1 post held more than 30 days ago (--dry-run: nothing removed).\n"
    assert count(app, HeldPost) == 3

    done = runner.invoke(args=["spam", "purge"])
    assert done.output == "Removed 1 post held more than 30 days ago from the spam folder.\n"
    assert runner.invoke(args=["spam", "purge"]).output == (
        "Removed 0 posts held more than 30 days ago from the spam folder.\n")
    assert runner.invoke(args=["spam", "purge", "--days", "5"]).output == (
        "Removed 1 post held more than 5 days ago from the spam folder.\n")
    with get_store(app).read() as s:
        assert s.scalars(select(HeldPost.email)).all() == ["new@spam.example"]


def test_purge_keeps_what_spam_keep_days_says(make_app, post, catalog):
    app = make_app(SPAM_KEEP_DAYS="3")
    now = utcnow()
    post("four@spam.example", at=now - timedelta(days=4), into=app)
    post("two@spam.example", at=now - timedelta(days=2), into=app)
    assert app.test_cli_runner().invoke(args=["spam", "purge"]).output == (
        "Removed 1 post held more than 3 days ago from the spam folder.\n")
    assert count(app, HeldPost) == 1


def test_purge_removes_released_posts_but_not_their_leads(app, post, runner):
    add_user(runner)
    post("ann@example.com", at=utcnow() - timedelta(days=40))
    with get_store(app).read() as s:
        held_id = s.scalar(select(HeldPost.id))
    assert runner.invoke(args=["spam", "release", str(held_id), "--by", "sam.sales@example.com"]).exit_code == 0
    runner.invoke(args=["spam", "purge"])
    assert (count(app, HeldPost), count(app, Lead), count(app, Submission)) == (0, 1, 1)


def test_the_service_purges_by_itself(make_app, post, monkeypatch):
    monkeypatch.setattr(capture.spool, "PURGE_FIRST_SECONDS", 0.05)
    app = make_app()
    post("old@spam.example", at=utcnow() - timedelta(days=31), into=app)
    post("new@spam.example", into=app)
    assert count(app, HeldPost) == 2
    others = purging()   # other apps' threads, left by tests that built one without make_app
    # Nothing runs before the app serves its first request (never before a fork).
    assert purging() == others
    assert app.test_client().get("/healthz").status_code == 200
    assert wait_for(lambda: count(app, HeldPost) == 1)
    with get_store(app).read() as s:
        assert s.scalars(select(HeldPost.email)).all() == ["new@spam.example"]
    # One thread per process, however many requests; it sleeps a day now.
    app.test_client().get("/healthz")
    [thread] = purging() - others
    get_spool(app).stop()
    assert not thread.is_alive()


def purging() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == PURGE_THREAD_NAME and t.is_alive()}


@pytest.mark.parametrize("days", ["0", "-1", "many"])
def test_spam_keep_days_must_be_a_whole_number_of_days(make_app, days):
    with pytest.raises(ConfigError, match="SPAM_KEEP_DAYS"):
        make_app(SPAM_KEEP_DAYS=days)


# --- The download link ----------------------------------------------------------------------

def test_the_link_of_a_held_post_serves_the_file_and_records_nothing(app, post, runner):
    data = post()
    client = app.test_client()
    token = sign_download(SECRET_KEY, DownloadClaim(data.uid, data.resource_id))
    thanks = client.get(f"/thanks/{token}")
    assert thanks.status_code == 200
    with client.get(f"/download/{token}") as pdf:
        assert (pdf.status_code, pdf.get_data()) == (200, TINY_PDF)
    assert (count(app, Download), count(app, Lead)) == (0, 0)

    # Released, it is a lead's link like any other: downloads are recorded from then on.
    add_user(runner)
    runner.invoke(args=["spam", "release", str(data.uid), "--by", "sam.sales@example.com"])
    with client.get(f"/download/{token}") as pdf:
        assert pdf.status_code == 200
    assert count(app, Download) == 1


# --- The database down -----------------------------------------------------------------------

def test_a_held_post_spooled_in_an_outage_goes_back_to_the_folder(make_app, catalog, tmp_path, post):
    faulty = make_app(DATABASE_URL=POSTGRES_DOWN, SPOOL_RETRY_SECONDS=0)
    data = post("bot@spam.example", into=faulty)
    clean = post("ann@example.com", spam=CLEAN, into=faulty)
    spool_path = Path(tmp_path / "spool.jsonl")
    lines = [json.loads(line) for line in spool_path.read_bytes().splitlines()]
    assert [(line["email"], bool(line["spam"])) for line in lines] == [
        ("bot@spam.example", True), ("ann@example.com", False)]

    # Its link works during the outage, and spools no download.
    client = faulty.test_client()
    with client.get(f"/download/{sign_download(SECRET_KEY, DownloadClaim(data.uid, data.resource_id))}") as pdf:
        assert (pdf.status_code, pdf.get_data()) == (200, TINY_PDF)
    with client.get(f"/download/{sign_download(SECRET_KEY, DownloadClaim(clean.uid, clean.resource_id))}") as pdf:
        assert pdf.status_code == 200
    assert [json.loads(line)["kind"] for line in spool_path.read_bytes().splitlines()] == [
        "submission", "submission", "download"]

    healthy = make_app(SPOOL_RETRY_SECONDS=0)
    result = healthy.test_cli_runner().invoke(args=["spool", "replay"])
    assert result.exit_code == 0, result.output
    assert "Stored 1 submission(s) and 1 download(s)" in result.output
    assert "1 post(s) held as spam went to the spam folder, not to the leads." in result.output
    with get_store(healthy).read() as s:
        assert s.scalars(select(HeldPost.uid)).all() == [data.uid]
        assert s.scalars(select(Lead.email)).all() == ["ann@example.com"]
    assert count(healthy, Download) == 1
    # Replayed again (a crash before the spool was rewritten): nothing more.
    spool_path.write_bytes(b"".join(
        capture.spool.lines.submission_line(d) for d in (data, clean)))
    again = healthy.test_cli_runner().invoke(args=["spool", "replay"])
    assert "2 submission(s) were already stored" in again.output
    assert (count(healthy, HeldPost), count(healthy, Lead)) == (1, 1)


# --- Spam never reaches the leads' data -------------------------------------------------------

def test_spam_is_absent_from_the_list_the_exports_the_reports_and_the_scores(sales, app, post, runner,
                                                                              content_dir):
    (content_dir / "scoring.yml").write_text(RULES, encoding="utf-8")
    post("ann@example.com", spam=CLEAN)
    for n in range(3):
        post(f"bot{n}@spam.example")

    assert "spam.example" not in text_of(page(sales, "/workspace/"))
    with sales.get("/workspace/leads.csv") as export:
        assert "spam.example" not in export.get_data(as_text=True)
    made = runner.invoke(args=["token", "create", "sam.sales@example.com", "--name", "CRM sync"])
    token = re.search(r"lg_\S+", made.output).group(0)
    with app.test_client().get("/api/leads.csv", headers={"Authorization": f"Bearer {token}"}) as api:
        assert api.status_code == 200 and "ann@example.com" in api.get_data(as_text=True)
        assert "spam.example" not in api.get_data(as_text=True)
    exported = runner.invoke(args=["export"])
    assert exported.exit_code == 0 and "ann@example.com" in exported.output and "spam.example" not in exported.output
    report = json.loads(runner.invoke(args=["report", "--format", "json"]).output)
    assert report["total"]["leads"] == 1
    assert "1 lead(s) scored" in runner.invoke(args=["rescore", "--all"]).output
    assert count(app, Lead) == 1 and count(app, HeldPost) == 3


# --- The command line ------------------------------------------------------------------------

def test_spam_list(app, post, runner):
    now = utcnow()
    post("old@spam.example", at=now - timedelta(days=5))
    post("fast@spam.example", spam=judge([reason("too_fast", "0.4 s"), reason("no_origin")]), resource_id="scoring")
    with get_store(app).read() as s:
        ids = dict(s.execute(select(HeldPost.email, HeldPost.id)).all())

    table = runner.invoke(args=["spam", "list"])
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split() == ["id", "time", "(UTC)", "email", "resource", "score", "reasons"]
    assert lines[2].split()[3:] == ["fast@spam.example", "scoring", "1.5", "too_fast,", "no_origin"]
    assert lines[2].split()[0] == str(ids["fast@spam.example"])
    assert lines[3].split()[3:] == ["old@spam.example", "leads-vs-prospects", "1.0", "honeypot"]
    assert lines[4] == "2 posts waiting. Release one a person sent with `leadgate spam release ID --by YOUR_EMAIL`."

    recent = runner.invoke(args=["spam", "list", "--days", "2"])
    assert "fast@spam.example" in recent.output and "old@spam.example" not in recent.output

    objects = [json.loads(line) for line in runner.invoke(args=["spam", "list", "--json"]).output.splitlines()]
    assert objects[0]["email"] == "fast@spam.example" and objects[0]["score"] == 1.5
    assert objects[0]["reasons"] == [{"signal": "too_fast", "weight": 1.0, "detail": "0.4 s"},
                                     {"signal": "no_origin", "weight": 0.5,
                                      "detail": "Neither an Origin nor a Referer header: browsers send one with a form."}]
    assert uuid.UUID(objects[0]["uid"]) and datetime.fromisoformat(objects[0]["created_at"]).tzinfo == UTC


def test_spam_list_of_an_empty_folder(runner):
    assert runner.invoke(args=["spam", "list"]).output == "No posts are waiting in the spam folder.\n"
    assert runner.invoke(args=["spam", "list", "--days", "1"]).output == (
        "No posts from the last 1 day are waiting in the spam folder.\n")


def test_spam_release_from_the_command_line(app, post, runner):
    add_user(runner)
    first, second = post("ann@example.com"), post("bob@example.com")
    with get_store(app).read() as s:
        ids = dict(s.execute(select(HeldPost.email, HeldPost.id)).all())
    result = runner.invoke(args=["spam", "release", str(ids["ann@example.com"]), str(second.uid),
                                 "--by", "Sam.Sales@example.com"])
    assert result.exit_code == 0, result.output
    with get_store(app).read() as s:
        leads = dict(s.execute(select(Lead.email, Lead.id)).all())
    assert result.output.splitlines() == [
        f"{ids['ann@example.com']} ann@example.com: released as lead {leads['ann@example.com']} (by sam.sales@example.com)",
        f"{ids['bob@example.com']} bob@example.com: released as lead {leads['bob@example.com']} (by sam.sales@example.com)"]
    with get_store(app).read() as s:
        assert set(s.scalars(select(Submission.uid))) == {first.uid, second.uid}


@pytest.mark.parametrize(("args", "message"), [
    (["spam", "release", "1", "--by", "nobody@example.com"],
     "Error: --by: There is no account for nobody@example.com*"),
    (["spam", "release", "1", "--by", "mia@example.com"],
     "Error: --by: mia@example.com is a marketing account: only sales and admin accounts release posts "
     "from the spam folder."),
    (["spam", "release", "1", "999", "nope", "--by", "sam.sales@example.com"],
     "Error: no post 999, nope in the spam folder (a wrong number, or deleted or purged): see "
     "`leadgate spam list`; nothing was released."),
    (["spam", "release", "--by", "sam.sales@example.com"], "Error: Missing argument 'ID…'."),
    (["spam", "purge", "--days", "0"], "Error: Invalid value for '--days': 0 is not in the range x>=1."),
    (["spam", "list", "--days", "week"], "Error: Invalid value for '--days': 'week' is not a valid integer range."),
])
def test_every_mistake_is_one_line_saying_what_to_do(app, post, runner, args, message):
    import fnmatch

    add_user(runner)
    add_user(runner, "mia@example.com", role="marketing")
    post()
    result = runner.invoke(args=args)
    assert result.exit_code in (1, 2)
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and fnmatch.fnmatchcase(lines[0], message), result.output
    assert (count(app, HeldPost), count(app, Lead)) == (1, 0)


# --- From the form to the folder --------------------------------------------------------------

def test_a_bot_filling_the_hidden_field_ends_up_in_the_folder(client, runner, form_post, app):
    answer = client.post("/submit", data=form_post(email="bot@spam.example", website="http://cheap-pills.example"))
    assert answer.status_code == 303
    assert client.get(answer.headers["Location"]).status_code == 200
    assert count(app, Lead) == 0
    signed_in(client, runner)
    words = text_of(page(client))
    assert "bot@spam.example" in words and "Honeypot +1.0" in words
