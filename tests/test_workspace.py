"""The sales workspace as a sales rep uses it: find leads, page through them, open one."""

from __future__ import annotations

import html
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from markupsafe import escape
from sqlalchemy import event
from staff import csrf_token, signed_in

from capture.catalog import ConsentText
from capture.leads.downloads import record_download
from capture.leads.filters import DAY
from capture.leads.queries import LEAD_SORTS, get_lead, lead_timeline, list_leads
from capture.leads.stages import LABELS, MEANINGS, MOVES
from capture.leads.submission import NewSubmission, record_submission
from capture.scoring.apply import get_scoring

TERMS = ConsentText("terms", "terms-2026-11", "I agree that my details are stored.")
MARKETING = ConsentText("marketing", "marketing-2026-11", "Send me news.")
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
FIRST_POST = uuid.UUID("00000000-0000-4000-8000-000000000001")
LEAD_LINK = re.compile(r'href="/workspace/leads/(\d+)"')


def record(store, email: str, scoring=None, **fields):
    fields.setdefault("resource_id", "leads-vs-prospects")
    fields.setdefault("marketing_opt_in", False)
    fields.setdefault("created_at", T0)
    fields.setdefault("terms", TERMS)
    fields.setdefault("marketing", MARKETING)
    lead, _ = record_submission(store, NewSubmission(email=email, **fields), scoring)
    return lead


@pytest.fixture
def sales(client, runner):
    """A browser signed in as a sales rep."""
    signed_in(client, runner)
    return client


def page_text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def lead_ids(page: str) -> list[int]:
    return [int(n) for n in LEAD_LINK.findall(page)]


def link(page: str, rel: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return html.unescape(match.group(1)) if match else None


def emails_shown(client, query: str = "") -> list[str]:
    page = page_text(client.get(f"/workspace/?{query}"))
    return [html.unescape(re.sub(r"<[^>]+>", "", email))
            for email in re.findall(r'<span class="ws-email ws-address">(.*?)</span>\s*</td>', page, re.S)]


# --- The list: search, filters, sort ---------------------------------------------------------

@pytest.fixture
def three_leads(store):
    record(store, "ann@acme.example", first_name="Ann", last_name="Lee", company="Acme Analytics",
           utm_source="newsletter", utm_medium="email", utm_campaign="autumn", marketing_opt_in=True,
           created_at=T0)
    record(store, "bob@beta.example", first_name="Bob", company="Beta Corp", resource_id="scoring",
           utm_source="linkedin", utm_medium="social", created_at=T0 + timedelta(days=10))
    record(store, "cy@gamma.example", first_name="Cy", last_name="Acker", company="Gamma",
           utm_source="LinkedIn", created_at=T0 + timedelta(days=20))


@pytest.mark.parametrize(("query", "expected"), [
    ("", ["cy@gamma.example", "bob@beta.example", "ann@acme.example"]),
    ("q=ACME", ["ann@acme.example"]),                        # company and email, any case
    ("q=ack", ["cy@gamma.example"]),                          # last name
    ("q=bob", ["bob@beta.example"]),                          # first name
    ("q=nobody", []),
    ("resource=scoring", ["bob@beta.example"]),
    ("type=ebook", ["cy@gamma.example", "ann@acme.example"]),
    ("utm_source=linkedin", ["cy@gamma.example", "bob@beta.example"]),
    ("utm_medium=email", ["ann@acme.example"]),
    ("utm_campaign=autumn", ["ann@acme.example"]),
    ("marketing=yes", ["ann@acme.example"]),
    ("marketing=no", ["cy@gamma.example", "bob@beta.example"]),
    ("from=2026-11-10&to=2026-11-15", ["bob@beta.example"]),
    ("q=a&utm_source=linkedin&marketing=no", ["cy@gamma.example", "bob@beta.example"]),
])
def test_search_and_filters(sales, three_leads, query, expected):
    assert emails_shown(sales, query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("sort=email&dir=asc", ["ann@acme.example", "bob@beta.example", "cy@gamma.example"]),
    ("sort=email&dir=desc", ["cy@gamma.example", "bob@beta.example", "ann@acme.example"]),
    ("sort=company&dir=asc", ["ann@acme.example", "bob@beta.example", "cy@gamma.example"]),
    ("sort=first_seen&dir=asc", ["ann@acme.example", "bob@beta.example", "cy@gamma.example"]),
    ("sort=last_seen", ["cy@gamma.example", "bob@beta.example", "ann@acme.example"]),
])
def test_sortable_columns(sales, three_leads, query, expected):
    assert emails_shown(sales, query) == expected


