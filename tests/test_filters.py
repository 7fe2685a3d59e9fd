"""The lead filter: what each parameter accepts, what it refuses, and which leads it finds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from capture.catalog import ConsentText
from capture.consent import ledger
from capture.leads.filters import LeadFilter
from capture.leads.submission import NewSubmission
from capture.leads.submission import record_submission
from capture.leads.queries import count_leads, iter_export_rows, list_leads
# Leads scored by test_export.RULES as their posts arrive.
from leads import find_lead
from test_export import scored  # noqa: F401 (a fixture)

TERMS = ConsentText("terms", "terms-2026-11", "I agree that my details are stored.")
MARKETING = ConsentText("marketing", "marketing-2026-11", "Send me news.")
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
TYPES = ("ebook", "whitepaper", "tip-sheet", "report")


def record(store, email: str, **fields) -> None:
    fields.setdefault("resource_id", "leads-vs-prospects")
    fields.setdefault("marketing_opt_in", False)
    fields.setdefault("created_at", T0)
    record_submission(store, NewSubmission(email=email, terms=TERMS, marketing=MARKETING, **fields))


def emails(store, catalog=None, **args: str) -> list[str]:
    lead_filter, errors = LeadFilter.from_args(args, TYPES)
    assert errors == {}
    return [email for email, in iter_export_rows(store, lead_filter, columns=["email"], catalog=catalog)]


def test_every_parameter_read():
    lead_filter, errors = LeadFilter.from_args({
        "q": " Acme ", "from": "2026-11-01", "to": "2026-11-30", "resource": "scoring",
        "type": "ebook", "utm_source": "LinkedIn", "utm_medium": "social", "utm_campaign": "q4",
        "marketing": "YES", "page": "3", "sort": "email",
    }, TYPES)
    assert errors == {}
    assert lead_filter == LeadFilter(
        q="Acme", seen_from=date(2026, 11, 1), seen_to=date(2026, 11, 30), resource="scoring",
        resource_type="ebook", utm_source="LinkedIn", utm_medium="social", utm_campaign="q4",
        marketing=True)


def test_empty_values_mean_any():
    assert LeadFilter.from_args({"q": "", "from": "  ", "marketing": None}) == (LeadFilter(), {})


@pytest.mark.parametrize(("args", "field", "message"), [
    ({"from": "30/11/2026"}, "from", "'30/11/2026' is not a date: write it as YYYY-MM-DD"),
    ({"to": "2026-02-30"}, "to", "'2026-02-30' is not a date"),
    ({"from": "20261130"}, "from", "is not a date"),
    ({"from": "2026-12-01", "to": "2026-11-30"}, "to", "The end date 2026-11-30 is before the start date 2026-12-01."),
    ({"marketing": "maybe"}, "marketing", "Use yes or no, not 'maybe'."),
    ({"marketing": "1"}, "marketing", "Use yes or no"),
    ({"resource": "../etc"}, "resource", "'../etc' is not a resource id"),
    ({"type": "video"}, "type", "Unknown type 'video': use one of ebook, whitepaper, tip-sheet, report."),
    ({"q": "x" * 255}, "q", "Use at most 254 characters (this has 255)."),
    ({"utm_source": "x" * 201}, "utm_source", "Use at most 200 characters"),
    ({"utm_campaign": "a\x00b"}, "utm_campaign", "Remove the control characters"),
    ({"q": "ann\nlee"}, "q", "Remove the control characters"),
])
def test_bad_parameters_are_named(args, field, message):
    _, errors = LeadFilter.from_args(args, TYPES)
    assert list(errors) == [field]
    assert message in errors[field][0]


def test_all_errors_at_once():
    _, errors = LeadFilter.from_args({"from": "x", "marketing": "x", "q": "ok"}, TYPES)
    assert set(errors) == {"from", "marketing"}


def test_search_in_email_names_and_company_in_any_case(store):
    record(store, "ann@example.com", first_name="Ann", company="Acme Analytics")
    record(store, "bob@globex.example", last_name="Acmeson")
    record(store, "cy@example.com", company="Initech")
    record(store, "100%@example.com", company="Per_cent")
    assert emails(store, q="ACME") == ["ann@example.com", "bob@globex.example"]
    assert emails(store, q="globex") == ["bob@globex.example"]
    assert emails(store, q="%") == ["100%@example.com"]  # LIKE wildcards are plain text
    assert emails(store, q="pe_") == []  # "_" is no wildcard: "Per_cent" has no "pe_"


def test_search_finds_non_ascii_as_typed(store):
    record(store, "emilie@example.com", first_name="Émilie", company="Ødegaard Ærø")
    # Typed as stored, or with other ASCII letters in another case: found on every database.
    # (ødegaard for Ødegaard depends on the database: SQLite folds only A–Z.)
    assert emails(store, q="Émilie") == emails(store, q="ÉMILIE") == ["emilie@example.com"]
    assert emails(store, q="ØDEGAARD Ærø") == ["emilie@example.com"]


def test_dates_are_days_with_a_form_post_both_ends_included(store):
    record(store, "oct@example.com", created_at=datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    record(store, "nov1@example.com", created_at=datetime(2026, 11, 1, 0, 0, tzinfo=UTC))
    record(store, "nov30@example.com", created_at=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    record(store, "dec@example.com", created_at=datetime(2026, 12, 1, tzinfo=UTC))
    # First seen in October, back in November: a November lead.
    record(store, "oct@example.com", created_at=datetime(2026, 11, 15, tzinfo=UTC))
    # Seen before and after November, nothing in it: not a November lead.
    record(store, "gap@example.com", created_at=datetime(2026, 10, 1, tzinfo=UTC))
    record(store, "gap@example.com", created_at=datetime(2026, 12, 5, tzinfo=UTC))
    assert emails(store, **{"from": "2026-11-01", "to": "2026-11-30"}) == [
        "oct@example.com", "nov1@example.com", "nov30@example.com"]
    assert emails(store, **{"from": "2026-12-01"}) == ["dec@example.com", "gap@example.com"]
    assert emails(store, to="2026-10-31") == ["oct@example.com", "gap@example.com"]


def test_utm_matches_any_touch_in_any_case(store):
    record(store, "first@example.com", utm_source="linkedin", created_at=T0)
    record(store, "first@example.com", utm_source="newsletter", created_at=T0 + timedelta(days=1))
    record(store, "middle@example.com", utm_source="google", created_at=T0)
    record(store, "middle@example.com", utm_source="LinkedIn", created_at=T0 + timedelta(days=1))
    record(store, "middle@example.com", utm_source="google", created_at=T0 + timedelta(days=2))
    record(store, "never@example.com", utm_source="linkedin-ads")
    assert emails(store, utm_source="linkedin") == ["first@example.com", "middle@example.com"]


def test_per_post_criteria_hold_on_the_same_post(store):
    # Came from LinkedIn in October, then from the newsletter in November.
    record(store, "ann@example.com", utm_source="linkedin", utm_campaign="q4",
           created_at=datetime(2026, 10, 20, tzinfo=UTC))
    record(store, "ann@example.com", utm_source="newsletter", resource_id="scoring",
           created_at=datetime(2026, 11, 20, tzinfo=UTC))
    record(store, "bob@example.com", utm_source="linkedin", utm_campaign="q4",
           created_at=datetime(2026, 11, 5, tzinfo=UTC))
    november = {"from": "2026-11-01", "to": "2026-11-30"}
    assert emails(store, utm_source="linkedin", **november) == ["bob@example.com"]
    assert emails(store, utm_source="linkedin", utm_campaign="Q4") == ["ann@example.com", "bob@example.com"]
    assert emails(store, utm_source="newsletter", resource="scoring") == ["ann@example.com"]
    assert emails(store, utm_source="linkedin", resource="scoring") == []


def test_resource_and_type(store, catalog):
    record(store, "ebook@example.com", resource_id="leads-vs-prospects")
    record(store, "paper@example.com", resource_id="scoring")
    record(store, "gone@example.com", resource_id="retired-report")
    assert emails(store, resource="scoring") == ["paper@example.com"]
    assert emails(store, catalog, type="ebook") == ["ebook@example.com"]
    assert emails(store, catalog, type="whitepaper") == ["paper@example.com"]
    assert emails(store, catalog, type="report") == []  # no report in the catalog today
    assert emails(store, resource="retired-report") == ["gone@example.com"]


def test_type_needs_the_catalog(store):
    with pytest.raises(ValueError, match="catalog"):
        list(iter_export_rows(store, LeadFilter(resource_type="ebook")))


def test_marketing_is_current_consent(store):
    record(store, "yes@example.com", marketing_opt_in=True)
    record(store, "unticked@example.com", marketing_opt_in=True, created_at=T0)
    record(store, "unticked@example.com", marketing_opt_in=False, created_at=T0 + timedelta(days=1))
    record(store, "later@example.com", marketing_opt_in=False, created_at=T0)
    record(store, "later@example.com", marketing_opt_in=True, created_at=T0 + timedelta(days=1))
    record(store, "withdrew@example.com", marketing_opt_in=True, created_at=T0)
    ledger.withdraw(store, find_lead(store, "withdrew@example.com").id, "marketing", ledger.ONE_CLICK,
                    at=T0 + timedelta(days=2))
    record(store, "no@example.com")
    # A box left unticked on a later form does not withdraw: only a withdrawal does.
    assert emails(store, marketing="yes") == ["yes@example.com", "unticked@example.com", "later@example.com"]
    assert emails(store, marketing="no") == ["withdrew@example.com", "no@example.com"]


def test_criteria_combine(store):
    record(store, "ann@acme.example", company="Acme", utm_source="linkedin", marketing_opt_in=True)
    record(store, "bob@acme.example", company="Acme", utm_source="linkedin")
    record(store, "cy@initech.example", utm_source="linkedin", marketing_opt_in=True)
    assert emails(store, q="acme", utm_source="linkedin", marketing="yes") == ["ann@acme.example"]


def test_marketing_by_time_not_by_storing_order(store):
    """A post replayed from the spool keeps its time but is stored after newer events."""
    record(store, "ann@example.com", marketing_opt_in=True, created_at=T0)
    ledger.withdraw(store, find_lead(store, "ann@example.com").id, "marketing", ledger.UNSUBSCRIBE_PAGE,
                    at=T0 + timedelta(days=2))
    record(store, "ann@example.com", marketing_opt_in=True, created_at=T0 + timedelta(days=1))  # replayed later
    record(store, "bob@example.com", marketing_opt_in=False, created_at=T0 + timedelta(days=1))
    record(store, "bob@example.com", marketing_opt_in=True, created_at=T0)  # replayed later
    assert emails(store, marketing="yes") == ["bob@example.com"]
    assert emails(store, marketing="no") == ["ann@example.com"]
    rows = list(iter_export_rows(store, columns=["email", "marketing_opt_in", "marketing_opt_in_at",
                                                 "marketing_state"]))
    assert [tuple(r) for r in rows] == [("ann@example.com", False, None, "withdrawn"),
                                        ("bob@example.com", True, "2026-11-02T08:30:00Z", "given")]


def test_stage_and_score_ranges_both_ends_included(store, scored):
    scored("ann@example.com", industry="Software", resource_id="scoring")  # fit 60, eng 60: 60, mql
    scored("bob@example.com", resource_id="scoring")  # fit 0, engagement 60: 30
    scored("cy@example.com")  # fit 0, engagement 40: 20
    assert emails(store, stage="mql") == ["ann@example.com"]
    assert emails(store, stage="lead") == ["bob@example.com", "cy@example.com"]
    assert emails(store, stage="customer") == []
    assert emails(store, score_min="30") == ["ann@example.com", "bob@example.com"]
    assert emails(store, score_max="30") == ["bob@example.com", "cy@example.com"]
    assert emails(store, score_min="21", score_max="59") == ["bob@example.com"]
    assert emails(store, fit_min="60", fit_max="60") == ["ann@example.com"]
    assert emails(store, engagement_min="60") == ["ann@example.com", "bob@example.com"]
    assert emails(store, engagement_max="40", stage="lead") == ["cy@example.com"]
    today = datetime.now(UTC).date()
    assert emails(store, mql_from=today.isoformat(), mql_to=today.isoformat()) == ["ann@example.com"]
    assert emails(store, mql_from=(today + timedelta(days=1)).isoformat()) == []
    assert emails(store, mql_to=(today - timedelta(days=1)).isoformat()) == []


@pytest.mark.parametrize(("args", "field", "message"), [
    ({"stage": "hot"}, "stage", "Unknown stage 'hot': use one of lead, mql, sql, prospect, customer"),
    ({"score_min": "101"}, "score_min", "'101' is not a whole number from 0 to 100."),
    ({"fit_max": "1.5"}, "fit_max", "'1.5' is not a whole number"),
    ({"engagement_min": "9", "engagement_max": "8"}, "engagement_max", "The highest (8) is below the lowest (9)."),
    ({"mql_from": "2026-12-02", "mql_to": "2026-12-01"}, "mql_to", "The end date 2026-12-01 is before"),
])
def test_bad_stage_and_score_parameters_are_named(args, field, message):
    _, errors = LeadFilter.from_args(args, TYPES)
    assert list(errors) == [field]
    assert message in errors[field][0]


def listed(store, catalog=None, **args: str) -> tuple[list[str], int]:
    """The lead list's first page (by score, as the workspace shows it) and its total."""
    lead_filter, errors = LeadFilter.from_args(args, TYPES)
    assert errors == {}
    page = list_leads(store, lead_filter, catalog=catalog)
    return [row.email for row in page.rows], count_leads(store, lead_filter, catalog)


