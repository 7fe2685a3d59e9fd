"""The report's figures against a fixture worked out by hand, through `leadgate report` (table,
CSV, JSON) and the dashboard; spend files refused line by line."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from capture.db.models import Spend
from capture.db.store import get_store
from capture.leads.stages import Actor, Move, move_stage
from capture.leads.submission import NewSubmission, record_submission
from capture.catalog import get_catalog
from capture.content_settings import DEFAULT_SETTINGS
from capture.scoring.apply import get_scoring
from staff import signed_in

#: Fit from the job title alone, the score is the fit: a VP (80) is an MQL at the first post,
#: a manager (40) and anyone else (0) are not.
RULES = """\
mql_threshold: 70
weights: {fit: 100, engagement: 0}
fit:
  job_title:
    - words: [vp]
      points: 80
    - words: [manager]
      points: 40
engagement:
  half_life_days: 30
  resource_types: {ebook: 10, whitepaper: 10}
"""
REP = Actor("user", "rep@example.com")
RANGE = ["--from", "2026-10-01", "--to", "2026-10-31"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


#: name: (first post, (utm_source, utm_medium, utm_campaign), job title, moves as (to, when, extra)).
LEADS = {
    "a": ("2026-10-01 09:00", ("linkedin", "paid", "abm"), "VP Sales", [
        ("sql", "2026-10-03 09:00", {}), ("prospect", "2026-10-05 09:00", {"channel": "call"}),
        ("customer", "2026-10-11 09:00", {"value": Decimal("10000")})]),
    "b": ("2026-10-02 10:00", ("LinkedIn", "paid", "abm"), "VP Marketing", [
        ("sql", "2026-10-06 10:00", {}), ("prospect", "2026-10-08 10:00", {}),
        ("customer", "2026-10-22 10:00", {"value": Decimal("20000"), "currency": "EUR"})]),
    "c": ("2026-10-03 12:00", ("linkedin", "paid", "abm"), "Marketing Manager", [
        ("mql", "2026-10-04 12:00", {"reason": "asked for pricing"}),
        ("disqualified", "2026-10-05 12:00", {"reason": "no budget"})]),
    # Straight to SQL: MQL is reached at the same moment, and MQL→SQL leaves it out.
    "d": ("2026-10-05 08:00", ("google", "cpc", "brand"), "IT Manager", [
        ("sql", "2026-10-07 08:00", {}), ("prospect", "2026-10-09 08:00", {}),
        ("customer", "2026-10-15 08:00", {"value": Decimal("5000"), "currency": "USD"})]),
    "e": ("2026-10-06 09:00", ("google", "cpc", "brand"), "Product Manager", [
        ("mql", "2026-10-10 09:00", {"reason": "webinar question"}),
        ("recycled", "2026-10-12 09:00", {})]),
    "f": ("2026-10-07 09:00", ("google", "cpc", "generic"), "", []),
    "g": ("2026-10-08 09:00", ("newsletter", "email", "oct"), "Office Manager", [
        ("mql", "2026-10-11 09:00", {"reason": "came back"})]),
    "h": ("2026-10-10 09:00", ("newsletter", "email", "oct"), "Sales Manager", [
        ("mql", "2026-10-15 09:00", {"reason": "called us"}), ("sql", "2026-10-16 09:00", {})]),
    "i": ("2026-10-12 09:00", ("", "", ""), "", []),
    "j": ("2026-10-15 09:00", ("", "", ""), "VP Finance", []),
    "m": ("2026-10-31 23:30", ("partner", "webinar", "w1"), "Account Manager", []),
    # Outside the range: the day before (with a post inside it) and the day after.
    "k": ("2026-09-30 23:00", ("linkedin", "paid", "abm"), "VP Growth", []),
    "l": ("2026-11-01 00:00", ("google", "cpc", "brand"), "VP Ops", []),
}
#: Second posts: repeat downloads do not make new leads.
AGAIN = {"g": "2026-10-09 09:00", "k": "2026-10-02 09:00"}
SPEND_CSV = """date,utm_source,utm_campaign,amount,currency
2026-10-01,linkedin,abm,300.00,EUR
2026-10-15,LinkedIn,abm,300,eur
2026-10-05,google,brand,200.00,EUR
2026-10-07,google,generic,100.00,EUR
2026-10-20,podcast,sponsorship,500.00,EUR
2026-09-30,linkedin,abm,999.00,EUR
2026-10-08,newsletter,oct,50.00,USD
"""


def row(group, leads, mql, sql, prospect, customer, rates, median_fit, days, deals, average, other,
        spend, per_lead, per_mql):
    return {"group": group, "leads": leads, "mql": mql, "sql": sql, "prospect": prospect,
            "customer": customer, **dict(zip(("lead_to_mql", "mql_to_sql", "sql_to_prospect",
                                              "prospect_to_customer", "lead_to_customer"), rates)),
            "median_fit": median_fit, **dict(zip(("days_to_mql", "days_mql_to_sql", "days_to_customer"), days)),
            "deals": deals, "average_deal": average, "other_currency_deals": other, "spend": spend,
            "cost_per_lead": per_lead, "cost_per_mql": per_mql}


# Worked out by hand from LEADS (hours in brackets).
# All 11 leads of October (not k, not l): MQL a b c d e g h j = 8; SQL a b d h = 4; prospect a b d;
# customer a b d. Fits 0 0 40 40 40 40 40 40 80 80 80: the 6th is 40.
# lead→MQL: a b j 0, c 24, d 48, g 72, e 96, h 120 → (24 + 48) / 2 = 36 h = 1.5 days.
# MQL→SQL (d skipped MQL): h 24, a 48, b 96 → 48 h = 2 days. lead→customer: a 240, d 240, b 480 → 10 days.
# Deals in EUR: a 10,000, b 20,000 → 15,000; d's USD deal is counted apart.
# Spend in range, EUR: 600 + 200 + 100 + 500 = 1,400 (the September row and the USD row left out):
# 1,400 / 11 = 127.27 a lead, 1,400 / 8 = 175 an MQL.
TOTAL = row("(all)", 11, 8, 4, 3, 3, (0.7273, 0.5, 0.75, 1.0, 0.2727), 40.0, (1.5, 2.0, 10.0),
            2, 15000.0, 1, 1400.0, 127.27, 175.0)
BY_SOURCE = [
    # a b c; fits 80 80 40; to MQL 0 0 24 → 0; MQL→SQL 48 96 → 72 h; to customer 240 480 → 360 h.
    row("linkedin", 3, 3, 2, 2, 2, (1.0, 0.6667, 1.0, 1.0, 0.6667), 80.0, (0.0, 3.0, 15.0),
        2, 15000.0, 0, 600.0, 200.0, 200.0),
    # d e f; fits 40 40 0; to MQL 48 96 → 72 h; no MQL→SQL (d skipped); d's deal is in USD.
    row("google", 3, 2, 1, 1, 1, (0.6667, 0.5, 1.0, 1.0, 0.3333), 40.0, (3.0, None, 10.0),
        0, None, 1, 300.0, 100.0, 150.0),
    # g h; to MQL 72 120 → 96 h; h MQL→SQL 24 h; its only spend is in USD: unknown.
    row("newsletter", 2, 2, 1, 0, 0, (1.0, 0.5, 0.0, None, 0.0), 40.0, (4.0, 1.0, None),
        0, None, 0, None, None, None),
    row("(none)", 2, 1, 0, 0, 0, (0.5, 0.0, None, None, 0.0), 40.0, (0.0, None, None),
        0, None, 0, None, None, None),
    row("partner", 1, 0, 0, 0, 0, (0.0, None, None, None, 0.0), 40.0, (None, None, None),
        0, None, 0, None, None, None),
    # Spend and no lead: a row of its own, no cost per lead.
    row("podcast", 0, 0, 0, 0, 0, (None, None, None, None, None), None, (None, None, None),
        0, None, 0, 500.0, None, None),
]


@pytest.fixture
def fixture_app(app, content_dir: Path, runner, tmp_path: Path):
    """The hand-worked leads, posted and moved at their times, and the spend imported."""
    (content_dir / "scoring.yml").write_text(RULES, encoding="utf-8")
    store, scoring, catalog = get_store(app), get_scoring(app), None
    with app.app_context():
        catalog = get_catalog()
    resource = catalog.get("leads-vs-prospects")
    posts = [(name, when) for name, (when, *_rest) in LEADS.items()] + list(AGAIN.items())
    for name, when in sorted(posts, key=lambda post: post[1]):
        _, (source, medium, campaign), title, _ = LEADS[name]
        record_submission(store, NewSubmission(
            email=f"{name}@example.com", resource_id=resource.id if name not in AGAIN or when != AGAIN[name]
            else "scoring", terms=resource.terms, marketing=catalog.settings.marketing, marketing_opt_in=False,
            first_name=name.upper(), job_title=title, utm_source=source, utm_medium=medium,
            utm_campaign=campaign, created_at=at(when)), scoring)
    moves = sorted((when, name, to, extra) for name, (*_, lead_moves) in LEADS.items()
                   for to, when, extra in lead_moves)
    ids = {}
    with store.read() as s:
        from capture.db.models import Lead
        ids = {email.split("@")[0]: lead_id for lead_id, email in s.execute(select(Lead.id, Lead.email))}
    for when, name, to, extra in moves:
        move_stage(store, ids[name], Move(to, **extra), REP, threshold=scoring.threshold,
                   disqualify_reasons=tuple(DEFAULT_SETTINGS["disqualification_reasons"]), currency="EUR", now=at(when))
    spend = tmp_path / "spend.csv"
    spend.write_text(SPEND_CSV, encoding="utf-8")
    result = runner.invoke(args=["spend", "import", str(spend)])
    assert result.exit_code == 0, result.output
    assert "Imported 7 spend rows from 2026-09-30 to 2026-10-20: 7 new, 0 replaced." in result.output
    return app


def report(runner, *args: str):
    result = runner.invoke(args=["report", *RANGE, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_report_gives_the_hand_worked_figures_in_json(fixture_app, runner):
    overall = json.loads(report(runner, "--format", "json"))
    assert (overall["from"], overall["to"], overall["by"], overall["currency"]) == (
        "2026-10-01", "2026-10-31", None, "EUR")
    assert overall["rows"] == [TOTAL]
    assert overall["total"] == TOTAL
    assert overall["notes"] == [
        "Spend in other currencies is left out of every cost: 50.00 USD.",
        "1 customer deal is in another currency than EUR: counted in other_currency_deals, "
        "left out of the average deal size."]
    by_source = json.loads(report(runner, "--by", "utm_source", "--format", "json"))
    assert by_source["by"] == "utm_source"
    assert by_source["rows"] == BY_SOURCE
    assert by_source["total"] == TOTAL


def test_the_report_gives_the_same_figures_in_csv(fixture_app, runner):
    rows = list(csv.DictReader(io.StringIO(report(runner, "--by", "utm_source", "--format", "csv"))))
    assert [r["group"] for r in rows] == [r["group"] for r in BY_SOURCE] + ["(total)"]
    linkedin, google, *_, podcast, total = rows
    assert linkedin == {"group": "linkedin", "leads": "3", "mql": "3", "sql": "2", "prospect": "2",
                        "customer": "2", "lead_to_mql": "1.0000", "mql_to_sql": "0.6667",
                        "sql_to_prospect": "1.0000", "prospect_to_customer": "1.0000",
                        "lead_to_customer": "0.6667", "median_fit": "80.0", "days_to_mql": "0.0",
                        "days_mql_to_sql": "3.0", "days_to_customer": "15.0", "deals": "2",
                        "average_deal": "15000.00", "other_currency_deals": "0", "spend": "600.00",
                        "cost_per_lead": "200.00", "cost_per_mql": "200.00"}
    assert (google["days_mql_to_sql"], google["average_deal"], google["other_currency_deals"]) == ("", "", "1")
    assert (podcast["leads"], podcast["spend"], podcast["cost_per_lead"]) == ("0", "500.00", "")
    assert (total["leads"], total["mql"], total["cost_per_lead"], total["cost_per_mql"]) == (
        "11", "8", "127.27", "175.00")


def test_the_report_gives_the_same_figures_as_a_table(fixture_app, runner):
    table = report(runner, "--by", "utm_source")
    assert table.startswith("Leads first seen 2026-10-01 to 2026-10-31 (UTC days, both included), "
                            "by utm_source; money in EUR.")
    lines = table.splitlines()
    volume = lines.index("Volume and conversion")
    assert lines[volume + 1].split() == ["utm_source", "leads", "MQL", "SQL", "prospect", "customer",
                                         "lead→MQL", "MQL→SQL", "SQL→prospect", "prospect→customer",
                                         "lead→customer"]
    assert lines[volume + 3].split() == ["linkedin", "3", "3", "2", "2", "2", "100.0%", "66.7%", "100.0%",
                                         "100.0%", "66.7%"]
    assert lines[volume + 10].split() == ["(total)", "11", "8", "4", "3", "3", "72.7%", "50.0%", "75.0%",
                                          "100.0%", "27.3%"]
    # Aligned: every line of a block as wide as its heading's columns.
    assert len({len(line) for line in lines[volume + 1:volume + 3]}) == 1
    money = lines.index("Deals and cost")
    assert lines[money + 3].split() == ["linkedin", "2", "2", "15,000.00", "0", "600.00", "200.00", "200.00"]
    assert lines[money + 8].split() == ["podcast", "0", "0", "–", "0", "500.00", "–", "–"]
    assert "Note: Spend in other currencies is left out of every cost: 50.00 USD." in table


def test_the_dashboard_shows_the_reports_figures(fixture_app, runner):
    client = fixture_app.test_client()
    signed_in(client, runner, "mo@example.com", role="marketing")
    page = client.get("/workspace/dashboard?from=2026-10-01&to=2026-10-31")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    figures = json.loads(report(runner, "--format", "json"))["total"]
    funnel = {stage: (reached, conversion) for stage, reached, conversion in re.findall(
        r'<tr data-stage="([a-z-]+)"><th scope="row">[^<]+</th><td>(\d+)</td><td>([^<]*)</td>', html)}
    assert funnel == {
        "lead": (str(figures["leads"]), ""),
        "mql": (str(figures["mql"]), "72.7%"), "sql": (str(figures["sql"]), "50.0%"),
        "prospect": (str(figures["prospect"]), "75.0%"), "customer": (str(figures["customer"]), "100.0%"),
        "lead-to-customer": (str(figures["customer"]), "27.3%"),
    }
    assert "<dt>To MQL</dt><dd>1.5 days (median, from first seen)</dd>" in html
    assert "<dt>MQL to SQL</dt><dd>2.0 days (median)</dd>" in html
    assert "<dt>Sales cycle</dt><dd>10.0 days (median, lead to customer)</dd>" in html
    assert "<dt>Deal size</dt><dd>15,000.00 EUR on average (2 deals)</dd>" in html
    assert "<dt>Per lead</dt><dd>127.27 EUR</dd>" in html
    assert "<dt>Per MQL</dt><dd>175.00 EUR</dd>" in html
    sources = re.findall(r'<tr data-group="([^"]+)"><th scope="row">[^<]+</th><td>(\d+)</td><td>(\d+)</td>', html)
    by_source = {r["group"]: r for r in json.loads(report(runner, "--by", "utm_source", "--format", "json"))["rows"]}
    assert sources[:5] == [(g, str(by_source[g]["leads"]), str(by_source[g]["mql"]))
                           for g in ("linkedin", "google", "newsletter", "(none)", "partner")]
    # The only resource of first posts; the whitepaper was only ever a second download.
    assert sources[5:] == [("leads-vs-prospects", "11", "8")]
    # Charts are SVG with a title and a description, and no script anywhere.
    assert html.count("<svg") == 4 and html.count("<title id=") == 4 and html.count("<desc id=") == 4
    assert "<script" not in html
    weeks = re.findall(r'<tr><th scope="row">(\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d)</th><td>(\d+)</td><td>(\d+)</td>', html)
    # First seen: a b c; MQLs: a and b by the rules, c by hand on the 4th (k's was in September).
    assert weeks[0] == ("2026-10-01", "2026-10-04", "3", "3")
    assert sum(int(w[2]) for w in weeks) == 11


@pytest.mark.parametrize("role", ["sales", "marketing", "admin"])
def test_every_staff_role_sees_the_dashboard_and_nobody_else(client, runner, role):
    assert client.get("/workspace/dashboard").status_code == 302
    signed_in(client, runner, f"{role}@example.com", role=role)
    page = client.get("/workspace/dashboard")
    assert page.status_code == 200
    assert "No lead was first seen in this range." in page.get_data(as_text=True)


def test_a_bad_range_is_refused_on_the_dashboard_and_by_the_report(client, runner):
    signed_in(client, runner)
    page = client.get("/workspace/dashboard?from=2026-11-31&to=2026-10-01")
    assert page.status_code == 422
    assert "&#39;2026-11-31&#39; is not a date: write it as YYYY-MM-DD" in page.get_data(as_text=True)
    result = runner.invoke(args=["report", "--from", "2026-11-02", "--to", "2026-11-01"])
    assert result.exit_code == 2
    assert "--to: The end date 2026-11-01 is before the start date 2026-11-02." in result.output


HEADER = "date,utm_source,utm_campaign,amount,currency\n"
GOOD = "2026-10-01,linkedin,abm,10.00,EUR\n"


@pytest.mark.parametrize("text, message", [
    (HEADER + GOOD + "2026-10-32,linkedin,abm,10,EUR\n", "line 3: date: '2026-10-32' is not a date"),
    (HEADER + GOOD + "01/10/2026,linkedin,abm,10,EUR\n", "line 3: date: '01/10/2026' is not a date"),
    (HEADER + GOOD + "2026-10-02,linkedin,abm,-5,EUR\n", "line 3: amount: '-5' is negative"),
    (HEADER + "2026-10-02,linkedin,abm,ten,EUR\n", "line 2: amount: 'ten' is not an amount"),
    (HEADER + "2026-10-02,linkedin,abm,\"1,000.00\",EUR\n", "line 2: amount: '1,000.00' is not an amount"),
    (HEADER + "2026-10-02,linkedin,abm,10,euro\n", "line 2: currency: 'euro' is not a currency code"),
    (HEADER + "2026-10-02,linkedin,abm,10,€\n", "line 2: currency: '€' is not a currency code"),
    (HEADER + f"2026-10-02,{'x' * 201},abm,10,EUR\n", "line 2: utm_source: too long: at most 200 characters"),
    (HEADER + "2026-10-02,,abm,10,EUR\n", "line 2: utm_source: empty"),
    (HEADER + "2026-10-02,linkedin,abm,10\n", "line 2: expected 5 values (as in the header), found 4."),
    ("date,utm_source,amount,currency\n2026-10-02,linkedin,10,EUR\n",
     "line 1 (the header): missing column utm_campaign."),
    ("2026-10-01,linkedin,abm,10.00,EUR\n", "line 1 (the header): missing columns date, utm_source"),
    (HEADER + GOOD + "\n2026-10-01,LinkedIn,ABM,12,EUR\n",
     "line 4: 2026-10-01 linkedin/abm is on line 2 already"),
    (HEADER, "has no rows after its header: nothing to import."),
])
def test_a_bad_spend_file_is_refused_whole_with_its_line(runner, store, tmp_path, text, message):
    path = tmp_path / "spend.csv"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(args=["spend", "import", str(path)])
    assert result.exit_code == 1
    assert f"Error: nothing imported from {path}; fix these and import it again:" in result.output
    assert message in result.output
    with store.read() as s:
        assert s.execute(select(func.count()).select_from(Spend)).scalar_one() == 0


def test_every_problem_of_a_spend_file_is_reported_at_once(runner, store, tmp_path):
    path = tmp_path / "spend.csv"
    path.write_text(HEADER + "2026-13-01,linkedin,abm,10,EUR\n" + GOOD + "2026-10-02,google,,x,EUR\n",
                    encoding="utf-8")
    result = runner.invoke(args=["spend", "import", str(path)])
    assert result.exit_code == 1
    assert "  line 2: date: '2026-13-01' is not a date" in result.output
    assert "  line 4: amount: 'x' is not an amount" in result.output


def test_a_corrected_spend_file_replaces_the_amounts(runner, store, tmp_path):
    path = tmp_path / "spend.csv"
    path.write_text(HEADER + GOOD + "2026-10-02,linkedin,,5,usd\n", encoding="utf-8")
    assert "2 new, 0 replaced" in runner.invoke(args=["spend", "import", str(path)]).output
    path.write_text(HEADER + "2026-10-01,LinkedIn,ABM,12.50,EUR\n", encoding="utf-8")
    assert "0 new, 1 replaced" in runner.invoke(args=["spend", "import", str(path)]).output
    with store.read() as s:
        assert sorted((r.day.isoformat(), r.utm_source, r.utm_campaign, Decimal(str(r.amount)), r.currency)
                      for r in s.scalars(select(Spend))) == [
            ("2026-10-01", "linkedin", "abm", Decimal("12.50"), "EUR"),
            ("2026-10-02", "linkedin", "", Decimal("5.00"), "USD")]
    listed = runner.invoke(args=["spend", "list", "--from", "2026-10-01", "--to", "2026-10-31", "--format", "csv"])
    assert listed.output.splitlines() == [
        "utm_source,utm_campaign,spend,currency,leads,mql,cost_per_lead,cost_per_mql",
        "linkedin,(none),5.00,USD,0,0,,", "linkedin,abm,12.50,EUR,0,0,,"]