def test_column_links_keep_the_filters_and_turn_the_order(sales, three_leads):
    page = page_text(sales.get("/workspace/?q=a&sort=email&dir=asc"))
    assert 'href="/workspace/?q=a&amp;sort=email&amp;dir=desc"' in page       # the sorted column turns
    assert 'href="/workspace/?q=a&amp;sort=last_seen&amp;dir=desc"' in page   # dates start newest first
    assert 'aria-sort="ascending"' in page


def test_download_csv_link_carries_the_filters_and_order(sales, three_leads):
    page = page_text(sales.get("/workspace/?q=acme&marketing=yes&sort=email&cursor="))
    assert 'href="/workspace/leads.csv?q=acme&amp;marketing=yes&amp;sort=email&amp;dir=asc"' in page
    assert 'href="/workspace/leads.csv?sort=score&amp;dir=desc"' in page_text(sales.get("/workspace/"))  # best first


@pytest.mark.parametrize(("query", "message"), [
    ("from=30/11/2026", "&#39;30/11/2026&#39; is not a date: write it as YYYY-MM-DD"),
    ("marketing=maybe", "Use yes or no, not &#39;maybe&#39;."),
    ("type=video", "Unknown type &#39;video&#39;"),
    ("sort=phone", "Sort by one of score, last_seen, first_seen, email, company."),
    ("dir=up", "Use asc or desc."),
    ("cursor=not-a-cursor", "This page link is not valid for this list any more"),
])
def test_bad_parameters_are_named_on_the_page(sales, three_leads, query, message):
    response = sales.get(f"/workspace/?{query}")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert lead_ids(page) == []


def total_shown(page: str) -> str | None:
    """The count above the list, as the page words it ("3 leads")."""
    match = re.search(r'<p class="ws-total">([^<]*)</p>', page)
    return match.group(1).strip() if match else None


@pytest.mark.parametrize(("query", "total"), [
    ("", "3 leads"),
    ("utm_source=linkedin", "2 leads"),
    ("q=acme", "1 lead"),
    ("type=ebook", "2 leads"),                                # needs the catalog
    ("q=a&utm_source=linkedin&marketing=no&sort=email&dir=asc", "2 leads"),
])
def test_the_list_says_how_many_leads_the_filters_select(sales, three_leads, query, total):
    assert total_shown(page_text(sales.get(f"/workspace/?{query}"))) == total


def test_date_filters_ask_for_the_format_their_messages_name(sales, three_leads):
    """Not type=date: that shows the browser's format (mm/dd/yyyy), not the one asked for."""
    page = page_text(sales.get("/workspace/"))
    for name in ("from", "to"):
        field = re.search(rf'<input id="f-{name}"[^>]*>', page).group(0)
        assert 'type="text"' in field
        assert 'placeholder="YYYY-MM-DD"' in field
        assert f'pattern="{escape(DAY.pattern)}"' in field   # what the service accepts
    refused = sales.get("/workspace/?from=11/30/2026")
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "write it as YYYY-MM-DD" in page
    assert 'value="11/30/2026"' in page                     # kept, to be corrected


def test_empty_list(sales):
    assert "No leads yet." in page_text(sales.get("/workspace/"))
    assert "No leads match these filters." in page_text(sales.get("/workspace/?q=zzz"))
    assert total_shown(page_text(sales.get("/workspace/?q=zzz"))) is None


# --- Keyset pages ----------------------------------------------------------------------------

COMPANIES = ("Acme", "Beta", "Gamma", "Delta", "Epsilon", "Zeta", "")


