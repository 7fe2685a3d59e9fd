"""Posting the download form, as a browser without JavaScript and as the page script."""

from __future__ import annotations

import html
import re

import pytest
from conftest import SITE_ORIGIN
from sqlalchemy import func, select

from capture.web.forms import STALE_PAGE, TERMS_REQUIRED
from capture.db.models import ConsentEvent, ConsentTextRow, Lead, Submission

from leads import find_lead

JSON = {"Accept": "application/json"}
LANDING = "http://localhost/resources/leads-vs-prospects/"


def count(store, model) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def message_beside(page: str, field: str) -> str:
    """The text of the error paragraph the form template puts beside a field."""
    m = re.search(rf'<p[^>]*id="error-{field}"[^>]*>(.*?)</p>', page, re.S)
    assert m, f"no error-{field} element"
    return html.unescape(m.group(1)).strip()


def only_submission(store) -> Submission:
    with store.read() as s:
        return s.scalars(select(Submission)).one()


def test_plain_post_redirects_to_a_thank_you_page_with_the_link(client, form_post, store):
    response = client.post("/submit", data=form_post())
    assert response.status_code == 303
    assert "/thanks/" in response.headers["Location"]

    thanks = client.get(response.headers["Location"])
    page = thanks.get_data(as_text=True)
    assert thanks.status_code == 200
    assert "Leads versus prospects" in page
    link = re.search(r'href="http://localhost(/download/[^"]+)"', page).group(1)
    with client.get(link) as download:
        assert download.status_code == 200
    assert thanks.headers["Cache-Control"] == "private, no-store"
    assert thanks.headers["Referrer-Policy"] == "no-referrer"
    assert count(store, Lead) == 1


def test_script_post_gets_json_with_the_links(client, form_post, store):
    response = client.post("/submit", data=form_post("scoring"), headers=JSON)
    assert response.status_code == 201
    body = response.get_json()
    assert body["ok"] is True
    assert body["resource"] == {"id": "scoring", "title": "Lead scoring sales trusts"}
    assert body["download_url"].startswith("http://localhost/download/")
    assert body["thanks_url"].startswith("http://localhost/thanks/")
    with client.get(body["download_url"]) as download:
        assert download.status_code == 200
    assert only_submission(store).resource_id == "scoring"


INVALID = [
    ("email", "ann@", "There must be something after the @-sign."),
    ("first_name", "A" * 101, "First name must be at most 100 characters."),
    ("last_name", "Lee\x00", "Last name must be one line of text, without tabs or other control characters."),
    ("company", "C" * 201, "Company must be at most 200 characters."),
    ("job_title", "J" * 151, "Job title must be at most 150 characters."),
    ("company_size", "huge", "Choose a company size from the list."),
    ("industry", "Crypto", "Choose an industry from the list."),
    ("terms", "on", TERMS_REQUIRED),
]


@pytest.mark.parametrize("accept, answer", [
    ("", 303),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", 303),  # a browser
    ("*/*", 303),
    ("application/json", 201),
    ("Application/JSON", 201),
    ("application/*", 201),
    ("text/html;q=0.5, application/json", 201),
    ("application/json;q=0.5, text/html", 303),
])
def test_the_answer_follows_the_accept_header(client, form_post, accept, answer):
    response = client.post("/submit", data=form_post(), headers={"Accept": accept})
    assert response.status_code == answer
    assert (response.is_json, "Location" in response.headers) == (answer == 201, answer == 303)


@pytest.mark.parametrize(("field", "value", "message"), INVALID)
def test_invalid_field_shows_its_message_beside_it(client, form_post, store, field, value, message):
    response = client.post("/submit", data=form_post(**{field: value}))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message_beside(page, field) == message
    assert message_beside(page, "email" if field != "email" else "company") == ""
    assert count(store, Lead) == count(store, Submission) == 0


@pytest.mark.parametrize(("field", "value", "message"), INVALID)
def test_invalid_field_in_json(client, form_post, store, field, value, message):
    response = client.post("/submit", data=form_post(**{field: value}), headers=JSON)
    assert response.status_code == 422
    assert response.get_json() == {"ok": False, "title": "Please check the form",
                                   "error": "Some fields need your attention.", "errors": {field: [message]}}
    assert count(store, Lead) == count(store, Submission) == 0


def test_the_form_comes_back_with_what_was_typed_escaped(client, form_post):
    response = client.post("/submit", data=form_post(
        email="nope", first_name='<script>alert("x")</script>', marketing_opt_in="yes"))
    page = response.get_data(as_text=True)
    assert "<script>alert" not in page
    assert 'value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in page
    assert 'value="nope"' in page
    assert re.search(r'name="marketing_opt_in"[^>]*checked', page)
    assert 'action="http://localhost/submit"' in page


