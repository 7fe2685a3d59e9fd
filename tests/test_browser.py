"""A visitor in a real browser: headless Debian Chromium driven by Playwright, against `leadgate serve`.

The workspace tests save screenshots of the lead list, a lead's page and the dashboard, at a
laptop's width and a phone's; they land in a temporary folder, or in $LEADGATE_SCREENSHOT_DIR when set
(``LEADGATE_SCREENSHOT_DIR=docs/screenshots`` refreshes the ones the docs show).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from capture.catalog import ConsentText, load_catalog
from capture.db.models import Submission
from capture.db.store import Store
from capture.leads.stages import Actor, Move, move_stage
from capture.leads.submission import NewSubmission, record_submission
from capture.scoring.apply import load_scoring
from leads import consent_events, find_lead
from live import LiveServer

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: The live server's DOWNLOAD_MAX_AGE: not the default week, so "2 hours" can only come from it.
LINK_MAX_AGE = 2 * 3600
#: The live server's FORM_MIN_SECONDS: Playwright fills a form faster than any person, so the
#: flows that do not wait would be held as too fast with the default 3 s; one test waits.
FORM_MIN_SECONDS = 1
# Flags for a closed network: no background fetches, no sandbox (CI runs as root).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: A phone's screen: the narrow layout shows every element (the form below the copy, the jump link).
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
CONTRAST_JS = (Path(__file__).parent / "contrast.js").read_text(encoding="utf-8")

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError("Chromium is required on CI: .ci/run installs Debian's chromium package")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True)
    yield context.new_page()
    context.close()


def test_visitor_downloads_ebook_and_sales_sees_the_source(live_server, page):
    base = live_server.url
    page.goto(f"{base}/?utm_source=newsletter&utm_medium=email&utm_campaign=november")
    # The UTM fields were on the first page only; the form is two clicks away.
    page.get_by_role("link", name="Resources", exact=True).first.click()
    page.get_by_role("link", name="Telling leads from prospects").first.click()
    assert "utm_source" not in page.url

    page.get_by_label("Work email").fill("Ada.Lovelace@Example.COM")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Company", exact=True).fill("Analytical Engines")
    page.get_by_label("Company size (employees)").select_option("11-50")
    page.locator("input[name=terms]").check()
    # The page script fetched a form token when the form was shown; a person takes longer than
    # the live server's FORM_MIN_SECONDS to fill the form in (Playwright does not).
    page.wait_for_function("document.querySelector('input[name=form_token]').value !== ''")
    page.wait_for_timeout(FORM_MIN_SECONDS * 1000 + 200)
    page.locator("form[data-leadgate-form] button[type=submit]").click()

    link = page.locator("a[href*='/download/']")
    link.wait_for(timeout=15_000)
    # The note says how long the link lasts, as the thank-you page does (LINK_MAX_AGE).
    assert "The link is made for you and works for 2 hours." in page.locator(".leadgate-success").inner_text()
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "telling-leads-from-prospects.pdf"
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"

    rows = [r for r in live_server.export_rows() if r["email"] == "Ada.Lovelace@example.com"]
    assert len(rows) == 1
    row = rows[0]
    assert row["first_utm_source"] == "newsletter"
    assert row["first_utm_medium"] == "email"
    assert row["first_utm_campaign"] == "november"
    assert row["first_landing_page"].startswith(f"{base}/?utm_source=newsletter")
    assert row["resources"] == "telling-leads-from-prospects"
    assert row["marketing_opt_in"] == "no"

    store = Store(live_server.database_url)
    try:
        lead = find_lead(store, "ada.lovelace@example.com")
        events = consent_events(store, lead.id)
        with store.read() as s:
            submissions = s.scalars(select(Submission).where(Submission.lead_id == lead.id)).all()
    finally:
        store.dispose()
    terms = [e for e in events if e.kind == "terms"]
    assert len(terms) == 1 and terms[0].granted
    # A clean post: its token was signed and old enough, its Origin the site's.
    assert [(sub.spam_score, sub.spam_reasons) for sub in submissions] == [(0.0, "")]
    assert terms[0].version == row["terms_version"]
    assert len(terms[0].sha256) == 64
    assert [e.granted for e in events if e.kind == "marketing"] == [False]


def test_a_form_token_that_cannot_be_fetched_does_not_stop_the_form(live_server, page):
    """A blocker or a network fault eats the token request: the form is sent without one."""
    page.route("**/form-token", lambda route: route.abort())
    page.goto(f"{live_server.url}/resources/lead-scoring-sales-trusts/")
    page.get_by_label("Work email").fill("blocked.token@example.org")
    page.locator("input[name=terms]").check()
    page.wait_for_timeout(FORM_MIN_SECONDS * 1000 + 200)
    assert page.locator("input[name=form_token]").input_value() == ""
    page.locator("form[data-leadgate-form] button[type=submit]").click()
    page.locator("a[href*='/download/']").wait_for(timeout=15_000)

    store = Store(live_server.database_url)
    try:
        lead = find_lead(store, "blocked.token@example.org")
        with store.read() as s:
            [reasons] = s.scalars(select(Submission.spam_reasons).where(Submission.lead_id == lead.id)).all()
    finally:
        store.dispose()
    assert [signal for signal, _, _ in json.loads(reasons)] == ["token_missing"]


def test_without_javascript_the_plain_form_still_delivers(live_server, browser):
    context = browser.new_context(java_script_enabled=False, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/resources/lead-scoring-sales-trusts/?utm_source=linkedin")
        page.get_by_label("Work email").fill("grace@example.org")
        page.locator("input[name=terms]").check()
        page.locator("input[name=marketing_opt_in]").check()
        page.locator("form[data-leadgate-form] button[type=submit]").click()
        page.wait_for_url("**/thanks/**")
        token = page.url.rsplit("/thanks/", 1)[1]
        assert "This link is personal and works for 2 hours after your request." in page.inner_text("body")
        with page.expect_download() as info:
            page.locator("a[href*='/download/']").first.click()
        assert info.value.suggested_filename == "lead-scoring-sales-trusts.pdf"
    finally:
        context.close()

    row = next(r for r in live_server.export_rows() if r["email"] == "grace@example.org")
    assert row["first_utm_source"] == "linkedin"  # recovered from the Referer
    assert row["marketing_opt_in"] == "yes"
    # The access log shows the thank-you page and the download, not the link that opens them.
    log = live_server.log()
    assert '"GET /thanks/… HTTP/1.1" 200' in log and '"GET /download/… HTTP/1.1" 200' in log
    assert token not in log


def offered_schemes(page) -> list[dict[str, str]]:
    """The colour schemes a visitor can get on this page, plus Material's dark scheme (slate),
    which leadgate.css must serve too: a site turns it on with two lines of mkdocs.yml."""
    options = page.evaluate("""() => [document.body, ...document.querySelectorAll(
        "[data-md-component=palette] input[data-md-color-scheme]")].map((el) => ({
            scheme: el.dataset.mdColorScheme, primary: el.dataset.mdColorPrimary,
            accent: el.dataset.mdColorAccent}))""")
    if not any(o["scheme"] == "slate" for o in options):
        options.append({**options[0], "scheme": "slate"})
    return [dict(o) for o in {tuple(sorted(o.items())): o for o in options}.values()]


def use_scheme(page, option: dict[str, str]) -> None:
    """Switch the page as Material's palette toggle does, on the body's data attributes."""
    page.evaluate("""(o) => { const b = document.body.dataset;
        b.mdColorScheme = o.scheme; b.mdColorPrimary = o.primary; b.mdColorAccent = o.accent; }""",
                  option)


def low_contrast(where: str, *locators) -> list[str]:
    """Text under the located elements below WCAG AA (4.5:1, large text 3:1), one line each."""
    found = []
    for locator in locators:
        roots = locator.all()
        assert roots, f"{where}: nothing matches {locator}"
        for root in roots:
            for r in root.evaluate(CONTRAST_JS):
                if r["ratio"] < r["needed"]:
                    found.append(f"{where}: {r['element']} “{r['text']}” is {r['ratio']}:1, needs "
                                 f"{r['needed']}:1 ({r['colour']} on {r['background']})")
    return found


def test_leadgate_text_meets_wcag_aa_contrast_in_every_scheme(live_server, browser):
    """Kicker, tag chips, form labels and notes, messages, buttons (also under the pointer),
    the consent text and the success box, in each scheme, read from the painted page."""
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    landing = f"{live_server.url}/resources/telling-leads-from-prospects/"
    form = page.locator("form[data-leadgate-form]")
    submit = form.locator("button[type=submit]")
    failures = []
    try:
        page.goto(landing)
        for option in offered_schemes(page):
            scheme = option["scheme"]
            page.goto(landing)
            use_scheme(page, option)
            failures += low_contrast(f"{scheme}, landing page", page.locator(".leadgate-landing__header"), form)
            tag = page.locator(".leadgate-landing__header .leadgate-tag").first
            tag.hover()
            failures += low_contrast(f"{scheme}, tag under the pointer", tag)

            # A mistake the browser lets through and the service refuses: its messages show.
            page.get_by_label("Work email").fill("ada@localhost")
            page.locator("input[name=terms]").check()
            submit.click()
            page.locator("#error-email").wait_for()
            failures += low_contrast(f"{scheme}, form with messages", form)
            submit.hover()
            failures += low_contrast(f"{scheme}, button under the pointer", submit)

            page.get_by_label("Work email").fill(f"contrast.{scheme}@example.com")
            submit.click()
            page.locator(".leadgate-success").wait_for(timeout=15_000)
            failures += low_contrast(f"{scheme}, success box", page.locator(".leadgate-success"))

            page.goto(f"{live_server.url}/resources/")
            use_scheme(page, option)
            page.locator("[data-leadgate-catalog] a[data-leadgate-tag]").first.click()
            page.locator("[data-leadgate-catalog] a[aria-current]").first.wait_for()
            failures += low_contrast(f"{scheme}, catalog with a tag chosen",
                                     page.locator("[data-leadgate-catalog]"))
    finally:
        context.close()
    if failures:
        pytest.fail("text below WCAG AA contrast:\n" + "\n".join(failures), pytrace=False)


STAFF_EMAIL, STAFF_PASSWORD = "sam.sales@example.com", "correct horse battery"
NOW = datetime.now(UTC).replace(microsecond=0)
#: Long enough to have been broken mid-word ("Compa|ny", "formula@exam|ple.com"), short enough
#: to stay whole; and one address too long for any column, which may wrap anywhere.
LONG_COMPANY = "Formula Student Racing Engineering Consultancy International"
LONG_EMAIL = "procurement.department@formula-racing.example"
VERY_LONG_EMAIL = ("a.very.long.address.nobody.types.by.hand.but.the.form.allows"
                   "@mail.subdomain.of.a-long-company-name.example")
#: (email, first, last, company, job title, size, industry, source, [(resource, days ago)]).
PEOPLE = [
    (LONG_EMAIL, "Maximiliane", "Oberhauser-Lindqvist", LONG_COMPANY, "Head of Procurement", "201-1000",
     "Manufacturing", "newsletter", [("telling-leads-from-prospects", 9), ("lead-scoring-sales-trusts", 2)]),
    ("grace.hopper@navy.example", "Grace", "Hopper", "Naval Computing", "VP Engineering", "1001-5000",
     "Software", "linkedin", [("telling-leads-from-prospects", 6), ("lead-scoring-sales-trusts", 4),
                              ("mql-hand-off-checklist", 1)]),
    (VERY_LONG_EMAIL, "Al", "Long", "Acme", "Student", "1-10", "Education", "linkedin",
     [("telling-leads-from-prospects", 20)]),
    ("ann@acme.example", "Ann", "Lee", "Acme Analytics", "Marketing Manager", "51-200", "Software",
     "newsletter", [("lead-scoring-sales-trusts", 12)]),
    ("ravi.patel@northwind.example", "Ravi", "Patel", "Northwind Traders", "Director of Sales Operations",
     "201-1000", "Retail and e-commerce", "google", [("telling-leads-from-prospects", 15),
                                                     ("mql-hand-off-checklist", 8)]),
    ("oskar@fjord-systems.example", "Oskar", "Berg", "Fjord Systems", "CEO", "51-200", "Software",
     "partner", [("lead-scoring-sales-trusts", 30), ("telling-leads-from-prospects", 25)]),
    ("li.wei@gmail.com", "Li", "Wei", "", "Consultant", "", "", "google", [("mql-hand-off-checklist", 3)]),
]
#: Moves made before the tests, by a rep of the past, so every kind of badge shows.
EARLIER_MOVES = [
    ("ravi.patel@northwind.example", Move("sql", reason="Budget confirmed on the discovery call")),
    ("ravi.patel@northwind.example", Move("prospect", reason="Replied to the proposal", channel="call")),
    ("oskar@fjord-systems.example", Move("sql", reason="Asked for a demo")),
    ("oskar@fjord-systems.example", Move("customer", value=Decimal("24000"), currency="EUR")),
    ("li.wei@gmail.com", Move("disqualified", reason="no budget")),
]

#: Words under an element that the browser laid out over two lines or more. A word is a run
#: of non-space, or with hyphens=true, a run between spaces and hyphens (a name may wrap after
#: the hyphen of Oberhauser-Lindqvist; an address or a date is one word). A SHA-256 in <code>
#: may wrap anywhere.
BROKEN_WORDS_JS = """(el, hyphens) => {
    const broken = [];
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (node.parentElement.closest("code")) continue;   // a fingerprint, not words
        for (const match of node.textContent.matchAll(hyphens ? /[^\\s-]+/g : /\\S+/g)) {
            const range = document.createRange();
            range.setStart(node, match.index);
            range.setEnd(node, match.index + match[0].length);
            const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0)
                .map((r) => Math.round(r.top)));
            if (lines.size > 1) broken.push(match[0] + " on " + lines.size + " lines");
        }
    }
    return broken;
}"""


def broken_words(cells) -> list[str]:
    """Each (kind, locator, hyphens) whose text the browser broke inside a word, one line each."""
    return [f"{kind} “{cell.inner_text()}”: {', '.join(words)}" for kind, cell, hyphens in cells
            if (words := cell.evaluate(BROKEN_WORDS_JS, hyphens))]


def screenshots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("LEADGATE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@pytest.fixture(scope="module")
def workspace_server(tmp_path_factory):
    """`leadgate serve` on a database of its own, so the list holds only the leads set here.
    The workspace needs no site: an index page is all `serve --no-build` asks for."""
    workdir = tmp_path_factory.mktemp("workspace")
    (workdir / "site").mkdir()
    (workdir / "site" / "index.html").write_text("<!doctype html><title>Leadgate</title>\n")
    with LiveServer(workdir, build=False) as server:
        yield server


@pytest.fixture(scope="module")
def leads_to_list(workspace_server):
    """A sales account (added as a script adds it) and leads scored by the shipped rules, as
    their form posts scored them; some moved along the stages earlier."""
    server = workspace_server
    subprocess.run([server.leadgate, "user", "add", STAFF_EMAIL, "--role", "sales", "--password-stdin"],
                   input=STAFF_PASSWORD + "\n", env=server.env, cwd=server.cwd, text=True,
                   capture_output=True, check=True, timeout=60)
    catalog = load_catalog(Path(server.cwd) / "content")
    scoring = load_scoring(catalog)
    terms = ConsentText("terms", "terms-2026-11", "I agree that my details are stored.")
    marketing = ConsentText("marketing", "marketing-2026-11", "Send me news.")
    store = Store(server.database_url)
    try:
        for n, (email, first, last, company, title, size, industry, source, posts) in enumerate(PEOPLE):
            for resource_id, days_ago in posts:
                record_submission(store, NewSubmission(
                    email=email, first_name=first, last_name=last, company=company, job_title=title,
                    company_size=size, industry=industry, terms=terms, marketing=marketing,
                    marketing_opt_in=n % 2 == 0, resource_id=resource_id, utm_source=source,
                    utm_medium="email" if source == "newsletter" else "cpc", utm_campaign="november",
                    created_at=NOW - timedelta(days=days_ago)), scoring)
        rep = Actor("user", "rita.rep@example.com")
        for n, (email, move) in enumerate(EARLIER_MOVES):
            move_stage(store, find_lead(store, email).id, move, rep, threshold=scoring.threshold,
                       disqualify_reasons=("no budget",), currency="EUR",
                       now=NOW - timedelta(hours=len(EARLIER_MOVES) - n))
    finally:
        store.dispose()
    return PEOPLE


def sign_in_as_rep(page, base: str) -> None:
    page.goto(f"{base}/workspace/login")
    page.get_by_label("Email").fill(STAFF_EMAIL)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/workspace/")


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_workspace_list_breaks_no_word_and_never_scrolls_sideways(
        workspace_server, browser, leads_to_list, viewport, tmp_path):
    """Headers, names, titles, addresses, companies and dates keep each word on one line, at a
    laptop's width and a phone's; the list shows stage and score, best first, says how many
    leads it holds, and the date filter under "More filters" works."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    try:
        sign_in_as_rep(page, workspace_server.url)
        everyone = page.locator(".ws-total").inner_text()
        table = page.locator("table")
        scores = [int(s) for s in table.locator("tbody .ws-score__value").all_inner_texts()]
        stages = table.locator("tbody .ws-stage").all_inner_texts()

        cells = [("header", th, False) for th in table.locator("thead th").all()]
        for row in table.locator("tbody tr").all():
            td = row.locator("td")
            who = td.nth(2)
            cells += [("stage", td.nth(0), False), ("score", td.nth(1), False),
                      ("name", who.locator(".ws-who__link"), True), ("company", td.nth(3), True),
                      ("source", td.nth(4), True), ("last seen", td.nth(5), False),
                      ("first seen", td.nth(6), False)]
            if who.locator(".ws-who__title").count():
                cells.append(("job title", who.locator(".ws-who__title"), True))
            if who.locator(".ws-email").inner_text() != VERY_LONG_EMAIL:  # may wrap anywhere
                cells.append(("address", who.locator(".ws-email"), False))
        cells.append(("header bar", page.locator(".ws-header"), False))
        broken = broken_words(cells)

        sizes = page.evaluate("""() => { const box = document.querySelector("table").parentElement;
            return {page: document.scrollingElement.scrollWidth, window: window.innerWidth,
                    box: box.clientWidth, table: box.scrollWidth}; }""")
        very_long_width = table.locator(".ws-email", has_text=VERY_LONG_EMAIL).bounding_box()["width"]

        suffix = "-phone" if viewport is PHONE else ""
        page.screenshot(path=screenshots(tmp_path) / f"workspace-leads{suffix}.png", full_page=True)

        # Dates typed as the messages ask for them filter the list, and the total follows.
        page.get_by_text("More filters").click()
        since = NOW - timedelta(days=3)
        page.get_by_label("Sent a form from").fill(since.strftime("%Y-%m-%d"))
        page.get_by_role("button", name="Show leads").click()
        page.wait_for_url("**/workspace/?*")
        filtered = page.locator(".ws-total").inner_text()
    finally:
        context.close()

    assert everyone == f"{len(leads_to_list)} leads"
    recent = sum(any(NOW - timedelta(days=d) >= since.replace(hour=0, minute=0, second=0) for _, d in posts)
                 for *_, posts in leads_to_list)
    assert filtered == f"{recent} leads"
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    assert {"MQL", "Prospect", "Customer", "Disqualified", "Lead"} <= set(stages)
    if broken:
        pytest.fail("broken mid-word:\n" + "\n".join(broken), pytrace=False)
    # The page never scrolls sideways, nor does the list: a laptop shows every column, the very
    # long address included, and a phone a card per lead.
    assert sizes["page"] <= sizes["window"], sizes
    assert sizes["table"] <= sizes["box"], sizes
    # The address no column can hold wraps within 28em (420 px) instead of widening the table.
    assert very_long_width < 450, very_long_width