@pytest.fixture
def many_leads(store):
    """120 leads; three at a time share a timestamp, and companies repeat, so ties need the id."""
    leads = []
    for n in range(120):
        leads.append(record(store, f"lead{n:03}@example.com", company=COMPANIES[n % len(COMPANIES)],
                            created_at=T0 + timedelta(minutes=n // 3)))
    return leads


def walk(client, url: str, rel: str = "next") -> tuple[list[list[int]], str]:
    """Follow Next (or Previous) links to the end; the ids of each page and the last page's URL."""
    pages = []
    while True:
        page = page_text(client.get(url))
        pages.append(lead_ids(page))
        following = link(page, rel)
        if following is None:
            return pages, url
        url = following


#: Each order of the list: its query string, and the sort key and direction in Python.
ORDERS = [
    ("", lambda lead: lead.last_seen, True),
    ("sort=first_seen&dir=asc", lambda lead: lead.first_seen, False),
    ("sort=company&dir=asc", lambda lead: lead.company, False),
    ("sort=company&dir=desc", lambda lead: lead.company, True),
    ("sort=email&dir=desc", lambda lead: lead.email, True),
]


def test_pages_have_no_gaps_no_repeats_and_a_stable_order(sales, many_leads):
    for query, key, descending in ORDERS:
        expected = [lead.id for lead in sorted(many_leads, key=lambda lead: (key(lead), lead.id),
                                               reverse=descending)]
        forward, last = walk(sales, f"/workspace/?{query}")
        assert [len(ids) for ids in forward] == [50, 50, 20], query
        assert [i for ids in forward for i in ids] == expected, query
        backward, first = walk(sales, last, "prev")
        assert backward == forward[::-1], query
        assert link(page_text(sales.get(first)), "prev") is None


def test_the_total_counts_every_page_not_the_one_shown(sales, many_leads):
    first = page_text(sales.get("/workspace/?sort=email&dir=asc"))
    assert len(lead_ids(first)) == 50
    assert total_shown(first) == "120 leads"
    assert total_shown(page_text(sales.get(link(first, "next")))) == "120 leads"
    # lead000 to lead099: more than a page, fewer than all.
    assert total_shown(page_text(sales.get("/workspace/?q=lead0"))) == "100 leads"


def test_a_new_lead_does_not_shift_the_next_page(sales, store, many_leads):
    first = page_text(sales.get("/workspace/"))
    record(store, "newcomer@example.com", created_at=T0 + timedelta(days=1))
    second = lead_ids(page_text(sales.get(link(first, "next"))))
    assert set(second).isdisjoint(lead_ids(first))
    assert len(second) == 50


def test_pages_are_found_by_keyset_not_offset(sales, store, many_leads):
    statements = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, parameters, *_: statements.append((statement, parameters)))
    walk(sales, "/workspace/?sort=company&dir=asc")
    lists = [(s, p) for s, p in statements if "\nFROM leads" in s and "LIMIT" in s]
    assert len(lists) == 3
    assert [("(leads.company, leads.id) >" in s) for s, _ in lists] == [False, True, True]
    # SQLAlchemy writes "OFFSET ?" on SQLite whatever the query; it must always be 0.
    assert all(p[-1] == 0 for s, p in lists if s.rstrip().endswith("OFFSET ?"))
    assert not [s for s, p in lists if "OFFSET" in s and not s.rstrip().endswith("OFFSET ?")]


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_every_order_reads_an_index_without_sorting(store, many_leads):
    """No sort step in the plan: the database reads a page straight off the index, from the
    cursor on, so a page deep in the list costs what the first does."""
    statements = []

    def keep(conn, cursor, statement, parameters, *args):
        statements.append((statement, parameters))

    for sort in LEAD_SORTS:
        for direction in ("asc", "desc"):
            page = list_leads(store, None, sort, direction, limit=50)
            event.listen(store.engine, "before_cursor_execute", keep)
            list_leads(store, None, sort, direction, after=page.last_key, limit=50)
            event.remove(store.engine, "before_cursor_execute", keep)
            statement, parameters = statements[-1]
            with store.engine.connect() as conn:
                plan = list(conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            # Steps of the outer query have parent 0; subqueries (per-row columns) have their own.
            outer = [detail for _, parent, _, detail in plan if parent == 0]
            assert not [step for step in outer if "TEMP B-TREE" in step], (sort, direction, plan)
            assert any(step.startswith(("SEARCH leads USING", "SCAN leads USING")) for step in outer), plan


# --- One lead --------------------------------------------------------------------------------

def test_lead_page_profile_source_consent_and_timeline(sales, store):
    now = datetime.now(UTC)
    lead = record(store, "ann@acme.example", first_name="Ann", last_name="Lee", company="Acme Analytics",
                  job_title="Head of Growth", utm_source="newsletter", utm_medium="email",
                  utm_campaign="autumn", referrer="https://news.example.org/issue-12",
                  marketing_opt_in=True, created_at=now - timedelta(days=2), uid=FIRST_POST)
    record_download(store, submission_uid=FIRST_POST, resource_id="leads-vs-prospects", at=now)
    record(store, "ann@acme.example", resource_id="scoring", utm_source="linkedin", utm_medium="social",
           marketing_opt_in=False, created_at=now + timedelta(hours=1))

    page = page_text(sales.get(f"/workspace/leads/{lead.id}"))
    assert "<h1>Ann Lee</h1>" in page
    assert "<dt>Job title</dt><dd>Head of Growth</dd>" in page
    consent = re.sub(r"\s+", " ", page.split('<h2 id="consent">')[1].split("</section>")[0])
    # The box left unticked on the latest form does not withdraw the opt-in.
    assert ('<h3>Marketing emails</h3> <p class="ws-consent-state"><strong>Given</strong> '
            '(<span class="ws-nowrap">marketing-2026-11</span>,') in consent
    assert "may be emailed" in consent and "Evidence: 2 events" in consent
    assert '<h3>Terms</h3> <p class="ws-consent-state"><strong>Given</strong> (<span class="ws-nowrap">terms-2026-11</span>' in consent
    first, latest = page.split("<h3>First request</h3>")[1].split("<h3>Latest request</h3>")
    assert "<dd>newsletter</dd>" in first and "<dd>https://news.example.org/issue-12</dd>" in first
    assert "<dd>linkedin</dd>" in latest and "<dd>Lead scoring sales trusts</dd>" in latest

    timeline = re.sub(r"\s+", " ", page.split('<ol class="ws-timeline">')[1].split("</ol>")[0])
    timeline = re.sub(r"<details>.*?</details>", "", timeline)  # the consent words: the next test
    steps = [re.sub(r"<[^>]+>", "", step).strip() for step in timeline.split("<li")[1:]]
    events = [re.sub(r"^class=\"ws-[\w-]+\"> \S+ \S+ UTC ", "", step).strip() for step in steps]
    assert events == [
        "Requested Leads versus prospects (via newsletter / email / autumn)",
        "Accepted the terms (terms-2026-11)",
        "Opted in to marketing emails (marketing-2026-11)",
        "Downloaded Leads versus prospects",
        "Requested Lead scoring sales trusts (via linkedin / social)",
        "Accepted the terms (terms-2026-11)",
        "Did not opt in to marketing emails (marketing-2026-11)",
    ]


def words_and_hash(html_part: str) -> list[tuple[str, str]]:
    """(words, SHA-256) of each consent text quoted in a part of the lead page, in order."""
    return [(html.unescape(words), sha) for words, sha in re.findall(
        r'<blockquote class="ws-words">(.*?)</blockquote>\s*<p class="ws-hash">SHA-256 <code>(\w+)</code>',
        html_part, re.S)]


def test_lead_page_quotes_the_consent_words_and_their_hash(sales, store):
    terms_2 = ConsentText("terms", "terms-2027-01", "I agree that Acme & partners store <my> details.\nSee the notice.")
    marketing_2 = ConsentText("marketing", "marketing-2027-01", "Send me news & event invitations.")
    lead = record(store, "ann@acme.example", marketing_opt_in=False, created_at=T0)
    record(store, "ann@acme.example", resource_id="scoring", terms=terms_2, marketing=marketing_2,
           marketing_opt_in=True, created_at=T0 + timedelta(days=3))

    page = page_text(sales.get(f"/workspace/leads/{lead.id}"))
    consent = page.split('<h2 id="consent">')[1].split("</section>")[0]
    # Each purpose's state, then every event with the exact words the person saw and their fingerprint.
    assert '<strong>Given</strong> (<span class="ws-nowrap">terms-2027-01</span>,' in consent
    assert '<strong>Given</strong> (<span class="ws-nowrap">marketing-2027-01</span>,' in consent
    assert words_and_hash(consent) == [(TERMS.text, TERMS.sha256), (terms_2.text, terms_2.sha256),
                                       (MARKETING.text, MARKETING.sha256), (marketing_2.text, marketing_2.sha256)]
    # Every consent in the timeline quotes what was shown then: the old words for the first post.
    timeline = page.split('<ol class="ws-timeline">')[1].split("</ol>")[0]
    assert words_and_hash(timeline) == [
        (TERMS.text, TERMS.sha256), (MARKETING.text, MARKETING.sha256),
        (terms_2.text, terms_2.sha256), (marketing_2.text, marketing_2.sha256),
    ]
    assert "Acme &amp; partners store &lt;my&gt; details." in page  # as text, never as markup


def test_timeline_order_in_the_store(store):
    lead = record(store, "ann@acme.example", created_at=T0, uid=FIRST_POST)
    record_download(store, submission_uid=FIRST_POST, resource_id="leads-vs-prospects",
                          at=T0 + timedelta(minutes=5))
    # A late replay: stored last, sent first.
    record(store, "ann@acme.example", resource_id="scoring", created_at=T0 - timedelta(days=1))
    kinds = [(entry.kind, entry.item.kind if entry.kind == "consent" else entry.item.resource_id)
             for entry in lead_timeline(store, lead.id)]
    assert kinds == [
        ("submission", "scoring"), ("consent", "terms"), ("consent", "marketing"),
        ("submission", "leads-vs-prospects"), ("consent", "terms"), ("consent", "marketing"),
        ("download", "leads-vs-prospects"),
    ]


def test_unknown_lead(sales):
    response = sales.get("/workspace/leads/999")
    assert response.status_code == 404
    assert "There is no lead with this number" in response.get_data(as_text=True)


# --- What visitors typed is shown as text ----------------------------------------------------

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "{{ 7*7 }}</td></tr></table><b>bold</b>",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_what_visitors_typed_is_shown_as_text(sales, store, form_post, payload):
    fields = {name: payload for name in ("first_name", "last_name", "company", "job_title", "utm_source",
                                         "utm_medium", "utm_campaign", "utm_term", "utm_content",
                                         "referrer")}
    posted = sales.post("/submit", data=form_post(email="o'neil&co@example.com",
                                                  landing_page="javascript:alert(1)", **fields))
    assert posted.status_code == 303
    [lead_id] = lead_ids(page_text(sales.get("/workspace/")))
    for url in ("/workspace/", "/workspace/?" + urlencode({"q": payload}), f"/workspace/leads/{lead_id}"):
        response = sales.get(url)
        page = page_text(response)
        assert payload not in page
        assert str(escape(payload)) in page
        assert "<img" not in page and "<script" not in page and "<b>" not in page
        assert not re.search(r'<svg(?! class="ws-score__bar")', page)   # only the score bars
        assert 'href="javascript:' not in page
        # The address may be split for line breaks (capture/templates/workspace/parts.html).
        assert "o&#39;neil&amp;co@example.com" in re.sub(r'<wbr>|<span class="ws-nowrap">|</span>', "", page)
        assert "script-src" not in response.headers["Content-Security-Policy"]  # no scripts at all
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_workspace_pages_are_not_cached_or_framed(sales):
    response = sales.get("/workspace/")
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]



# --- Stage and score: the list, the lead page, moving a lead ----------------------------------

SHIPPED_CONTENT = Path(__file__).resolve().parent.parent / "content"


@pytest.fixture
def scoring(app, content_dir):
    """The shipped scoring rules (content/scoring.yml and its domain lists), in force in the app."""
    shutil.copy(SHIPPED_CONTENT / "scoring.yml", content_dir / "scoring.yml")
    shutil.copytree(SHIPPED_CONTENT / "scoring", content_dir / "scoring")
    return get_scoring(app)


@pytest.fixture
def scored_leads(store, scoring):
    """Three leads as their posts scored them: a VP who came back (an MQL by the rules), a
    manager (42, a lead), a student with a free-mail address (10)."""
    profile = {"company_size": "201-1000", "industry": "Software"}
    vera = record(store, "vera@bigsoft.example", first_name="Vera", last_name="Voss", company="Bigsoft",
                  job_title="VP Marketing", **profile, created_at=T0, scoring=scoring)
    record(store, "vera@bigsoft.example", resource_id="scoring", job_title="VP Marketing", **profile,
           created_at=T0 + timedelta(days=1), scoring=scoring)
    mo = record(store, "mo@midco.example", first_name="Mo", company="Midco", job_title="Marketing Manager",
                company_size="51-200", industry="Software", created_at=T0 + timedelta(days=2), scoring=scoring)
    sam = record(store, "sam.student@gmail.com", first_name="Sam", job_title="Student", company_size="1-10",
                 industry="Education", created_at=T0 + timedelta(days=3), scoring=scoring)
    return {"vera": get_lead(store, vera.id), "mo": get_lead(store, mo.id), "sam": get_lead(store, sam.id)}


def rows_shown(client, query: str = "") -> list[tuple[str, str, int, str]]:
    """(email, stage, score, fit · engagement) of each row of the list, in order."""
    page = page_text(client.get(f"/workspace/?{query}"))
    rows = []
    for row in page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]:
        def text(cls: str, end: str = "</span>") -> str:
            found = re.search(rf'class="{cls}[^"]*">(.*?){end}', row, re.S).group(1)
            return html.unescape(re.sub(r"<[^>]+>", "", found)).strip()
        rows.append((text("ws-email", r"</span>\s*</td>"), text("ws-stage"), int(text("ws-score__value")),
                     text("visually-hidden")))
    return rows


def test_the_list_shows_stage_and_score_best_first(sales, scored_leads):
    assert rows_shown(sales) == [
        ("vera@bigsoft.example", "MQL", 72, "fit 90, engagement 54"),
        ("mo@midco.example", "Lead", 42, "fit 65, engagement 20"),
        ("sam.student@gmail.com", "Lead", 10, "fit 0, engagement 20"),
    ]
    assert [email for email, *_ in rows_shown(sales, "sort=score&dir=asc")] == [
        "sam.student@gmail.com", "mo@midco.example", "vera@bigsoft.example"]
    page = page_text(sales.get("/workspace/"))
    assert re.search(r'<th scope="col" aria-sort="descending">\s*<a class="ws-sort" href="[^"]+">Score<', page)
    # The legend says what each stage means, in the words of capture.leads.stages.
    legend = page.split('<details class="ws-legend">')[1].split("</details>")[0]
    for stage, meaning in MEANINGS.items():
        assert f">{LABELS[stage]}</span></dt><dd>{meaning}</dd>" in legend


@pytest.mark.parametrize(("query", "expected"), [
    ("stage=mql", ["vera@bigsoft.example"]),
    ("stage=lead", ["mo@midco.example", "sam.student@gmail.com"]),
    ("stage=customer", []),
    ("score_min=50", ["vera@bigsoft.example"]),
    ("score_max=42", ["mo@midco.example", "sam.student@gmail.com"]),
    ("score_min=20&score_max=80", ["vera@bigsoft.example", "mo@midco.example"]),
    ("fit_min=60&fit_max=80", ["mo@midco.example"]),
    ("fit_max=0", ["sam.student@gmail.com"]),
    ("engagement_min=30", ["vera@bigsoft.example"]),
    ("engagement_max=20", ["mo@midco.example", "sam.student@gmail.com"]),
    ("mql_from=2026-11-03&mql_to=2026-11-03", ["vera@bigsoft.example"]),   # promoted by its 2nd post
    ("mql_to=2026-11-02", []),
    ("mql_from=2026-11-04", []),
    ("stage=lead&score_min=20&q=midco", ["mo@midco.example"]),
])
def test_stage_and_score_filters(sales, scored_leads, query, expected):
    assert emails_shown(sales, query) == expected
    page = page_text(sales.get(f"/workspace/?{query}"))
    assert total_shown(page) == (f"{len(expected)} lead{'' if len(expected) == 1 else 's'}" if expected else None)


@pytest.mark.parametrize(("query", "field", "message"), [
    ("stage=hot", "stage", "Unknown stage &#39;hot&#39;: use one of lead, mql, sql"),
    ("score_min=abc", "score_min", "&#39;abc&#39; is not a whole number from 0 to 100."),
    ("score_max=101", "score_max", "&#39;101&#39; is not a whole number from 0 to 100."),
    ("score_min=80&score_max=20", "score_max", "The highest (20) is below the lowest (80)."),
    ("fit_min=-1", "fit_min", "&#39;-1&#39; is not a whole number from 0 to 100."),
    ("fit_max=ten", "fit_max", "&#39;ten&#39; is not a whole number from 0 to 100."),
    ("engagement_min=5.5", "engagement_min", "&#39;5.5&#39; is not a whole number from 0 to 100."),
    ("engagement_max=x", "engagement_max", "&#39;x&#39; is not a whole number from 0 to 100."),
    ("mql_from=2026/11/01", "mql_from", "&#39;2026/11/01&#39; is not a date: write it as YYYY-MM-DD"),
    ("mql_from=2026-12-01&mql_to=2026-11-01", "mql_to", "The end date 2026-11-01 is before the start date"),
])
def test_bad_stage_and_score_filters_are_named_beside_their_field(sales, scored_leads, query, field, message):
    response = sales.get(f"/workspace/?{query}")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'<p class="ws-error" id="{field}-error">{message}' in page
    control = re.search(rf'<(?:input|select) id="f-{field}"[^>]*>', page).group(0)
    assert f'aria-describedby="{field}-error"' in control and 'aria-invalid="true"' in control
    if control.startswith("<input"):
        assert f'value="{escape(dict(parse_qsl(query))[field])}"' in control   # kept, to be corrected
    assert lead_ids(page) == []
    if field not in ("stage", "score_min", "score_max"):   # kept under "More filters": opened
        assert '<details class="ws-more" open>' in page


def test_the_lead_page_says_why_this_score_and_what_would_make_an_mql(sales, scored_leads, scoring):
    vera, mo = scored_leads["vera"], scored_leads["mo"]
    page = page_text(sales.get(f"/workspace/leads/{vera.id}"))
    why = re.sub(r"\s+", " ", page.split('<h2 id="why">')[1].split("</section>")[0])
    reasons = [(html.unescape(rule), points) for rule, points in re.findall(
        r'<tr><td class="ws-prose">([^<]+)</td><td class="ws-points__value[^"]*">([^<]+)</td></tr>', why)]
    assert reasons == [
        ("industry Software", "+25"), ("company size 201-1000", "+25"), ('job title "vp"', "+30"),
        ("company address", "+10"),
        ("ebook leads-vs-prospects, 1 days ago", "+19.5"), ("whitepaper scoring (2nd resource)", "+35"),
    ]
    assert "Score <strong>72</strong> = fit 90 × 50% + engagement 54 × 50%" in why
    assert f"Rules version <code>{scoring.rules.version}</code>, scored 2026-11-03 08:30 UTC." in why
    assert "This lead is at or over the MQL threshold (72 of 60)." in page
    # The rules made it an MQL: that is in the timeline, with the reason they give.
    assert re.search(r'ws-stage--lead">Lead</span>.*ws-stage--mql">MQL</span></span>\s*by <strong>scoring rules</strong>'
                     r'<q class="ws-reason">score 72 reached the MQL threshold of 60</q>', page, re.S)

    page = page_text(sales.get(f"/workspace/leads/{mo.id}"))
    gap = re.sub(r"\s+", " ", page.split('<h2 id="gap">')[1].split("</section>")[0])
    assert "<strong>18 points</strong> below the MQL threshold of 60." in gap
    options = [(html.unescape(option), points) for option, points in re.findall(
        r'<li><span class="ws-prose">([^<]+)</span> <span class="[^"]+">up to \+(\d+)</span></li>', gap)]
    # Its job title, size, industry and address fired already: what is left, largest first.
    assert options == [("another resource (a whitepaper gives the most)", "20"),
                       ("a domain on the existing customer list", "10")]


def test_a_lead_scored_by_no_rules_says_so(sales, store):
    lead = record(store, "ann@acme.example")
    page = page_text(sales.get(f"/workspace/leads/{lead.id}"))
    assert "No scoring rules are in force" in page


def move(client, lead_id: int, **fields: str):
    """Send the lead page's "Move to…" form."""
    token = csrf_token(client, f"/workspace/leads/{lead_id}")
    return client.post(f"/workspace/leads/{lead_id}/stage", data={"csrf_token": token, **fields})


def test_a_rep_moves_a_lead_to_sql_and_the_timeline_says_who_and_why(sales, store, scored_leads):
    vera = scored_leads["vera"]
    page = page_text(sales.get(f"/workspace/leads/{vera.id}"))
    form = page.split('<form class="ws-move"')[1].split("</form>")[0]
    assert f'action="/workspace/leads/{vera.id}/stage"' in form
    # Only the moves the table allows from MQL, and the settings' disqualification reasons.
    assert re.findall(r'<option value="(\w+)"', form.split('name="stage"')[1].split("</select>")[0]) == \
        list(MOVES["mql"])
    assert '<option value="no budget">no budget</option>' in form

    response = move(sales, vera.id, stage="sql", reason="Budget approved for Q1")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/workspace/leads/{vera.id}"
    page = page_text(sales.get(response.headers["Location"]))
    assert '<p class="ws-notice" role="status">Moved to SQL.</p>' in page
    assert re.search(r'<h1>Vera Voss</h1>\s*<span class="ws-stage ws-stage--sql">SQL</span>', page)
    last = page.split('<li class="ws-stage-change">')[-1].split("</li>")[0]
    assert re.search(r'ws-stage--mql">MQL</span>.*ws-stage--sql">SQL</span></span>\s*by <strong>sam.sales@example.com'
                     r'</strong><q class="ws-reason">Budget approved for Q1</q>', last, re.S)
    assert get_lead(store, vera.id).stage == "sql"
    # SQL onwards: a prospect with its channel, then a customer with the deal.
    assert move(sales, vera.id, stage="prospect", channel="call").status_code == 303
    assert move(sales, vera.id, stage="customer", value="12,000.50", currency="usd").status_code == 303
    page = page_text(sales.get(f"/workspace/leads/{vera.id}"))
    changes = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c.split("</li>")[0])).strip()
               for c in page.split('<li class="ws-stage-change">')[1:]]
    assert [re.sub(r"^\S+ \S+ UTC ", "", c) for c in changes[-2:]] == [
        "Stage: SQL → to Prospect by sam.sales@example.com , via call",
        "Stage: Prospect → to Customer by sam.sales@example.com , deal 12,000.50 USD",
    ]
    assert "A customer stays a customer: there is no stage to move it to." in page