def test_hidden_field_errors_are_listed_above_the_form(client, form_post):
    response = client.post("/submit", data=form_post(utm_source="s" * 201))
    assert response.status_code == 422
    assert "Campaign source must be at most 200 characters." in response.get_data(as_text=True)


def test_unknown_resource(client, form_post, store):
    response = client.post("/submit", data=form_post(resource_id="gone"))
    assert response.status_code == 422
    assert "This resource is not available any more." in response.get_data(as_text=True)
    response = client.post("/submit", data=form_post(resource_id="gone"), headers=JSON)
    assert response.get_json()["errors"] == {"resource_id": ["This resource is not available any more."]}
    assert count(store, Submission) == 0


def test_returning_visitor_gets_the_resource_again_as_the_same_lead(client, form_post, store):
    first = client.post("/submit", data=form_post(email="Ann.Lee@example.com", company="Acme"))
    again = client.post("/submit", data=form_post("scoring", email="ann.lee@EXAMPLE.COM", company=""))
    assert first.status_code == again.status_code == 303
    assert client.get(again.headers["Location"]).status_code == 200
    assert count(store, Lead) == 1
    assert count(store, Submission) == 2
    assert find_lead(store, "ann.lee@example.com").company == "Acme"


def test_consent_is_recorded_with_words_version_ticks_and_network(client, form_post, store, catalog):
    response = client.post("/submit", data=form_post(marketing_opt_in="yes"),
                           environ_base={"REMOTE_ADDR": "203.0.113.57"})
    assert response.status_code == 303
    submission = only_submission(store)
    terms, marketing = catalog.settings.terms, catalog.settings.marketing
    assert (submission.terms_accepted, submission.terms_version, submission.terms_sha256) == (
        True, terms.version, terms.sha256)
    assert (submission.marketing_opt_in, submission.marketing_version, submission.marketing_sha256) == (
        True, marketing.version, marketing.sha256)
    assert submission.ip_prefix == "203.0.113.0/24"
    with store.read() as s:
        events = {e.kind: e for e in s.scalars(select(ConsentEvent))}
        words = {row.sha256: row.text for row in s.scalars(select(ConsentTextRow))}
    assert events["terms"].granted and events["marketing"].granted
    assert events["terms"].ip_prefix == "203.0.113.0/24"
    assert words[terms.sha256] == terms.text
    assert words[marketing.sha256] == marketing.text


@pytest.mark.parametrize("posted", ["0", "off", "false", None])
def test_unticked_marketing_is_not_consent(client, form_post, store, posted):
    assert client.post("/submit", data=form_post(marketing_opt_in=posted)).status_code == 303
    assert only_submission(store).marketing_opt_in is False
    with store.read() as s:
        marketing = s.scalars(select(ConsentEvent).where(ConsentEvent.kind == "marketing")).one()
    assert marketing.granted is False


def test_ipv6_is_kept_as_its_48_network(client, form_post, store):
    client.post("/submit", data=form_post(), environ_base={"REMOTE_ADDR": "2001:db8:abcd:12::1"})
    assert only_submission(store).ip_prefix == "2001:db8:abcd::/48"


@pytest.mark.parametrize(("proxies", "network"), [(0, "127.0.0.0/24"), (1, "203.0.113.0/24")])
def test_forwarded_address_is_trusted_only_behind_a_configured_proxy(make_app, form_post, store,
                                                                     proxies, network):
    client = make_app(PROXY_FIX_X_FOR=proxies).test_client()
    client.post("/submit", data=form_post(), headers={"X-Forwarded-For": "203.0.113.9"})
    assert only_submission(store).ip_prefix == network


def test_without_javascript_utm_comes_from_the_referer(client, form_post, store):
    blank = {name: "" for name in ("utm_source", "utm_medium", "utm_campaign", "utm_term",
                                   "utm_content", "referrer", "landing_page")}
    referer = f"{LANDING}?utm_source=linkedin&utm_medium=social&utm_campaign=q4-launch"
    client.post("/submit", data=form_post(**blank), headers={"Referer": referer})
    submission = only_submission(store)
    assert (submission.utm_source, submission.utm_medium, submission.utm_campaign) == (
        "linkedin", "social", "q4-launch")
    assert submission.landing_page == referer


def test_referer_of_the_allowed_site_counts_too(client, form_post, store):
    blank = {name: "" for name in ("utm_source", "utm_medium", "utm_campaign", "landing_page")}
    referer = f"{SITE_ORIGIN}/resources/scoring/?utm_source=ads"
    client.post("/submit", data=form_post(**blank), headers={"Referer": referer, "Origin": SITE_ORIGIN})
    assert only_submission(store).utm_source == "ads"