def test_rep_moves_the_top_lead_to_sql_and_the_timeline_shows_who_and_why(
        workspace_server, browser, leads_to_list, tmp_path):
    """Sign in, open the lead at the top of the list, read why it scores so, move it to SQL
    with a reason: the page says so and the timeline shows the move, who made it and why."""
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    try:
        sign_in_as_rep(page, workspace_server.url)
        top = page.locator("tbody tr").first
        assert top.locator(".ws-stage").inner_text() == "MQL"
        name = top.locator(".ws-who__link").inner_text()
        top.locator(".ws-who__link").click()
        page.wait_for_url("**/workspace/leads/*")
        assert page.locator("h1").inner_text() == name
        why = page.locator("section", has=page.locator("#why"))
        assert why.get_by_text('job title "vp"').is_visible()
        assert page.locator("#gap ~ p").first.inner_text().startswith("This lead is at or over the MQL threshold")
        # Only the moves the table allows from MQL are offered.
        offered = page.get_by_label("New stage").locator("option").evaluate_all(
            "(options) => options.map((o) => o.value)")
        assert offered == ["", "sql", "disqualified", "recycled"]

        page.get_by_label("New stage").select_option("sql")
        # The disqualification reasons show only when disqualifying.
        assert not page.get_by_label("Reason for disqualifying").is_visible()
        page.get_by_label("Reason", exact=True).fill("Called: evaluating tools for Q1, budget approved")
        page.get_by_role("button", name="Move", exact=True).click()
        page.wait_for_url("**/workspace/leads/*")
        notice = page.locator(".ws-notice").inner_text()
        last_change = page.locator(".ws-timeline li.ws-stage-change").last
        change, moved = last_change.inner_text(), last_change.locator(".ws-stage").all_inner_texts()
        badge = page.locator(".ws-leadhead .ws-stage").inner_text()
        page.screenshot(path=screenshots(tmp_path) / "workspace-lead.png", full_page=True)

        page.set_viewport_size(PHONE)
        page.reload()
        broken = broken_words([("heading", page.locator(".ws-leadhead"), True),
                               ("why this score", why, True),
                               ("timeline", page.locator(".ws-timeline"), True),
                               ("profile, consent and source", page.locator(".ws-lead__side"), True)])
        width = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
        page.screenshot(path=screenshots(tmp_path) / "workspace-lead-phone.png", full_page=True)
    finally:
        context.close()

    assert notice == "Moved to SQL."
    assert badge == "SQL"
    assert moved == ["MQL", "SQL"]
    assert f"by {STAFF_EMAIL}" in change
    assert "Called: evaluating tools for Q1, budget approved" in change
    assert width[0] <= width[1], width
    if broken:
        pytest.fail("broken mid-word:\n" + "\n".join(broken), pytrace=False)


