"""One way to fail: visitors see the site's own page, staff the workspace's, scripts JSON."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from capture.db.store import get_store
from staff import signed_in
from test_build import build_site

JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped content's structure built for real, once: Material's header, nav and fonts."""
    root = tmp_path_factory.mktemp("errors")
    content = root / "content"
    shutil.copytree(Path(__file__).resolve().parent.parent / "content", content)
    return build_site(content, root / "site")


@pytest.fixture
def site_client(make_app, built_site: Path):
    return make_app(SITE_DIR=str(built_site)).test_client()


@pytest.mark.parametrize(("path", "status", "title", "message"), [
    ("/no-such-page/at-all", 404, "Page not found", "There is nothing at this address."),
    ("/download/not-a-token", 404, "Page not found", "The link may be mistyped or incomplete."),
    ("/thanks/not-a-token", 404, "Page not found", "There is nothing at this address."),
])
def test_a_visitor_error_page_is_the_site_s_own_page(site_client, path, status, title, message):
    page = site_client.get(path)
    assert page.status_code == status
    html = page.get_data(as_text=True)
    assert 'class="md-header' in html and 'class="md-nav' in html  # the site's header and navigation
    assert "assets/stylesheets/main" in html  # Material's own styles, so its fonts and colours
    assert f"<title>{title} - Test site</title>" in html
    assert f"<h1>{title}</h1>" in html and message in html
    assert "Thank you" not in html  # the shell page's own heading and title are replaced


def test_a_visitor_error_page_without_a_built_site_is_still_a_page(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert "<h1>Page not found</h1>" in page.get_data(as_text=True)


def test_scripts_get_the_same_refusal_as_json(site_client):
    answer = site_client.get("/download/not-a-token", headers=JSON)
    assert answer.status_code == 404
    assert answer.get_json() == {"ok": False, "title": "Page not found", "error": (
        "There is nothing at this address. The link may be mistyped or incomplete.")}


def test_api_errors_are_json_whatever_the_client_accepts(client):
    answer = client.get("/api/no-such-endpoint", headers={"Accept": "text/html"})
    assert answer.status_code == 404
    assert answer.get_json()["ok"] is False and answer.get_json()["error"]


def test_a_database_failure_in_the_workspace_speaks_to_staff(app, client, runner):
    """Sales are not told to "submit again": they get the workspace's page, in their words."""
    signed_in(client, runner)
    with get_store(app).engine.begin() as conn:
        conn.execute(text("ALTER TABLE leads RENAME TO leads_elsewhere"))  # what the list reads
    app.config["PROPAGATE_EXCEPTIONS"] = False
    page = client.get("/workspace/")
    assert page.status_code == 503
    html = page.get_data(as_text=True)
    assert "The database is not answering" in html and "leadgate db current" in html
    assert "submit again" not in html and "Your details" not in html
    assert "Leadgate workspace" in html and "Sign out" in html  # the workspace's own layout


def test_an_unknown_lead_is_a_workspace_page(client, runner):
    signed_in(client, runner)
    page = client.get("/workspace/leads/999")
    assert page.status_code == 404
    html = page.get_data(as_text=True)
    assert "Lead not found" in html and "Back to the leads" in html and "Sign out" in html


def test_bad_workspace_export_filters_are_named_on_the_workspace_page(client, runner):
    signed_in(client, runner)
    page = client.get("/workspace/leads.csv?from=yesterday")
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "Cannot export these leads" in html and "from" in html and "YYYY-MM-DD" in html
    assert "Sign out" in html


MATERIAL_LIKE = """<!doctype html><html><head><title>{title} - Test site</title></head><body>
<div class="md-header__topic" data-md-component="header-topic"><span class="md-ellipsis">
  {title}
</span></div><nav><a href="/x/">Thank you</a><a href="/y/">Notes - part 2</a></nav>
<!--leadgate:thanks--><h1>{title}</h1><!--/leadgate:thanks--></body></html>"""


@pytest.mark.parametrize("shell_title", ["Thank you", "Thanks - and welcome"])
def test_a_message_takes_the_shell_s_title_only_where_the_theme_shows_it(make_app, tmp_path, shell_title):
    (tmp_path / "site" / "thanks").mkdir(parents=True)
    (tmp_path / "site" / "thanks" / "index.html").write_text(
        MATERIAL_LIKE.format(title=shell_title), encoding="utf-8")
    html = make_app(SITE_DIR=str(tmp_path / "site")).test_client().get("/nowhere").get_data(as_text=True)
    assert "<title>Page not found - Test site</title>" in html
    topic = html.split('data-md-component="header-topic">')[1].split("</div>")[0]
    assert "Page not found" in topic and shell_title not in topic
    assert '<a href="/x/">Thank you</a><a href="/y/">Notes - part 2</a>' in html  # the nav as it was


def test_the_workspace_says_the_database_is_down_even_when_sign_in_cannot_be_read(app, client, runner):
    signed_in(client, runner)
    with get_store(app).engine.begin() as conn:
        conn.execute(text("DROP TABLE api_tokens"))
        conn.execute(text("DROP TABLE staff_sessions"))
        conn.execute(text("DROP TABLE users"))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    page = client.get("/workspace/")
    assert page.status_code == 503
    html = page.get_data(as_text=True)
    assert "The database is not answering" in html and "Leadgate workspace" in html
    assert page.headers["Cache-Control"] == "private, no-store" and "frame-ancestors 'none'" in (
        page.headers["Content-Security-Policy"])


def test_an_unknown_workspace_address_is_a_workspace_page_with_its_headers(client):
    page = client.get("/workspace/no/such/page")
    assert page.status_code == 404
    assert "Leadgate workspace" in page.get_data(as_text=True)
    assert page.headers["X-Frame-Options"] == "DENY"


def test_a_download_the_database_cannot_log_asks_to_try_the_link_again(make_app, form_post):
    app = make_app()
    client = app.test_client()
    link = client.post("/submit", data=form_post(), headers=JSON).get_json()["download_url"]
    with get_store(app).engine.begin() as conn:
        conn.execute(text("DROP TABLE downloads"))
    page = client.get(link)
    assert page.status_code == 503
    html = page.get_data(as_text=True)
    assert "try it again in a minute" in html and "submit again" not in html