def test_marketing_sees_everything_but_moves_nothing(client, runner, store, scored_leads):
    signed_in(client, runner, email="mia@example.com", role="marketing")
    vera = scored_leads["vera"]
    page = page_text(client.get(f"/workspace/leads/{vera.id}"))
    assert "Why this score" in page and "What would make this an MQL" in page
    assert "Move to…" not in page and "/stage" not in page
    response = move(client, vera.id, stage="sql", reason="Looks good")
    assert response.status_code == 403
    assert get_lead(store, vera.id).stage == "mql"


@pytest.mark.parametrize(("lead", "fields", "field", "message"), [
    ("mo", {"stage": "mql"}, "reason",
     "The score is 42, below the MQL threshold of 60: give a reason to make this lead an MQL by hand."),
    ("mo", {"stage": "customer"}, "stage",
     "A lead cannot move from lead to customer: a customer bought; sales accepts a lead (sql) before"),
    ("mo", {"stage": ""}, "stage", "Choose the stage to move this lead to."),
    ("mo", {"stage": "disqualified", "reason": "typed, not chosen"}, "reason",
     "Give the reason for disqualifying: not a buyer, competitor, student, no budget"),
    ("mo", {"stage": "disqualified", "disqualified_reason": "bored"}, "reason",
     "&#39;bored&#39; is not a disqualification reason: use one of not a buyer"),
    ("mo", {"stage": "sql", "reason": "x" * 501}, "reason", "Keep the reason to 500 characters."),
    ("vera", {"stage": "mql"}, "stage", "This lead is already "),
    ("sql", {"stage": "prospect", "channel": "fax"}, "channel",
     "A channel goes with a move to prospect, and is one of email, call, meeting, linkedin."),
    ("sql", {"stage": "customer", "value": "lots"}, "value",
     "&#39;lots&#39; is not an amount: write it as 12000 or 12000.50."),
    ("sql", {"stage": "customer", "value": "100", "currency": "EURO"}, "currency",
     "&#39;EURO&#39; is not a currency code such as EUR or USD."),
])
def test_a_refused_move_shows_the_rule_beside_its_field(sales, store, scored_leads, lead, fields, field, message):
    if lead == "sql":
        lead = "vera"
        assert move(sales, scored_leads["vera"].id, stage="sql").status_code == 303
    person = scored_leads[lead]
    before = get_lead(store, person.id).stage
    response = move(sales, person.id, **fields)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'<p class="ws-error" id="move-{field}-error">{message}' in page
    described = re.findall(r'<(?:input|select) id="m-[\w-]+"[^>]*aria-describedby="[^"]*move-' + field
                           + r'-error[^"]*"', page, re.S)
    assert len(described) == 1                                # the one field it is about
    assert get_lead(store, person.id).stage == before          # nothing moved
    assert "<h1>" in page and "Why this score" in page         # the whole page, to correct and resend


