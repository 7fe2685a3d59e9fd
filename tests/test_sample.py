"""`leadgate sample`: a demo fills itself with fake leads, stage moves and spend, the real way."""

from __future__ import annotations

import json
import re

from sqlalchemy import func, select

from capture.db.models import Lead, Spend, StageChange, Submission, User
from capture.leads.submission import NewSubmission, record_submission
from staff import signed_in

SUMMARY = re.compile(r"Made (\d+) sample leads \((\d+) form posts\) from \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d; "
                     r"(\d+) stage moves by rep@sample\.example \(.*\); (\d+) spend rows")


def counts(store):
    with store.read() as s:
        return {name: s.execute(select(func.count()).select_from(model)).scalar_one()
                for name, model in (("leads", Lead), ("posts", Submission), ("moves", StageChange),
                                    ("spend", Spend))}


def test_a_sample_fills_the_dashboard_and_the_report(client, runner, store):
    result = runner.invoke(args=["sample", "--leads", "60", "--seed", "7"])
    assert result.exit_code == 0, result.output
    made = SUMMARY.search(result.output)
    assert made, result.output
    leads, posts, moves, spend = map(int, made.groups())
    assert leads == 60 and posts > leads and moves > 0 and spend > 0
    stored = counts(store)
    assert stored["leads"] == 60 and stored["posts"] == posts and stored["spend"] == spend
    with store.read() as s:
        emails = s.scalars(select(Lead.email)).all()
        assert all(email.endswith(".example") for email in emails)
        assert all("Sample" in name for name in s.scalars(select(Lead.last_name).distinct()))
        rep = s.scalars(select(User).where(User.email == "rep@sample.example")).one()
        assert rep.role == "sales"
        by_rep = s.execute(select(func.count()).select_from(StageChange)
                           .where(StageChange.actor == "rep@sample.example")).scalar_one()
        assert by_rep == moves
        # Stage moves in the past, after the lead's first post; the scores brought to today.
        assert s.execute(select(func.count()).select_from(StageChange).join(Lead, Lead.id == StageChange.lead_id)
                         .where(StageChange.created_at < Lead.first_seen)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(Lead).where(Lead.scored_at.is_(None))).scalar_one() == 0
    figures = json.loads(runner.invoke(args=["report", "--format", "json"]).output)["total"]
    assert figures["leads"] == 60 and figures["mql"] > 0 and figures["spend"] > 0
    signed_in(client, runner, "mo@example.com", role="marketing")
    page = client.get("/workspace/dashboard").get_data(as_text=True)
    funnel = dict(re.findall(r'<tr data-stage="([a-z]+)"><th scope="row">[^<]+</th><td>(\d+)</td>', page))
    assert funnel["lead"] == "60" and funnel["mql"] == str(figures["mql"]) and int(funnel["mql"]) > 0

    again = runner.invoke(args=["sample", "--leads", "5"])
    assert again.exit_code == 0, again.output
    assert counts(store)["leads"] == 65


def test_a_sample_is_refused_beside_real_leads_unless_forced(runner, store, catalog):
    record_submission(store, NewSubmission(email="ann@example.com", resource_id="scoring",
                                           terms=catalog.settings.terms, marketing=catalog.settings.marketing,
                                           marketing_opt_in=False))
    result = runner.invoke(args=["sample", "--leads", "10"])
    assert result.exit_code == 1
    assert ("Error: the database holds 1 lead that is not from a sample: a sample would mix with them "
            "in every report.") in result.output
    assert counts(store) == {"leads": 1, "posts": 1, "moves": 0, "spend": 0}
    forced = runner.invoke(args=["sample", "--leads", "10", "--force"])
    assert forced.exit_code == 0, forced.output
    assert counts(store)["leads"] == 11
