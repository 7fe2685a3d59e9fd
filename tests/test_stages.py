"""Stages as sales move them: `leadgate stage` and ``POST /api/leads/<id>/stage``, the moves
refused with the rule they break, and the history that names who moved a lead and why."""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from capture.leads.stages import stage_history
from leads import find_lead
from staff import add_user

ROOT = Path(__file__).resolve().parent.parent
SAM = "sam@example.com"
TOKEN = re.compile(r"lg_[A-Za-z0-9_-]{20,}")
#: A student on free mail who asked for one resource: score 10, far below the threshold of 60.
STUDENT = {"email": "ann@gmail.com", "job_title": "Student", "company_size": "1-10", "industry": "Education"}


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A copy of the shipped content: its settings (reasons, currency) and starter rules."""
    return Path(shutil.copytree(ROOT / "content", tmp_path / "content"))


@pytest.fixture
def lead(client, form_post, store):
    """A lead posted through the form, as a visitor sends it."""
    response = client.post("/submit", data=form_post("telling-leads-from-prospects", **STUDENT))
    assert response.status_code == 303
    return find_lead(store, STUDENT["email"])


@pytest.fixture
def sam(runner) -> str:
    assert add_user(runner, SAM, "sales").exit_code == 0
    return SAM


def stage(runner, *args: str, by: str = SAM):
    return runner.invoke(args=["stage", STUDENT["email"], *args, "--by", by])


def moved(runner, *stages: str) -> None:
    """Moves that are allowed, to put the lead where a test starts."""
    for to in stages:
        extra = {"disqualified": ["--reason", "no budget"], "mql": ["--reason", "met at the fair"]}.get(to, [])
        result = stage(runner, to, *extra)
        assert result.exit_code == 0, result.output


# --- `leadgate stage` ---------------------------------------------------------------------------

def test_stage_moves_the_lead_and_the_history_says_who_and_why(runner, store, lead, sam):
    result = stage(runner, "sql", "--reason", "called back, has a budget")
    assert (result.exit_code, result.stdout) == (0, f"{STUDENT['email']}: lead → sql (by {SAM})\n")
    result = stage(runner, "prospect", "--channel", "call")
    assert result.stdout == f"{STUDENT['email']}: sql → prospect (by {SAM})\n"
    result = stage(runner, "customer", "--value", "12,000.50")
    assert result.exit_code == 0, result.output
    after = find_lead(store, STUDENT["email"])
    assert (after.stage, after.deal_value, after.deal_currency) == ("customer", Decimal("12000.50"), "EUR")
    assert after.sql_at is not None and after.prospect_at is not None and after.customer_at is not None
    history = [(c.from_stage, c.to_stage, c.actor_kind, c.actor, c.reason, c.channel)
               for c in stage_history(store, lead.id)]
    assert history == [
        ("lead", "sql", "user", SAM, "called back, has a budget", ""),
        ("sql", "prospect", "user", SAM, "", "call"),
        ("prospect", "customer", "user", SAM, "", ""),
    ]


def test_an_mql_by_hand_below_the_threshold_needs_a_reason(runner, store, lead, sam):
    result = stage(runner, "mql", "--reason", "asked for a demo at the fair")
    assert result.exit_code == 0, result.output
    assert find_lead(store, STUDENT["email"]).mql_at is not None


def test_a_disqualified_lead_keeps_the_reason_and_may_be_recycled(runner, store, lead, sam):
    moved(runner, "disqualified", "recycled", "mql")
    assert [c.to_stage for c in stage_history(store, lead.id)] == ["disqualified", "recycled", "mql"]
    assert find_lead(store, STUDENT["email"]).disqualified_reason == "no budget"


REFUSED = [
    pytest.param(["sql", "customer"], ["lead"],
                 "A lead cannot move from customer to lead: a customer stays a customer: record a new deal "
                 "rather than moving it back.", id="customer-to-lead"),
    pytest.param([], ["prospect"],
                 "A lead cannot move from lead to prospect: a lead becomes a prospect once sales accepted it "
                 "(sql) and it replied.", id="lead-to-prospect"),
    pytest.param([], ["customer", "--value", "100"],
                 "A lead cannot move from lead to customer: a customer bought; sales accepts a lead (sql) "
                 "before it can become a customer.", id="lead-to-customer"),
    pytest.param(["sql"], ["mql"],
                 "A lead cannot move from sql to mql: only a lead or a recycled lead can become an MQL.",
                 id="sql-back-to-mql"),
    pytest.param([], ["recycled"],
                 "A lead cannot move from lead to recycled: only a lead sales has seen (mql, sql, prospect or "
                 "disqualified) can be recycled.", id="lead-to-recycled"),
    pytest.param(["disqualified"], ["sql"],
                 "A lead cannot move from disqualified to sql: sales accepts a lead, an MQL or a recycled lead; "
                 "recycle a disqualified lead first.", id="disqualified-to-sql"),
    pytest.param([], ["mql"],
                 "The score is 10, below the MQL threshold of 60: give a reason to make this lead an MQL "
                 "by hand.", id="mql-by-hand-without-reason"),
    pytest.param([], ["disqualified"],
                 "Give the reason for disqualifying: not a buyer, competitor, student, no budget, no response, "
                 "duplicate.", id="disqualified-without-reason"),
    pytest.param([], ["disqualified", "--reason", "bored"],
                 "'bored' is not a disqualification reason: use one of not a buyer, competitor, student, "
                 "no budget, no response, duplicate.", id="disqualified-unknown-reason"),
    pytest.param(["sql"], ["sql"], "This lead is already an SQL.", id="same-stage"),
    pytest.param([], ["lead"], "This lead is already a lead.", id="same-stage-lead"),
    pytest.param([], ["sql", "--value", "5000"], "A deal value goes with a move to customer.",
                 id="value-not-customer"),
    pytest.param([], ["sql", "--channel", "call"],
                 "A channel goes with a move to prospect, and is one of email, call, meeting, linkedin.",
                 id="channel-not-prospect"),
    pytest.param(["sql"], ["prospect", "--channel", "fax"],
                 "A channel goes with a move to prospect, and is one of email, call, meeting, linkedin.",
                 id="unknown-channel"),
    pytest.param(["sql"], ["customer", "--value", "lots"],
                 "'lots' is not an amount: write it as 12000 or 12000.50.", id="value-not-an-amount"),
    pytest.param(["sql"], ["customer", "--value", "-5"],
                 "Give a deal value from 0 to 999,999,999,999.99.", id="value-negative"),
    pytest.param(["sql"], ["customer", "--value", "100", "--currency", "EURO"],
                 "'EURO' is not a currency code such as EUR or USD.", id="bad-currency"),
    pytest.param([], ["won"],
                 "Unknown stage 'won': use one of lead, mql, sql, prospect, customer, disqualified, recycled.",
                 id="unknown-stage"),
]


@pytest.mark.parametrize(("before", "args", "message"), REFUSED)
def test_refused_moves_name_the_rule(runner, store, lead, sam, before, args, message):
    moved(runner, *before)
    history = [c.id for c in stage_history(store, lead.id)]
    result = stage(runner, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {message}\n"
    assert [c.id for c in stage_history(store, lead.id)] == history  # nothing recorded
    assert find_lead(store, STUDENT["email"]).stage == (before[-1] if before else "lead")


@pytest.mark.parametrize(("args", "message"), [
    (["sql", "--by", "mia@example.com"],
     "Error: --by: mia@example.com is a marketing account: marketing sees everything and moves nothing: "
     "only sales and admin accounts move leads between stages."),
    (["sql", "--by", "nobody@example.com"],
     "Error: --by: There is no account for nobody@example.com (see `leadgate user list`)."),
])
def test_only_sales_and_admin_move_leads(runner, store, lead, sam, args, message):
    assert add_user(runner, "mia@example.com", "marketing").exit_code == 0
    result = runner.invoke(args=["stage", STUDENT["email"], *args])
    assert (result.exit_code, result.stderr) == (1, message + "\n")
    assert find_lead(store, STUDENT["email"]).stage == "lead"


def test_an_admin_moves_leads_too(runner, lead):
    assert add_user(runner, "ada@example.com", "admin").exit_code == 0
    assert stage(runner, "sql", by="ada@example.com").stdout == f"{STUDENT['email']}: lead → sql (by ada@example.com)\n"


def test_an_unknown_lead_is_one_error_line(runner, lead, sam):
    result = runner.invoke(args=["stage", "Nobody@Example.com", "sql", "--by", SAM])
    assert (result.exit_code, result.stderr) == (1, "Error: There is no lead with the address nobody@example.com.\n")
    result = runner.invoke(args=["stage", "not-an-address", "sql", "--by", SAM])
    assert result.exit_code == 1 and result.stderr.startswith("Error: 'not-an-address' is not an email address")


def test_the_email_is_found_in_any_case(runner, lead, sam):
    result = runner.invoke(args=["stage", "ANN@GMAIL.COM", "sql", "--by", "Sam@Example.com"])
    assert result.stdout == f"{STUDENT['email']}: lead → sql (by {SAM})\n"


# --- POST /api/leads/<id>/stage -------------------------------------------------------------------

def create_token(runner, email: str, role: str) -> str:
    assert add_user(runner, email, role).exit_code == 0
    result = runner.invoke(args=["token", "create", email, "--name", "CRM sync"])
    assert result.exit_code == 0, result.output
    return TOKEN.search(result.output).group(0)


def move(client, lead_id: int, token: str | None, **body):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(f"/api/leads/{lead_id}/stage", json=body, headers=headers)


def test_a_sales_token_moves_a_lead_and_the_history_names_its_owner(client, runner, store, lead):
    token = create_token(runner, SAM, "sales")
    response = move(client, lead.id, token, stage="sql", reason="replied to the nurture email")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["ok"] is True
    assert body["lead"] == {"id": lead.id, "email": STUDENT["email"], "stage": "sql", "score": lead.score}
    [change] = stage_history(store, lead.id)
    assert (change.actor_kind, change.actor, change.reason) == (
        "token", f"{SAM} (API token)", "replied to the nurture email")
    assert body["change"] == {"from": "lead", "to": "sql", "by": f"{SAM} (API token)",
                              "reason": "replied to the nurture email", "at": change.created_at.isoformat()}


def test_form_fields_work_as_well_as_json(client, runner, store, lead):
    token = create_token(runner, "ada@example.com", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post(f"/api/leads/{lead.id}/stage", data={"stage": "disqualified", "reason": "student"},
                           headers=headers)
    assert response.status_code == 200, response.get_json()
    assert find_lead(store, STUDENT["email"]).disqualified_reason == "student"


def test_a_marketing_token_may_not_move(client, runner, store, lead):
    token = create_token(runner, "mia@example.com", "marketing")
    response = move(client, lead.id, token, stage="sql")
    assert response.status_code == 403
    assert "marketing sees everything and moves nothing" in response.get_json()["error"]
    assert stage_history(store, lead.id) == []


@pytest.mark.parametrize("header", [None, "Bearer lg_not-a-real-token"])
def test_no_token_or_a_bad_one_is_401(client, store, lead, header):
    headers = {"Authorization": header} if header else {}
    response = client.post(f"/api/leads/{lead.id}/stage", json={"stage": "sql"}, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["ok"] is False
    assert "WWW-Authenticate" in response.headers
    assert stage_history(store, lead.id) == []


def test_api_refusals(client, runner, store, lead):
    token = create_token(runner, SAM, "sales")
    headers = {"Authorization": f"Bearer {token}"}
    response = move(client, lead.id + 1000, token, stage="sql")
    assert (response.status_code, response.get_json()["error"]) == (404, f"There is no lead {lead.id + 1000}.")

    response = move(client, lead.id, token, stage="mql")
    assert response.status_code == 422
    message = ("The score is 10, below the MQL threshold of 60: give a reason to make this lead an MQL "
               "by hand.")
    assert response.get_json()["errors"] == {"reason": [message]}

    response = move(client, lead.id, token, stage="customer", value=100)
    assert response.get_json()["errors"]["stage"][0].startswith("A lead cannot move from lead to customer")

    response = move(client, lead.id, token)
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "stage": ["Give the stage to move to: one of lead, mql, sql, prospect, customer, disqualified, recycled."]}

    response = move(client, lead.id, token, stage="sql", reason="r" * 501)
    assert response.get_json()["errors"] == {"reason": ["Keep reason to 500 characters."]}

    response = move(client, lead.id, token, stage=["sql"])
    assert response.get_json()["errors"] == {"stage": ["Give stage as text."]}

    response = client.post(f"/api/leads/{lead.id}/stage", data="stage=sql", headers={
        **headers, "Content-Type": "text/plain"})
    assert response.status_code == 415

    response = client.post(f"/api/leads/{lead.id}/stage", data="[1, 2", headers={
        **headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert stage_history(store, lead.id) == []