def test_moving_an_unknown_lead(sales):
    token = csrf_token(sales, "/workspace/")
    response = sales.post("/workspace/leads/999/stage", data={"csrf_token": token, "stage": "sql"})
    assert response.status_code == 404
    assert "There is no lead with this number" in response.get_data(as_text=True)


# --- The look: one stylesheet, the header -----------------------------------------------------

def test_the_stylesheet_is_served_and_pages_need_no_inline_style(client, sales, scored_leads):
    with client.get("/workspace/static/workspace.css") as css:   # to anyone: the sign-in page uses it
        assert css.status_code == 200 and css.mimetype == "text/css"
        assert ".ws-stage--mql" in css.get_data(as_text=True)
    for url in ("/workspace/", f"/workspace/leads/{scored_leads['vera'].id}", "/workspace/leads/999"):
        response = sales.get(url)
        page = response.get_data(as_text=True)
        policy = response.headers["Content-Security-Policy"]
        assert "style-src 'self'" in policy and "unsafe-inline" not in policy
        assert "<style" not in page and " style=" not in page
        assert '<link rel="stylesheet" href="/workspace/static/workspace.css">' in page
    nav = page_text(sales.get("/workspace/")).split('<nav class="ws-nav"')[1].split("</nav>")[0]
    assert re.findall(r'<a href="([^"]+)"[^>]*>(\w+)</a>', nav) == [
        ("/workspace/", "Leads"), ("/workspace/dashboard", "Dashboard"), ("/workspace/spam", "Spam"),
        ("/workspace/jobs", "Jobs")]
    assert 'aria-current="page">Leads' in nav