def test_the_list_and_its_count_agree_with_the_export(store, catalog):
    """The list pages and counts through other statements than the export's: same leads."""
    record(store, "ann@example.com", first_name="Ann", company="Acme", utm_campaign="Q4",
           created_at=datetime(2026, 10, 20, tzinfo=UTC))
    record(store, "ann@example.com", utm_source="newsletter", resource_id="scoring",
           created_at=datetime(2026, 11, 20, tzinfo=UTC))
    record(store, "bob@globex.example", last_name="Acmeson", utm_campaign="q4",
           created_at=datetime(2026, 11, 5, tzinfo=UTC))
    record(store, "100%@example.com", company="Per_cent")
    cases = [{"q": "acme"}, {"q": "ACMESON"}, {"q": "%"}, {"q": "pe_"}, {"q": "ac"}, {"q": "nobody-here"},
             {"utm_campaign": "q4"}, {"utm_campaign": "unknown"}, {"type": "whitepaper"},
             {"type": "report"}, {"resource": "scoring"}, {"from": "2026-11-01", "to": "2026-11-30"},
             {"to": "2026-10-31"}, {"utm_campaign": "q4", "from": "2026-11-01"},
             {"q": "acme", "utm_source": "newsletter"}, {"marketing": "no"}]
    for args in cases:
        expected = emails(store, catalog, **args)
        shown, total = listed(store, catalog, **args)
        assert sorted(shown) == sorted(expected), args
        assert total == len(expected), args