def test_referer_of_another_site_is_not_a_source(client, form_post, store):
    blank = {name: "" for name in ("utm_source", "utm_medium", "utm_campaign", "landing_page")}
    client.post("/submit", data=form_post(**blank),
                headers={"Referer": "https://site.example.com.evil.net/?utm_source=spoof"})
    submission = only_submission(store)
    assert submission.utm_source == "" and submission.landing_page == ""


def test_posted_source_fields_win_over_the_referer(client, form_post, store):
    client.post("/submit", data=form_post(), headers={"Referer": f"{LANDING}?utm_source=other"})
    assert only_submission(store).utm_source == "newsletter"


@pytest.mark.parametrize(("origin", "status"), [
    (None, 201),
    ("http://localhost", 201),
    (SITE_ORIGIN, 201),
    ("https://SITE.example.com", 201),
    ("https://site.example.com.evil.net", 403),
    ("https://evil.example", 403),
    ("http://site.example.com", 403),
    ("https://site.example.com:8443", 403),
    ("null", 403),
])
def test_only_allowed_origins_may_post(client, form_post, store, origin, status):
    headers = {**JSON, **({"Origin": origin} if origin else {})}
    response = client.post("/submit", data=form_post(), headers=headers)
    assert response.status_code == status
    if status == 403:
        assert response.get_json() == {"ok": False, "title": "Not allowed",
                                       "error": "This form cannot be sent from the page it was on."}
        assert count(store, Submission) == 0


