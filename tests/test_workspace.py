"""The sales workspace as a sales rep uses it: find leads, page through them, open one."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from markupsafe import escape
from sqlalchemy import event
from staff import signed_in

from capture.catalog import ConsentText
from capture.leads.downloads import record_download
from capture.leads.filters import DAY
from capture.leads.queries import LEAD_SORTS, lead_timeline, list_leads
from capture.leads.submission import NewSubmission, record_submission

TERMS = ConsentText("terms", "terms-2026-11", "I agree that my details are stored.")
MARKETING = ConsentText("marketing", "marketing-2026-11", "Send me news.")
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
FIRST_POST = uuid.UUID("00000000-0000-4000-8000-000000000001")
LEAD_LINK = re.compile(r'href="/workspace/leads/(\d+)"')


def record(store, email: str, **fields):
    fields.setdefault("resource_id", "leads-vs-prospects")
    fields.setdefault("marketing_opt_in", False)
    fields.setdefault("created_at", T0)
    fields.setdefault("terms", TERMS)
    fields.setdefault("marketing", MARKETING)
    lead, _ = record_submission(store, NewSubmission(email=email, **fields))
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
    assert "<dd>Not opted in (marketing-2026-11," in page          # the latest choice
    assert "<dd>Accepted terms-2026-11 on" in page
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
    # The latest choices, each with the exact words the person saw and their fingerprint.
    assert "Accepted terms-2027-01 on" in consent and "Opted in (marketing-2027-01," in consent
    assert words_and_hash(consent) == [(terms_2.text, terms_2.sha256), (marketing_2.text, marketing_2.sha256)]
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
    kinds = [(entry.kind, getattr(entry.item, "resource_id", getattr(entry.item, "kind", None)))
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
        assert "o&#39;neil&amp;co@example.com" in page
        assert "script-src" not in response.headers["Content-Security-Policy"]  # no scripts at all
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_workspace_pages_are_not_cached_or_framed(sales):
    response = sales.get("/workspace/")
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]

