"""The CSV sales opens: one row per lead, sources, consent, and no formulas that run."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from capture.catalog import ConsentText
from capture.cli import main
from capture.export import iter_csv, neutralise, write_csv
from capture.store import NewSubmission

TERMS = ConsentText("terms", "terms-2026-11", "I agree that my details are stored.")
MARKETING = ConsentText("marketing", "marketing-2026-11", "Send me news.")
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)

HEADER = [
    "email", "first_name", "last_name", "company", "job_title", "company_size", "industry",
    "first_utm_source", "first_utm_medium", "first_utm_campaign", "first_referrer", "first_landing_page",
    "latest_utm_source", "latest_utm_medium", "latest_utm_campaign", "latest_referrer",
    "latest_landing_page", "resources", "terms_version", "marketing_opt_in", "marketing_opt_in_at",
    "first_seen", "last_seen",
]


def record(store, email: str = "ann@example.com", **fields) -> None:
    fields.setdefault("resource_id", "leads-vs-prospects")
    fields.setdefault("marketing_opt_in", False)
    store.record_submission(NewSubmission(email=email, terms=TERMS, marketing=MARKETING, **fields))


def rows(store) -> list[dict[str, str]]:
    text = "".join(iter_csv(store))
    return list(csv.DictReader(io.StringIO(text)))


def test_header_and_one_row_per_lead(store):
    record(store, "ann@example.com")
    record(store, "Ann@example.com", resource_id="scoring")
    record(store, "bob@example.com")
    text = "".join(iter_csv(store))
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == HEADER
    assert [row[0] for row in reader] == ["Ann@example.com", "bob@example.com"]  # as last typed


def test_first_and_latest_source(store):
    record(store, first_name="Ann", company="Acme", utm_source="newsletter", utm_medium="email",
           utm_campaign="autumn", referrer="https://news.example.org/",
           landing_page="https://site.example.com/resources/leads-vs-prospects/", created_at=T0)
    record(store, resource_id="scoring", job_title="CTO", utm_source="linkedin", utm_medium="social",
           utm_campaign="q4", landing_page="https://site.example.com/resources/scoring/",
           marketing_opt_in=True, created_at=T0 + timedelta(days=2, hours=1))
    [row] = rows(store)
    assert row["email"] == "ann@example.com"
    assert (row["first_name"], row["company"], row["job_title"]) == ("Ann", "Acme", "CTO")
    assert (row["first_utm_source"], row["first_utm_medium"], row["first_utm_campaign"]) == (
        "newsletter", "email", "autumn")
    assert row["first_referrer"] == "https://news.example.org/"
    assert row["first_landing_page"] == "https://site.example.com/resources/leads-vs-prospects/"
    assert (row["latest_utm_source"], row["latest_utm_campaign"]) == ("linkedin", "q4")
    assert row["latest_landing_page"] == "https://site.example.com/resources/scoring/"
    assert row["resources"] == "leads-vs-prospects;scoring"
    assert row["terms_version"] == "terms-2026-11"
    assert row["marketing_opt_in"] == "yes"
    assert row["marketing_opt_in_at"] == "2026-11-04T09:30:00Z"
    assert (row["first_seen"], row["last_seen"]) == ("2026-11-02T08:30:00Z", "2026-11-04T09:30:00Z")


def test_latest_marketing_choice_counts(store):
    record(store, marketing_opt_in=True, created_at=T0)
    record(store, marketing_opt_in=False, created_at=T0 + timedelta(days=1))
    record(store, "bob@example.com", marketing_opt_in=False, created_at=T0)
    ann, bob = rows(store)
    assert (ann["marketing_opt_in"], ann["marketing_opt_in_at"]) == ("no", "2026-11-03T08:30:00Z")
    assert bob["marketing_opt_in"] == "no"


def test_timestamps_are_iso_8601_utc(store):
    record(store)
    [row] = rows(store)
    for name in ("first_seen", "last_seen", "marketing_opt_in_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[name])


def test_formula_cells_are_neutralised(store):
    record(store, "=cmd|'/Ccalc'!A0@example.com", first_name="+SUM(A1:A9)", last_name="-2+3",
           company="@evil", job_title="＝HYPERLINK(1)", utm_source="＋x", utm_campaign="－1",
           referrer="＠x", company_size="1-10")
    record(store, "=cmd@example.com", first_name="Ann-Marie", company="foo@example.org")
    first, second = rows(store)
    assert first["email"] == "'=cmd|'/Ccalc'!A0@example.com"
    assert (first["first_name"], first["last_name"], first["company"]) == ("'+SUM(A1:A9)", "'-2+3", "'@evil")
    assert first["job_title"] == "'＝HYPERLINK(1)"
    assert (first["first_utm_source"], first["first_utm_campaign"], first["first_referrer"]) == (
        "'＋x", "'－1", "'＠x")
    assert first["company_size"] == "1-10"
    assert second["email"] == "'=cmd@example.com"
    assert (second["first_name"], second["company"]) == ("Ann-Marie", "foo@example.org")


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(1)", "'@SUM(1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("\nx", "'\nx"),
    ("＝1", "'＝1"), ("＋1", "'＋1"), ("－1", "'－1"), ("＠1", "'＠1"),
    ("1-2", "1-2"), ("ann@example.com", "ann@example.com"), ("", ""), ("Acme = best", "Acme = best"),
])
def test_neutralise_rule(value, cell):
    assert neutralise(value) == cell


def test_commas_quotes_and_line_breaks_stay_in_their_cell(store):
    record(store, company='Acme, "The Best" Inc.')
    [row] = rows(store)
    assert row["company"] == 'Acme, "The Best" Inc.'


def test_export_streams(store):
    for n in range(25):
        record(store, f"lead{n:02}@example.com")
    statements = []

    def watch(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(context.execution_options)

    event.listen(store.engine, "before_cursor_execute", watch)
    try:
        lines = iter_csv(store, chunk_size=10)
        assert next(lines).startswith("email,")
        assert statements == []  # the header leaves before the query runs
        body = list(lines)
    finally:
        event.remove(store.engine, "before_cursor_execute", watch)
    assert len(body) == 25
    assert body[0].startswith("lead00@example.com,") and body[-1].startswith("lead24@example.com,")
    assert len(statements) == 1
    assert statements[0]["stream_results"] is True
    assert statements[0]["yield_per"] == 10


def test_write_csv_with_bom_for_excel(store):
    record(store)
    out = io.StringIO()
    assert write_csv(store, out, bom=True) == 1
    assert out.getvalue().startswith("\ufeffemail,")


def test_empty_database_gives_just_the_header(store):
    assert list(iter_csv(store)) == [",".join(HEADER) + "\r\n"]


def test_export_command(runner, store):
    record(store, "=cmd@example.com")
    result = runner.invoke(main, ["export"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split(",") == HEADER
    assert lines[1].startswith("'=cmd@example.com,")
