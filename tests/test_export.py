"""The CSV sales opens: one row per lead, sources, consent, and no formulas that run."""

from __future__ import annotations

import csv
import json
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from capture.catalog import ConsentText
from capture.cli import main
from capture.leads.export import ExportOptions, iter_export, neutralise, write_export
from capture.db.models import Download
from capture.leads.submission import NewSubmission
from capture.leads.submission import record_submission
from capture.scoring.apply import get_scoring

from capture.consent import ledger
from leads import find_lead

TERMS = ConsentText("terms", "terms-2026-11", "I agree that my details are stored.")
MARKETING = ConsentText("marketing", "marketing-2026-11", "Send me news.")
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)

HEADER = [
    "email", "first_name", "last_name", "company", "job_title", "company_size", "industry",
    "stage", "fit", "engagement", "score", "score_reasons", "first_utm_source", "first_utm_medium", "first_utm_campaign", "first_referrer", "first_landing_page",
    "latest_utm_source", "latest_utm_medium", "latest_utm_campaign", "latest_referrer",
    "latest_landing_page", "resources", "terms_state", "terms_version", "terms_at", "marketing_state",
    "marketing_version", "marketing_at", "marketing_opt_in", "marketing_opt_in_at", "first_seen", "last_seen",
]


def record(store, email: str = "ann@example.com", **fields) -> None:
    fields.setdefault("resource_id", "leads-vs-prospects")
    fields.setdefault("marketing_opt_in", False)
    fields.setdefault("terms", TERMS)
    fields.setdefault("marketing", MARKETING)
    record_submission(store, NewSubmission(email=email, **fields))


#: Rules small enough to read the expected score off: fit from the industry and the job title,
#: engagement from the type of what was requested (no decay within the test's second).
RULES = """
mql_threshold: 60
weights:
  fit: 50
  engagement: 50
fit:
  industry:
    - industries: [Software]
      points: 60
  job_title:
    - words: [intern]
      points: -20
engagement:
  half_life_days: 30
  resource_types:
    ebook: 40
    whitepaper: 60
"""


@pytest.fixture
def scored(app, content_dir, store):
    """Record a form post scored by RULES, as the service scores it (capture.scoring)."""
    (content_dir / "scoring.yml").write_text(RULES, encoding="utf-8")
    scoring = get_scoring(app)

    def post(email: str, **fields) -> None:
        fields.setdefault("resource_id", "leads-vs-prospects")
        fields.setdefault("marketing_opt_in", False)
        record_submission(store, NewSubmission(email=email, terms=TERMS, marketing=MARKETING, **fields),
                          scoring)

    return post


def rows(store) -> list[dict[str, str]]:
    text = b"".join(iter_export(store)).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_header_and_one_row_per_lead(store):
    record(store, "ann@example.com")
    record(store, "Ann@example.com", resource_id="scoring")
    record(store, "bob@example.com")
    text = b"".join(iter_export(store)).decode()
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


def test_an_unticked_box_later_does_not_withdraw_only_a_withdrawal_does(store):
    record(store, marketing_opt_in=True, created_at=T0)
    record(store, marketing_opt_in=False, created_at=T0 + timedelta(days=1))
    record(store, "bob@example.com", marketing_opt_in=False, created_at=T0)
    ann, bob = rows(store)
    assert (ann["marketing_opt_in"], ann["marketing_opt_in_at"]) == ("yes", "2026-11-02T08:30:00Z")
    assert (ann["marketing_state"], ann["marketing_version"], ann["marketing_at"]) == (
        "given", MARKETING.version, "2026-11-02T08:30:00Z")
    assert (bob["marketing_opt_in"], bob["marketing_state"]) == ("no", "declined")
    ledger.withdraw(store, find_lead(store, "ann@example.com").id, "marketing", ledger.UNSUBSCRIBE_PAGE,
                    at=T0 + timedelta(days=9))
    ann, _ = rows(store)
    assert (ann["marketing_opt_in"], ann["marketing_opt_in_at"]) == ("no", "")
    assert (ann["marketing_state"], ann["marketing_version"], ann["marketing_at"]) == (
        "withdrawn", MARKETING.version, "2026-11-11T08:30:00Z")
    assert (ann["terms_state"], ann["terms_version"], ann["terms_at"]) == (
        "given", TERMS.version, "2026-11-03T08:30:00Z")