def test_forbidden_origin_gets_a_page_without_javascript(client, form_post):
    response = client.post("/submit", data=form_post(), headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "This form cannot be sent from the page it was on." in response.get_data(as_text=True)


def test_cors_headers_for_the_allowed_site(client, form_post):
    response = client.post("/submit", data=form_post(), headers={**JSON, "Origin": SITE_ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == SITE_ORIGIN
    assert "Origin" in response.headers["Vary"]

    invalid = client.post("/submit", data=form_post(email="x"), headers={**JSON, "Origin": SITE_ORIGIN})
    assert invalid.status_code == 422
    assert invalid.headers["Access-Control-Allow-Origin"] == SITE_ORIGIN

    same_host = client.post("/submit", data=form_post(), headers={**JSON, "Origin": "http://localhost"})
    assert "Access-Control-Allow-Origin" not in same_host.headers


def test_cors_preflight(client):
    allowed = client.options("/submit", headers={
        "Origin": SITE_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == SITE_ORIGIN
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]

    refused = client.options("/submit", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_oversized_post_is_refused(client, form_post, store):
    big = form_post(company="C" * 70_000)
    response = client.post("/submit", data=big, headers=JSON)
    assert response.status_code == 413
    assert response.get_json()["ok"] is False
    assert "more data than the service accepts" in response.get_json()["error"]
    page = client.post("/submit", data=big)
    assert page.status_code == 413
    assert "more data than the service accepts" in page.get_data(as_text=True)
    assert count(store, Submission) == 0


def test_page_built_with_old_consent_words_is_out_of_date(client, form_post, store):
    response = client.post("/submit", data=form_post(terms_sha256="0" * 64), headers=JSON)
    assert response.status_code == 409
    assert response.get_json()["error"] == STALE_PAGE

    page = client.post("/submit", data=form_post(terms_sha256="0" * 64))
    assert page.status_code == 409
    text = page.get_data(as_text=True)
    assert STALE_PAGE in text
    # The form that comes back carries today's words, so submitting it again works.
    fresh = dict(re.findall(r'<input type="hidden" name="(\w+_sha256)" value="([0-9a-f]{64})"', text))
    assert client.post("/submit", data=form_post(**fresh)).status_code == 303
    assert count(store, Submission) == 1


def test_words_recorded_before_a_change_are_still_accepted(make_app, content_dir, form_post, store):
    old_terms = form_post()["terms_sha256"]
    assert make_app().test_client().post("/submit", data=form_post()).status_code == 303
    (content_dir / "leadgate.yml").write_text(
        "consent:\n  terms:\n    version: terms-2027-01\n    text: New wording of the terms.\n",
        encoding="utf-8")
    restarted = make_app().test_client()
    response = restarted.post("/submit", data=form_post(email="bob@example.com", terms_sha256=old_terms))
    assert response.status_code == 303
    with store.read() as s:
        versions = s.scalars(select(Submission.terms_version)).all()
    assert versions == ["terms-2026-11", "terms-2026-11"]


def test_database_and_spool_failure_answers_503_and_says_try_again(make_app, tmp_path, form_post):
    broken = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'missing-folder' / 'leadgate.db'}",
                      SPOOL_PATH=str(tmp_path / "missing-folder" / "spool.jsonl"))
    client = broken.test_client()
    response = client.post("/submit", data=form_post(), headers=JSON)
    assert response.status_code == 503
    assert response.get_json()["ok"] is False
    assert "submit again" in response.get_json()["error"]
    page = client.post("/submit", data=form_post())
    assert page.status_code == 503
    assert "Nothing was stored" in page.get_data(as_text=True)


def test_error_pages_for_people_and_json_for_scripts(app, client):
    app.add_url_rule("/boom", "boom", lambda: 1 / 0)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    for path, method, status in [("/nowhere", "get", 404), ("/submit", "get", 405), ("/boom", "get", 500)]:
        page = getattr(client, method)(path)
        assert page.status_code == status
        assert page.mimetype == "text/html"
        scripted = getattr(client, method)(path, headers=JSON)
        assert scripted.status_code == status
        assert scripted.get_json()["ok"] is False and scripted.get_json()["error"]
    assert "POST" in client.get("/submit").headers["Allow"]


def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok")


SHELL = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="../../assets/site.css"></head><body><header>Acme Resources</header>
{region}<footer>Acme footer</footer></body></html>"""


def test_pages_use_the_built_site_as_shell(make_app, tmp_path, form_post):
    site = tmp_path / "site"
    landing = site / "resources" / "leads-vs-prospects"
    landing.mkdir(parents=True)
    (landing / "index.html").write_text(SHELL.format(
        title="Leads versus prospects",
        region="<!--leadgate:form--><form>static form</form><!--/leadgate:form-->"), encoding="utf-8")
    (site / "thanks").mkdir()
    (site / "thanks" / "index.html").write_text(SHELL.format(
        title="Thank you", region="<!--leadgate:thanks--><p>Submit a form first.</p><!--/leadgate:thanks-->"),
        encoding="utf-8")
    client = make_app(SITE_DIR=str(site)).test_client()

    page = client.post("/submit", data=form_post(email="nope")).get_data(as_text=True)
    assert "Acme Resources" in page and "Acme footer" in page
    assert "static form" not in page
    assert '<base href="http://localhost/resources/leads-vs-prospects/">' in page
    assert message_beside(page, "email") == "An email address must have an @-sign."

    thanks = client.get(client.post("/submit", data=form_post()).headers["Location"])
    text = thanks.get_data(as_text=True)
    assert "Acme footer" in text and "Submit a form first." not in text
    assert '<base href="http://localhost/thanks/">' in text
    assert re.search(r'href="http://localhost/download/[^"]+"', text)  # absolute: the base is the site's


def test_without_javascript_a_corrected_post_keeps_the_campaign(client, form_post, store):
    """JavaScript off: the first post has an error and comes back at /submit; the corrected post
    (whose Referer is now /submit) still stores the campaign and the real landing page."""
    blank = {name: "" for name in ("utm_source", "utm_medium", "utm_campaign", "utm_term",
                                   "utm_content", "referrer", "landing_page")}
    referer = f"{LANDING}?utm_source=newsletter&utm_medium=email&utm_campaign=nov"
    again = client.post("/submit", data=form_post(**blank, email="nope"), headers={"Referer": referer})
    assert again.status_code == 422
    page = again.get_data(as_text=True)
    hidden = dict(re.findall(r'<input type="hidden" name="([a-z_]+)"[^>]*value="([^"]*)"', page))
    assert (hidden["utm_source"], hidden["utm_medium"], hidden["utm_campaign"]) == ("newsletter", "email", "nov")
    assert hidden["landing_page"] == referer.replace("&", "&amp;")
    corrected = {**form_post(), **{name: html.unescape(value) for name, value in hidden.items()}}
    assert client.post("/submit", data=corrected, headers={"Referer": "http://localhost/submit"}).status_code == 303
    submission = only_submission(store)
    assert (submission.utm_source, submission.utm_medium, submission.utm_campaign) == ("newsletter", "email", "nov")
    assert submission.landing_page == referer


def test_the_form_sent_back_links_the_privacy_notice(make_app, content_dir, form_post):
    (content_dir / "privacy.md").write_text("# Privacy notice\n", encoding="utf-8")
    page = make_app().test_client().post("/submit", data=form_post(email="nope")).get_data(as_text=True)
    label = page.split('for="leadgate-terms">')[1].split("</label>")[0]
    assert re.search(r'<a href="http://localhost/privacy/"[^>]*>privacy notice</a>', label)


def test_without_a_privacy_notice_the_form_sent_back_has_plain_words(client, form_post):
    page = client.post("/submit", data=form_post(email="nope")).get_data(as_text=True)
    label = page.split('for="leadgate-terms">')[1].split("</label>")[0]
    assert "<a " not in label and "privacy notice" in label