def run_leadgate(server: LiveServer, *args: str, stdin: str | None = None) -> str:
    """A `leadgate` command on the server's database, as a person types it; its output."""
    done = subprocess.run([server.leadgate, *args], input=stdin, env=server.env, cwd=server.cwd,
                          text=True, capture_output=True, timeout=120)
    assert done.returncode == 0, f"leadgate {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory):
    """`leadgate serve` on a database a new user fills for a demo: `leadgate sample`, then a
    sales account added from a script."""
    workdir = tmp_path_factory.mktemp("dashboard")
    (workdir / "site").mkdir()
    (workdir / "site" / "index.html").write_text("<!doctype html><title>Leadgate</title>\n")
    with LiveServer(workdir, build=False) as server:
        run_leadgate(server, "sample", "--leads", "300")
        run_leadgate(server, "user", "add", STAFF_EMAIL, "--role", "sales", "--password-stdin",
                     stdin=STAFF_PASSWORD + "\n")
        yield server


def test_dashboard_shows_the_reports_funnel_on_a_laptop_and_a_phone(dashboard_server, browser, tmp_path):
    """Sign in, open the dashboard from the header: its funnel counts the leads and MQLs that
    `leadgate report` counts for the same days (the last 90), and at a laptop's width and a
    phone's the page never scrolls sideways, no chart is wider than its card and no word is
    broken."""
    server = dashboard_server
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    fits, broken = {}, []
    try:
        sign_in_as_rep(page, server.url)
        page.locator(".ws-header").get_by_role("link", name="Dashboard").click()
        page.wait_for_url("**/workspace/dashboard")
        current = page.locator(".ws-header a[aria-current=page]").inner_text()
        start = page.get_by_label("From", exact=True).input_value()
        end = page.get_by_label("To", exact=True).input_value()
        table = {row.get_attribute("data-stage"): int(row.locator("td").first.inner_text())
                 for row in page.locator(".dash-funnel tbody tr").all()}
        bars = page.locator(".dash-section--funnel svg .chart-value").all_text_contents()
        headline = page.locator(".dash-range").inner_text()
        for name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            fits[name] = page.evaluate("""() => ({
                page: document.scrollingElement.scrollWidth, window: window.innerWidth,
                charts: [...document.querySelectorAll("svg.chart")].map((svg) =>
                    [Math.round(svg.getBoundingClientRect().width), svg.closest(".dash-section").clientWidth])})""")
            broken += [f"{name}: {b}" for b in broken_words([("header bar", page.locator(".ws-header"), False),
                                                             ("dashboard", page.locator("main"), True)])]
            suffix = "-phone" if viewport is PHONE else ""
            page.screenshot(path=screenshots(tmp_path) / f"workspace-dashboard{suffix}.png", full_page=True)
    finally:
        context.close()

    report = json.loads(run_leadgate(server, "report", "--from", start, "--to", end, "--format", "json"))
    assert current == "Dashboard"
    assert date.fromisoformat(end) - date.fromisoformat(start) == timedelta(days=89)
    assert (report["from"], report["to"]) == (start, end)
    assert report["total"]["leads"] == 300   # the sample's leads are all of the last 90 days
    assert (table["lead"], table["mql"]) == (report["total"]["leads"], report["total"]["mql"])
    assert 0 < table["mql"] < table["lead"]
    assert bars[:2] == [f"{table['lead']:,}", f"{table['mql']:,} ({report['total']['lead_to_mql']:.1%})"]
    assert headline.endswith(f": {table['lead']:,} leads.")
    for name, sizes in fits.items():
        assert sizes["page"] <= sizes["window"], (name, sizes)
        assert all(width <= card for width, card in sizes["charts"]), (name, sizes)
    if broken:
        pytest.fail("broken mid-word:\n" + "\n".join(broken), pytrace=False)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_workspace_text_meets_wcag_aa_contrast(workspace_server, browser, leads_to_list, scheme):
    """The header, filters, legend, badges, scores and table of the list, the lead page with its
    reasons, form and timeline, a form's message, and the dashboard with its charts, tables and
    a refused range: in the light and the dark scheme."""
    context = browser.new_context(viewport=LAPTOP, color_scheme=scheme)
    page = context.new_page()
    failures = []
    try:
        sign_in_as_rep(page, workspace_server.url)
        page.get_by_text("More filters").click()
        page.get_by_text("What the stages and the score mean").click()
        failures += low_contrast(f"{scheme}, lead list", page.locator(".ws-header"), page.locator("main"))
        page.locator("tbody tr").first.locator(".ws-who__link").hover()
        failures += low_contrast(f"{scheme}, row under the pointer", page.locator("tbody tr").first)

        page.goto(f"{workspace_server.url}/workspace/?score_min=abc")
        failures += low_contrast(f"{scheme}, a filter's message", page.locator(".ws-finder"))

        page.goto(workspace_server.url + "/workspace/")
        page.locator("tbody .ws-who__link", has_text="Ann Lee").click()
        page.wait_for_url("**/workspace/leads/*")
        page.get_by_label("New stage").select_option("disqualified")
        page.get_by_role("button", name="Move", exact=True).click()   # no reason: refused
        page.locator("#move-reason-error").wait_for()
        failures += low_contrast(f"{scheme}, lead page with a refused move", page.locator("main"))

        page.locator(".ws-header").get_by_role("link", name="Dashboard").click()
        page.get_by_text("The numbers per week").click()
        failures += low_contrast(f"{scheme}, dashboard", page.locator(".ws-header"), page.locator("main"))
        page.locator(".dash-section tbody tr").first.hover()
        failures += low_contrast(f"{scheme}, dashboard row under the pointer", page.locator(".dash-section tbody tr").first)
        page.goto(f"{workspace_server.url}/workspace/dashboard?from=2026-11-31")
        page.locator("#d-from-error").wait_for()
        failures += low_contrast(f"{scheme}, dashboard with a refused range", page.locator("main"))
    finally:
        context.close()
    if failures:
        pytest.fail("text below WCAG AA contrast:\n" + "\n".join(failures), pytrace=False)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_rep_ends_a_forgotten_session_from_the_sessions_page(workspace_server, browser, scheme, tmp_path):
    """Signed in at the office and on a phone, the rep opens "Your sessions" on the laptop,
    sees both (this one marked) and ends the phone's: the phone's next page is the sign-in.
    The page reads at AA contrast in both schemes and never scrolls sideways on the phone."""
    email = f"{scheme}.sessions@example.com"
    subprocess.run([workspace_server.leadgate, "user", "add", email, "--role", "sales", "--password-stdin"],
                   input=STAFF_PASSWORD + "\n", env=workspace_server.env, cwd=workspace_server.cwd,
                   text=True, capture_output=True, check=True, timeout=60)
    laptop = browser.new_context(viewport=LAPTOP, color_scheme=scheme)
    phone = browser.new_context(viewport=PHONE, color_scheme=scheme)
    try:
        pages = {}
        for name, context in (("laptop", laptop), ("phone", phone)):
            page = pages[name] = context.new_page()
            page.goto(f"{workspace_server.url}/workspace/login")
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(STAFF_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/workspace/")
        phone_page = pages["phone"]
        phone_page.locator(".ws-header").get_by_role("link", name="Your sessions").click()
        phone_page.wait_for_url("**/workspace/sessions/")
        sideways = phone_page.evaluate("() => document.scrollingElement.scrollWidth > window.innerWidth")
        phone_page.screenshot(path=screenshots(tmp_path) / f"workspace-sessions-phone-{scheme}.png", full_page=True)

        page = pages["laptop"]
        page.locator(".ws-header").get_by_role("link", name="Your sessions").click()
        page.wait_for_url("**/workspace/sessions/")
        rows = page.locator("tbody tr")
        listed = rows.count()
        marked = page.locator(".ws-sessions__this").count()
        failures = low_contrast(f"{scheme}, sessions", page.locator(".ws-header"), page.locator("main"))
        page.screenshot(path=screenshots(tmp_path) / f"workspace-sessions-{scheme}.png", full_page=True)
        page.locator("tbody tr:not(.ws-sessions__this)").get_by_role("button", name="End").click()
        page.wait_for_url("**/workspace/sessions/")
        notice = page.locator(".ws-notice").inner_text()
        left = rows.count()

        phone_page.goto(f"{workspace_server.url}/workspace/")
        phone_url = phone_page.url
        page.goto(f"{workspace_server.url}/workspace/")
        laptop_url = page.url
    finally:
        laptop.close()
        phone.close()
    assert (listed, marked, left) == (2, 1, 1)
    assert notice == "Session ended: that browser has to sign in again."
    assert "/workspace/login" in phone_url
    assert laptop_url == f"{workspace_server.url}/workspace/"
    assert not sideways
    if failures:
        pytest.fail("text below WCAG AA contrast:\n" + "\n".join(failures), pytrace=False)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("live"),
                    settings={"LEADGATE_DOWNLOAD_MAX_AGE": str(LINK_MAX_AGE),
                              "LEADGATE_FORM_MIN_SECONDS": str(FORM_MIN_SECONDS)}) as server:
        yield server