def test_marketing_opt_in_at_is_the_opt_in_in_force(runner, store):
    record(store, "never@example.com", created_at=T0)
    record(store, "never@example.com", resource_id="scoring", created_at=T0 + timedelta(days=1))
    record(store, "once@example.com", marketing_opt_in=True, created_at=T0 + timedelta(hours=2))
    record(store, "renewed@example.com", marketing_opt_in=True, created_at=T0)
    record(store, "renewed@example.com", marketing_opt_in=True, created_at=T0 + timedelta(days=3))
    record(store, "back@example.com", marketing_opt_in=True, created_at=T0)
    record(store, "back@example.com", created_at=T0 + timedelta(days=1))  # unticked: still given…
    record(store, "back@example.com", marketing_opt_in=True, created_at=T0 + timedelta(days=5))  # …renewed
    expected = {
        "never@example.com": ("no", ""),
        "once@example.com": ("yes", "2026-11-02T10:30:00Z"),
        "renewed@example.com": ("yes", "2026-11-05T08:30:00Z"),
        "back@example.com": ("yes", "2026-11-07T08:30:00Z"),
    }
    found = export_rows(runner)  # the default columns: what sales opens
    assert {r["email"]: (r["marketing_opt_in"], r["marketing_opt_in_at"]) for r in found} == expected
    lines = export(runner, "--format", "jsonl", "--columns", "email,marketing_opt_in,marketing_opt_in_at")
    assert [json.loads(line) for line in lines.splitlines()] == [
        {"email": "never@example.com", "marketing_opt_in": False, "marketing_opt_in_at": None},
        {"email": "once@example.com", "marketing_opt_in": True, "marketing_opt_in_at": "2026-11-02T10:30:00Z"},
        {"email": "renewed@example.com", "marketing_opt_in": True, "marketing_opt_in_at": "2026-11-05T08:30:00Z"},
        {"email": "back@example.com", "marketing_opt_in": True, "marketing_opt_in_at": "2026-11-07T08:30:00Z"},
    ]


def test_consent_hashes_name_the_exact_words(runner, store):
    new_terms = ConsentText("terms", "terms-2027-01", "I agree that my details are stored for a year.")
    new_marketing = ConsentText("marketing", "marketing-2027-01", "Send me news and invitations.")
    record(store, marketing_opt_in=True, created_at=T0)
    record(store, resource_id="scoring", terms=new_terms, marketing=new_marketing,
           created_at=T0 + timedelta(days=1))
    record(store, "bob@example.com", marketing_opt_in=True, created_at=T0)
    columns = "email,terms_version,terms_sha256,marketing_opt_in,marketing_version,marketing_sha256"
    ann, bob = export_rows(runner, "--columns", columns)
    # Ann's latest post showed the new words; she left the new marketing text unticked, so the
    # consent she gave to the old words stands.
    assert list(ann.values()) == ["ann@example.com", "terms-2027-01", new_terms.sha256, "yes",
                                  "marketing-2026-11", MARKETING.sha256]
    assert list(bob.values()) == ["bob@example.com", "terms-2026-11", TERMS.sha256, "yes",
                                  "marketing-2026-11", MARKETING.sha256]
    [line, _] = export(runner, "--format", "jsonl", "--columns", "terms_sha256,marketing_sha256").splitlines()
    assert json.loads(line) == {"terms_sha256": new_terms.sha256, "marketing_sha256": MARKETING.sha256}
    assert "terms_sha256" not in export_rows(runner)[0]  # not in the default set


def test_hash_columns_need_no_join_of_their_own(store):
    record(store)
    joins = []

    def watch(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            joins.append(statement.upper().count(" JOIN "))

    event.listen(store.engine, "before_cursor_execute", watch)
    try:
        for columns in (("email",), ("email", "terms_version", "marketing_version"),
                        ("email", "terms_version", "terms_sha256", "marketing_version", "marketing_sha256")):
            b"".join(iter_export(store, ExportOptions(columns=columns)))
    finally:
        event.remove(store.engine, "before_cursor_execute", watch)
    assert joins == [0, 2, 2]


def test_timestamps_are_iso_8601_utc(store):
    record(store, marketing_opt_in=True)
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
        blocks = iter(iter_export(store, chunk_size=10))
        assert next(blocks).startswith(b"email,")
        assert statements == []  # the header leaves before the query runs
        body = list(blocks)
    finally:
        event.remove(store.engine, "before_cursor_execute", watch)
    assert [block.count(b"\r\n") for block in body] == [10, 10, 5]  # a block per chunk
    lines = b"".join(body).decode().splitlines()
    assert lines[0].startswith("lead00@example.com,") and lines[-1].startswith("lead24@example.com,")
    assert len(statements) == 1
    assert statements[0]["stream_results"] is True
    assert statements[0]["yield_per"] == 10


def test_write_csv_with_bom_for_excel(store):
    record(store)
    out = io.BytesIO()
    assert write_export(store, out, ExportOptions(excel=True)) == 1
    assert out.getvalue().startswith(b"\xef\xbb\xbfemail,")


def test_empty_database_gives_just_the_header(store):
    assert list(iter_export(store)) == [(",".join(HEADER) + "\r\n").encode()]


def test_export_command(runner, store):
    record(store, "=cmd@example.com")
    result = runner.invoke(main, ["export"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split(",") == HEADER
    assert lines[1].startswith("'=cmd@example.com,")


# --- Filters, columns and formats through the command, as sales runs it ---------------------

def export(runner, *args: str):
    result = runner.invoke(main, ["export", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def export_rows(runner, *args: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(export(runner, *args))))


def test_export_command_filters_like_a_sales_rep(runner, store):
    november = T0 + timedelta(days=10)
    record(store, "ann@acme.example", company="Acme", utm_source="linkedin", utm_campaign="q4",
           marketing_opt_in=True, created_at=november)
    record(store, "bob@acme.example", company="Acme", utm_source="linkedin", created_at=november)
    record(store, "cy@initech.example", company="Initech", utm_source="newsletter",
           marketing_opt_in=True, created_at=november)
    record(store, "dee@acme.example", company="Acme", utm_source="LinkedIn", marketing_opt_in=True,
           created_at=T0 - timedelta(days=40))
    found = export_rows(runner, "--utm-source", "linkedin", "--marketing", "yes")
    assert [r["email"] for r in found] == ["ann@acme.example", "dee@acme.example"]
    found = export_rows(runner, "--utm-source", "linkedin", "--marketing", "yes",
                        "--from", "2026-11-01", "--to", "2026-11-30")
    assert [(r["email"], r["latest_utm_campaign"]) for r in found] == [("ann@acme.example", "q4")]
    found = export_rows(runner, "--search", "ACME", "--marketing", "no")
    assert [r["email"] for r in found] == ["bob@acme.example"]
    found = export_rows(runner, "-s", "initech", "--type", "ebook", "--resource", "leads-vs-prospects")
    assert [r["email"] for r in found] == ["cy@initech.example"]


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "30/11/2026"], "--from: '30/11/2026' is not a date: write it as YYYY-MM-DD"),
    (["--marketing", "maybe"], "--marketing: Use yes or no, not 'maybe'."),
    (["--type", "video"], "--type: Unknown type 'video': use one of ebook, whitepaper, tip-sheet, report."),
    (["--resource", "nope"], "--resource: Unknown resource 'nope': use one of leads-vs-prospects, scoring."),
    (["--utm-source", "--marketing", "yes"],
     "Invalid value for '--utm-source': '--marketing' looks like an option, not a value: write the value "
     "right after --utm-source."),
    (["-s", "-o", "leads.csv"],
     "Invalid value for '-s' / '--search': '-o' looks like an option, not a value: write the value right "
     "after --search."),
    (["--columns", "email,phone,fax"], "--columns: Unknown columns: phone, fax. Valid columns: id, email,"),
    (["--columns", "email,email"], "--columns: Each column once: email is listed twice."),
    (["--format", "xlsx"], "--format: Use csv or jsonl, not 'xlsx'."),
    (["--format", "jsonl", "--excel"], "--excel: The Excel mark (a UTF-8 BOM) is for CSV only."),
])
def test_export_command_refuses_bad_options(runner, store, args, message):
    result = runner.invoke(main, ["export", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert result.stdout == ""


def test_export_command_reports_every_bad_option_at_once(runner, store):
    result = runner.invoke(main, ["export", "--from", "x", "--to", "y", "--columns", "nope"])
    assert result.exit_code == 2
    assert all(f"{name}:" in result.output for name in ("--from", "--to", "--columns"))


def test_chosen_columns_in_the_order_given(runner, store):
    record(store, "ann@example.com", first_name="Ann", created_at=T0)
    record(store, "ann@example.com", resource_id="scoring", utm_source="linkedin",
           created_at=T0 + timedelta(days=1))
    with store.write() as s:
        s.add(Download(lead_id=find_lead(store, "ann@example.com").id, resource_id="scoring",
                       created_at=T0 + timedelta(days=2)))
    lines = export(runner, "--columns", " last_seen, email,submissions,downloads,id,"
                   "first_resource_id,latest_resource_id,latest_utm_source,marketing_version").splitlines()
    assert lines == [
        "last_seen,email,submissions,downloads,id,first_resource_id,latest_resource_id,"
        "latest_utm_source,marketing_version",
        "2026-11-03T08:30:00Z,ann@example.com,2,1,1,leads-vs-prospects,scoring,linkedin,marketing-2026-11",
    ]


def test_all_columns(runner, store):
    from capture.leads.export import COLUMNS
    from capture.leads.queries import EXPORT_COLUMNS

    assert tuple(COLUMNS) == EXPORT_COLUMNS  # every column the store gives is described
    record(store)
    header, row = csv.reader(io.StringIO(export(runner, "--columns", "all")))
    assert header == list(EXPORT_COLUMNS)
    assert len(row) == len(header)


def test_excel_gets_a_bom_and_the_default_none(runner, store, tmp_path):
    record(store, first_name="Zoë")
    assert export(runner).startswith("email,")
    target = tmp_path / "leads.csv"
    result = runner.invoke(main, ["export", "--excel", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "1 lead written to" in result.output
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfemail,")
    assert "Zoë".encode() in data


def test_jsonl_carries_raw_values(runner, store):
    record(store, "=cmd@example.com", first_name="-2+3", company='Acme, "The" Inc.\nLtd',
           marketing_opt_in=True, created_at=T0)
    record(store, "=cmd@example.com", resource_id="scoring", created_at=T0 + timedelta(hours=1))
    record(store, "bob@example.com", created_at=T0)
    text = export(runner, "--format", "jsonl", "--columns",
                  "id,email,first_name,company,resources,marketing_opt_in,first_seen,last_download_at")
    ann, bob = [json.loads(line) for line in text.splitlines()]
    assert ann == {
        "id": 1, "email": "=cmd@example.com", "first_name": "-2+3", "company": 'Acme, "The" Inc.\nLtd',
        "resources": ["leads-vs-prospects", "scoring"], "marketing_opt_in": True,  # unticked later: still given
        "first_seen": "2026-11-02T08:30:00Z", "last_download_at": None,
    }
    assert bob["email"] == "bob@example.com"


def test_jsonl_default_columns(runner, store):
    record(store)
    [line] = export(runner, "--format", "jsonl").splitlines()
    assert list(json.loads(line)) == HEADER


@pytest.mark.parametrize("value", [
    'Acme, Inc.', 'The "Best" Co', "Line one\nLine two", "Carriage\r\nreturn", "Ünïcödé 🚀 data",
    "שלום עולם", "مرحبا، العالم", "\u202eevil\u202c", "a;b|c\tz", "😀,\"\n",
])
def test_any_text_survives_the_round_trip(store, value):
    record(store, company=value, job_title=value, utm_campaign=value)
    [row] = rows(store)
    assert (row["company"], row["job_title"], row["first_utm_campaign"]) == (value, value, value)


def test_neutralising_by_kind_of_column(runner, store):
    record(store, "-lead@example.com", first_name="@Ann", company="+Acme", utm_source="-x",
           referrer="=HYPERLINK(1)", created_at=T0, marketing_opt_in=True)
    [row] = export_rows(runner, "--columns", "all")
    text = ("email", "first_name", "company", "first_utm_source", "latest_referrer")
    assert [row[c] for c in text] == ["'-lead@example.com", "'@Ann", "'+Acme", "'-x", "'=HYPERLINK(1)"]
    # Columns the service writes itself are never prefixed.
    assert (row["id"], row["submissions"], row["downloads"]) == ("1", "1", "0")
    assert (row["first_seen"], row["marketing_opt_in"]) == ("2026-11-02T08:30:00Z", "yes")
    assert row["resources"] == row["first_resource_id"] == "leads-vs-prospects"
    assert row["last_download_at"] == ""


def test_every_column_parameter_and_option_is_documented():
    from pathlib import Path

    from capture.cli.export import EXPORT_OPTIONS
    from capture.leads.export import COLUMNS

    text = (Path(__file__).resolve().parent.parent / "docs" / "export.md").read_text(encoding="utf-8")
    missing = [f"`{name}`" for name in (*COLUMNS, *EXPORT_OPTIONS) if f"`{name}`" not in text]
    options = [o for p in main.commands["export"].params for o in p.opts if o.startswith("--")]
    missing += [f"`{o}" for o in options if f"`{o}" not in text and o != "--output"]
    assert not missing, f"docs/export.md does not mention {', '.join(missing)}"


# --- Stage and score -------------------------------------------------------------------------

def test_stage_and_score_columns_in_csv(runner, scored):
    scored("ann@example.com", industry="Software", job_title="Intern")
    scored("ann@example.com", resource_id="scoring")
    scored("bob@example.com")
    ann, bob = export_rows(runner)
    # Fit 60 − 20 = 40; engagement 40 (ebook) + 60 (whitepaper) = 100; score (40 + 100) / 2.
    assert (ann["stage"], ann["fit"], ann["engagement"], ann["score"]) == ("mql", "40", "100", "70")
    assert ann["score_reasons"] == (
        'industry Software +60; job title "intern" −20; ebook leads-vs-prospects +40; whitepaper scoring +60')
    assert (bob["stage"], bob["fit"], bob["engagement"], bob["score"]) == ("lead", "0", "40", "20")
    assert bob["score_reasons"] == "ebook leads-vs-prospects +40"


def test_unscored_lead_has_empty_reasons(runner, store):
    record(store)  # stored without scoring rules
    [row] = export_rows(runner, "--columns", "email,stage,score,score_reasons")
    assert row == {"email": "ann@example.com", "stage": "lead", "score": "0", "score_reasons": ""}


def test_stage_and_score_in_json_lines_are_values(runner, scored):
    scored("ann@example.com", industry="Software", resource_id="scoring")
    [line] = export(runner, "--format", "jsonl", "--columns",
                    "email,stage,fit,engagement,score,score_reasons").splitlines()
    assert json.loads(line) == {
        "email": "ann@example.com", "stage": "mql", "fit": 60, "engagement": 60, "score": 60,
        "score_reasons": [{"rule": "industry Software", "points": 60},
                          {"rule": "whitepaper scoring", "points": 60}]}


def test_score_reasons_are_neutralised_in_csv():
    from capture.leads.export import _reasons_cell

    stored = json.dumps({"version": "v", "at": "2026-12-01T00:00:00+00:00",
                         "fit": [["=HYPERLINK(1)", 10]], "engagement": []})
    assert _reasons_cell(stored) == "'=HYPERLINK(1) +10"


def test_export_command_filters_by_stage_and_score(runner, scored):
    scored("ann@example.com", industry="Software", resource_id="scoring")  # 60: mql
    scored("bob@example.com", resource_id="scoring")  # fit 0, engagement 60: 30
    scored("cy@example.com", job_title="Intern")  # fit 0 (held at 0), engagement 40: 20
    found = lambda *args: [r["email"] for r in export_rows(runner, "--columns", "email", *args)]
    assert found("--stage", "mql") == ["ann@example.com"]
    assert found("--stage", "LEAD") == ["bob@example.com", "cy@example.com"]
    assert found("--score-min", "30") == ["ann@example.com", "bob@example.com"]
    assert found("--score-min", "20", "--score-max", "30") == ["bob@example.com", "cy@example.com"]
    assert found("--fit-min", "60") == ["ann@example.com"]
    assert found("--fit-max", "0", "--engagement-min", "41") == ["bob@example.com"]
    assert found("--engagement-max", "40") == ["cy@example.com"]
    today = datetime.now(UTC).date().isoformat()
    assert found("--mql-from", today, "--mql-to", today) == ["ann@example.com"]
    assert found("--mql-to", "2026-01-01") == []


@pytest.mark.parametrize(("args", "message"), [
    (["--stage", "hot"], "--stage: Unknown stage 'hot': use one of lead, mql, sql"),
    (["--score-min", "101"], "--score-min: '101' is not a whole number from 0 to 100."),
    (["--fit-min", "50", "--fit-max", "10"], "--fit-max: The highest (10) is below the lowest (50)."),
    (["--engagement-max", "-1"], "--engagement-max: '-1' is not a whole number"),
    (["--mql-from", "2026-12-01", "--mql-to", "2026-11-01"], "--mql-to: The end date 2026-11-01 is before"),
])
def test_export_command_refuses_bad_stage_and_score_options(runner, store, args, message):
    result = runner.invoke(main, ["export", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_full_width_formula_alone_in_a_row_is_neutralised(store):
    """The row-wide search must find a full-width ＝ even when no other cell is risky."""
    record(store, "plain@example.com", first_name="Ann", company="＝HYPERLINK(1)")
    [row] = rows(store)
    assert row["company"] == "'＝HYPERLINK(1)"
    assert (row["email"], row["first_name"]) == ("plain@example.com", "Ann")
