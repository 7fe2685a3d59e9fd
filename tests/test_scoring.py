"""Scoring as marketers and sales meet it: `leadgate check` on the rules they write, a visitor's
posts making an MQL, decay with a frozen clock, replay, and `leadgate rescore` stopped and run
again."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import delete, select, update

from capture.cli import main
from capture.db.models import Lead, StageChange, utcnow
from capture.scoring.apply import get_scoring, replay, rescore
from leads import find_lead
from live import free_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["lead-scoring-sales-trusts", "mql-hand-off-checklist", "telling-leads-from-prospects"]
SQLITE_ONLY = pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A copy of the shipped content: three resources, the settings, the notice, the starter rules."""
    return Path(shutil.copytree(ROOT / "content", tmp_path / "content"))


# --- `leadgate check`: every kind of bad rule file ------------------------------------------

RULES = """\
mql_threshold: 60
weights:
  fit: 50
  engagement: 50
fit:
  industry:
    - industries: [Software]
      points: 25
  company_size:
    - min: 201
      max: 5000
      points: 25
  job_title:
    - words: [vp, director]
      points: 30
  email:
    company_domain: 10
    free_mail: -15
  domain_lists:
    - label: competitor
      file: scoring/competitors.txt
      points: -60
engagement:
  half_life_days: 30
  resource_types:
    ebook: 20
  more_resources: [10, 15]
"""
COMPETITORS = "# Competitors, one a line.\nrival.example.com\n"


def changed(old: str, new: str) -> str:
    assert old in RULES, old
    return RULES.replace(old, new, 1)


BAD_RULES = [
    pytest.param("mql_threshold: [60\n", {},
                 "scoring.yml line 2: file: is not valid YAML (expected ',' or ']', but got '<stream end>')",
                 id="not-yaml"),
    pytest.param("", {}, "scoring.yml line 1: file: is empty; delete it to score nothing", id="empty"),
    pytest.param("- fit\n- engagement\n", {},
                 "scoring.yml line 1: file: expected a mapping of mql_threshold, weights, fit, engagement",
                 id="a-list"),
    pytest.param(RULES + "colour: blue\n", {},
                 "scoring.yml line 28: colour: unknown field (expected one of mql_threshold, weights, fit, "
                 "engagement)", id="unknown-key"),
    pytest.param(changed("weights:\n  fit: 50\n  engagement: 50\n", ""), {},
                 "scoring.yml line 1: weights: is missing", id="missing-key"),
    pytest.param(changed("points: 25", "points: ten"), {},
                 "scoring.yml line 8: fit.industry.points: expected a whole number, got 'ten'", id="points-ten"),
    pytest.param(changed("fit: 50", "fit: 60"), {},
                 "scoring.yml line 3: weights: fit and engagement must add up to 100, not 110",
                 id="weights-not-100"),
    pytest.param(changed("mql_threshold: 60", "mql_threshold: 150"), {},
                 "scoring.yml line 1: mql_threshold: expected a whole number from 1 to 100, got 150",
                 id="threshold-out-of-range"),
    pytest.param(changed("ebook: 20", "podcast: 20"), {},
                 "scoring.yml line 26: engagement.resource_types.podcast: unknown field (expected one of "
                 "ebook, whitepaper, tip-sheet, report)", id="unknown-resource-type"),
    pytest.param(changed("ebook: 20", "ebook: -5"), {},
                 "scoring.yml line 26: engagement.resource_types.ebook: expected a whole number from 0 to "
                 "100, got -5", id="negative-engagement"),
    pytest.param(changed("[Software]", "[Software, Mining]"), {},
                 "scoring.yml line 7: fit.industry.industries: 'Mining' is not an industry of leadgate.yml "
                 "(Software, Financial services, Healthcare, Manufacturing, Retail and e-commerce, "
                 "Education, Public sector, Other)", id="unknown-industry"),
    pytest.param(changed("max: 5000", "max: 100"), {},
                 "scoring.yml line 11: fit.company_size.max: 100 is below min 201", id="size-range-backwards"),
    pytest.param(changed("[vp, director]", "[]"), {},
                 "scoring.yml line 14: fit.job_title.words: expected at least one entry", id="no-words"),
    pytest.param(changed("free_mail: -15", "free_mail: -15\n    gmail: -5"), {},
                 "scoring.yml line 19: fit.email.gmail: unknown field (expected one of company_domain, "
                 "free_mail, disposable)", id="unknown-email-kind"),
    pytest.param(changed("scoring/competitors.txt", "scoring/rivals.txt"), {},
                 "scoring.yml line 21: fit.domain_lists.file: scoring/rivals.txt does not exist",
                 id="missing-domain-list"),
    pytest.param(changed("scoring/competitors.txt", "../outside.txt"), {},
                 "scoring.yml line 21: fit.domain_lists.file: expected a path inside the content folder",
                 id="domain-list-outside"),
    pytest.param(RULES, {"scoring/competitors.txt": COMPETITORS + "not a domain\n"},
                 "scoring/competitors.txt line 3: domain: 'not a domain' is not a domain such as example.com",
                 id="bad-domain-line"),
    pytest.param(changed("half_life_days: 30", "half_life_days: soon"), {},
                 "scoring.yml line 24: engagement.half_life_days: expected a number, got 'soon'",
                 id="half-life-not-a-number"),
    pytest.param(changed("more_resources: [10, 15]", "more_resources: 10"), {},
                 "scoring.yml line 27: engagement.more_resources: expected a list", id="more-not-a-list"),
    pytest.param(changed("    ebook: 20\n", "    ebook: 20\n  recency: high\n"), {},
                 "scoring.yml line 27: engagement.recency: unknown field (expected one of half_life_days, "
                 "resource_types, more_resources)", id="unknown-engagement-key"),
]


def write_rules(content_dir: Path, text: str, files: dict[str, str]) -> None:
    (content_dir / "scoring.yml").write_text(text, encoding="utf-8")
    for name, body in {"scoring/competitors.txt": COMPETITORS, **files}.items():
        (content_dir / name).write_text(body, encoding="utf-8")


@SQLITE_ONLY
def test_check_passes_the_shipped_content(runner, content_dir):
    result = runner.invoke(args=["check"])
    assert result.exit_code == 0, result.output
    version = get_scoring(runner.app).rules.version
    assert result.stdout == f"{content_dir}/: 3 resources, scoring rules {version}: no problems\n"
    assert result.stderr == ""


@SQLITE_ONLY
@pytest.mark.parametrize(("text", "files", "message"), BAD_RULES)
def test_check_names_file_line_and_field_of_a_bad_rule(runner, content_dir, text, files, message):
    write_rules(content_dir, text, files)
    result = runner.invoke(args=["check"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        message, f"Error: 1 problem in {content_dir}/: fix it and run `leadgate check` again."]


@SQLITE_ONLY
def test_check_prints_every_problem_at_once(runner, content_dir):
    rules = changed("points: 25", "points: ten").replace("mql_threshold: 60", "mql_threshold: 0")
    write_rules(content_dir, rules, {"scoring/competitors.txt": "rival\n"})
    settings = (content_dir / "leadgate.yml").read_text(encoding="utf-8")
    (content_dir / "leadgate.yml").write_text(settings.replace("currency: EUR", "currency: EURO"),
                                              encoding="utf-8")
    result = runner.invoke(args=["check"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "leadgate.yml: currency: 'EURO' is not an ISO 4217 currency code such as EUR, USD or GBP",
        "scoring.yml line 1: mql_threshold: expected a whole number from 1 to 100, got 0",
        "scoring.yml line 8: fit.industry.points: expected a whole number, got 'ten'",
        "scoring/competitors.txt line 1: domain: 'rival' is not a domain such as example.com",
        f"Error: 4 problems in {content_dir}/: fix them and run `leadgate check` again.",
    ]


@SQLITE_ONLY
@pytest.mark.parametrize(("key", "value", "message"), [
    ("disqualification_reasons", [], "leadgate.yml: disqualification_reasons: must be a non-empty list of "
                                     "text values"),
    ("disqualification_reasons", ["no budget", 7], "leadgate.yml: disqualification_reasons: must be a "
                                                   "non-empty list of text values"),
    ("disqualification_reasons", ["x" * 101],
     "leadgate.yml: disqualification_reasons: '" + "x" * 40 + "…' is longer than 100 characters"),
    ("currency", 12, "leadgate.yml: currency: '12' is not an ISO 4217 currency code such as EUR, USD or GBP"),
    ("currency", "XYZ", "leadgate.yml: currency: 'XYZ' is not an ISO 4217 currency code such as EUR, USD or GBP"),
])
def test_check_names_bad_qualification_settings(runner, content_dir, key, value, message):
    path = content_dir / "leadgate.yml"
    settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**settings, key: value}), encoding="utf-8")
    result = runner.invoke(args=["check"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        message, f"Error: 1 problem in {content_dir}/: fix it and run `leadgate check` again."]


def test_settings_give_the_qualification_defaults(tmp_path):
    from capture.catalog import load_settings

    settings = load_settings(tmp_path)
    assert settings.disqualification_reasons == (
        "not a buyer", "competitor", "student", "no budget", "no response", "duplicate")
    assert settings.currency == "EUR"


def test_the_build_refuses_bad_rules(tmp_path, content_dir):
    write_rules(content_dir, changed("points: 25", "points: ten"), {})
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: T\ndocs_dir: {content_dir}\nsite_dir: {tmp_path / 'out'}\n"
                      "theme: material\nplugins: [leadgate]\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["build", "-f", str(config)])
    assert result.exit_code == 1
    assert "  scoring.yml line 8: fit.industry.points: expected a whole number, got 'ten'" in result.output
    assert not (tmp_path / "out").exists()


def test_serve_refuses_bad_rules_before_starting(tmp_path, content_dir):
    write_rules(content_dir, changed("points: 25", "points: ten").replace("fit: 50", "fit: 40"), {})
    env = {"LEADGATE_CONTENT_DIR": str(content_dir), "LEADGATE_SECRET_KEY": "k" * 32, "LEADGATE_BASE_URL": "https://leads.example.com/",
           "LEADGATE_INSTANCE_PATH": str(tmp_path / "instance"),
           "LEADGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}"}
    result = CliRunner().invoke(main, ["serve", "--no-build", "--port", str(free_port())], env=env)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: scoring.yml line 3: weights: fit and engagement must add up to 100, not 90",
        "Error: scoring.yml line 8: fit.industry.points: expected a whole number, got 'ten'",
    ]
    assert not (tmp_path / "never.db").exists()


# --- The starter rules, driven by form posts -------------------------------------------------

def post(client, form_post, resource_id: str, address: str = "127.0.0.1", **fields: str) -> None:
    response = client.post("/submit", data=form_post(resource_id, **fields),
                           environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 303, response.get_data(as_text=True)


VP = {"email": "vp@northwind-software.com", "job_title": "VP of Marketing", "company_size": "201-1000",
      "industry": "Software"}
STUDENT = {"email": "kim.student@gmail.com", "job_title": "Student", "company_size": "1-10",
           "industry": "Education"}


def test_a_vp_who_requests_three_resources_becomes_an_mql_on_their_own(client, form_post, store):
    post(client, form_post, SHIPPED[0], **VP)
    assert find_lead(store, VP["email"]).stage == "lead"  # fits, but one whitepaper is not enough
    for resource_id in SHIPPED[1:]:
        post(client, form_post, resource_id, **VP)
    lead = find_lead(store, VP["email"])
    assert lead.stage == "mql"
    assert lead.score >= 60 and lead.mql_at is not None
    assert lead.fit == 90  # Software 25, 201-1000 25, "vp" 30, company address 10
    reasons = json.loads(lead.score_reasons)
    assert [rule for rule, _ in reasons["fit"]] == [
        "industry Software", "company size 201-1000", 'job title "vp"', "company address"]
    assert len(reasons["engagement"]) == 3
    with store.read() as s:
        [change] = s.scalars(select(StageChange).where(StageChange.lead_id == lead.id)).all()
    assert (change.from_stage, change.to_stage, change.actor_kind, change.actor) == (
        "lead", "mql", "rules", "scoring rules")
    assert change.reason.endswith("reached the MQL threshold of 60")


def test_a_student_with_free_mail_who_requests_one_is_not(client, form_post, store):
    post(client, form_post, SHIPPED[0], **STUDENT)
    lead = find_lead(store, STUDENT["email"])
    assert (lead.stage, lead.fit, lead.mql_at) == ("lead", 0, None)
    assert lead.score < 60
    assert [rule for rule, _ in json.loads(lead.score_reasons)["fit"]] == [
        'job title "student"', "free-mail address"]
    with store.read() as s:
        assert s.scalars(select(StageChange)).all() == []


# --- Decay with a frozen clock, and replay ---------------------------------------------------

def test_decay_a_year_on_and_replay_gives_the_stored_numbers(app, client, form_post, store):
    post(client, form_post, SHIPPED[2], **STUDENT)  # an ebook: 20 points of engagement today
    lead = find_lead(store, STUDENT["email"])
    scoring = get_scoring(app)
    posted = lead.scored_at
    with app.app_context():
        today, month, year = (replay(store, lead.id, as_of=posted + timedelta(days=days))
                              for days in (0, 30, 365))
    assert (today.engagement, month.engagement, year.engagement) == (20, 10, 0)
    assert today.score > year.score

    done = rescore(store, scoring, now=posted + timedelta(days=365), everyone=True)
    assert (done.scored, done.score_changed, done.promoted) == (1, 1, 0)
    later = find_lead(store, STUDENT["email"])
    assert (later.engagement, later.score) == (year.engagement, year.score)
    assert later.scored_at == posted + timedelta(days=365)
    with app.app_context():
        again = replay(store, lead.id)
    assert (again.fit, again.engagement, again.score) == (later.fit, later.engagement, later.score)
    assert again.reasons_json() == later.score_reasons


def test_an_mql_stays_an_mql_when_its_score_decays(app, client, form_post, store):
    for resource_id in SHIPPED:
        post(client, form_post, resource_id, **VP)
    lead = find_lead(store, VP["email"])
    rescore(store, get_scoring(app), now=lead.scored_at + timedelta(days=365), everyone=True)
    later = find_lead(store, VP["email"])
    assert later.score < 60
    assert (later.stage, later.mql_at) == ("mql", lead.mql_at)


# --- `leadgate rescore` -------------------------------------------------------------------------

PEOPLE = [
    {"email": f"person{n}@{domain}", "job_title": title, "company_size": size, "industry": industry}
    for n, (domain, title, size, industry) in enumerate([
        ("northwind-software.com", "VP of Marketing", "201-1000", "Software"),
        ("gmail.com", "Student", "1-10", "Education"),
        ("contoso-bank.com", "Head of Sales", "1001-5000", "Financial services"),
        ("fabrikam.com", "Marketing Manager", "51-200", "Manufacturing"),
        ("outlook.com", "Founder", "1-10", "Other"),
        ("example-competitor.com", "Director of Product", "201-1000", "Software"),
        ("example-customer.com", "Senior Analyst", "5000+", "Healthcare"),
        ("litware.io", "Assistant", "11-50", "Retail and e-commerce"),
        ("adatum.org", "Chief Revenue Officer", "1001-5000", "Public sector"),
        ("tailspin.dev", "", "", ""),
        ("wingtip.eu", "Director", "201-1000", "Software"),
    ])
]


def posted_people(client, form_post) -> None:
    for n, person in enumerate(PEOPLE):  # each from a network of their own (the form's rate limits)
        for resource_id in SHIPPED[: n % 3 + 1]:
            post(client, form_post, resource_id, f"10.{n}.0.1", **person)


def looser_rules(content_dir: Path) -> None:
    """What a marketer does before `leadgate rescore`: a lower threshold, fit weighs more."""
    path = content_dir / "scoring.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("mql_threshold: 60", "mql_threshold: 45")
                    .replace("fit: 50\n  engagement: 50", "fit: 70\n  engagement: 30"), encoding="utf-8")


SCORED = ("id", "fit", "engagement", "score", "score_reasons", "rules_version", "scored_at", "stage",
          "stage_changed_at", "mql_at")


def lead_rows(store) -> list[tuple]:
    with store.read() as s:
        return [tuple(row) for row in s.execute(select(*(getattr(Lead, c) for c in SCORED)).order_by(Lead.id))]


def change_rows(store) -> list[tuple]:
    with store.read() as s:
        return [tuple(row) for row in s.execute(
            select(StageChange.lead_id, StageChange.from_stage, StageChange.to_stage, StageChange.actor,
                   StageChange.reason, StageChange.created_at).order_by(StageChange.lead_id, StageChange.id))]


def restore(store, rows: list[tuple], changes: int) -> None:
    """Put the leads' scores and stages back as they were, and drop the stage changes since."""
    with store.write() as s:
        for row in rows:
            s.execute(update(Lead).where(Lead.id == row[0]).values(dict(zip(SCORED[1:], row[1:]))))
        newest = sorted(s.scalars(select(StageChange.id)).all())[changes:]
        if newest:
            s.execute(delete(StageChange).where(StageChange.id.in_(newest)))


def test_rescore_stopped_halfway_and_run_again_equals_one_run(make_app, client, form_post, store,
                                                              content_dir):
    posted_people(client, form_post)
    looser_rules(content_dir)
    scoring = get_scoring(make_app())
    now = utcnow() + timedelta(days=3)
    before, changes_before = lead_rows(store), len(change_rows(store))

    stop = threading.Event()
    first = rescore(store, scoring, now=now, batch=4, progress=lambda n: stop.set(), stop=stop)
    assert first.scored == 4
    assert len([row for row in lead_rows(store) if row[6] == now]) == 4
    second = rescore(store, scoring, now=now, batch=4)
    assert first.scored + second.scored == len(PEOPLE)
    assert rescore(store, scoring, now=now, batch=4).scored == 0  # nothing stale is left
    stopped = lead_rows(store), change_rows(store)

    restore(store, before, changes_before)
    assert lead_rows(store) == before
    once = rescore(store, scoring, now=now, batch=4)
    assert once.scored == len(PEOPLE)
    assert (lead_rows(store), change_rows(store)) == stopped
    assert first.promoted + second.promoted == once.promoted > 0
    assert first.score_changed + second.score_changed == once.score_changed


def test_leadgate_rescore_says_what_changed_and_a_second_run_has_nothing_left(make_app, client, form_post,
                                                                              store, content_dir):
    posted_people(client, form_post)
    mqls = sum(row[7] == "mql" for row in lead_rows(store))
    looser_rules(content_dir)
    runner = make_app().test_cli_runner()
    result = runner.invoke(args=["rescore"])
    assert result.exit_code == 0, result.output
    promoted = sum(row[7] == "mql" for row in lead_rows(store)) - mqls
    assert promoted > 0
    version = get_scoring(runner.app).rules.version
    assert all(row[5] == version for row in lead_rows(store))
    line = result.stdout.strip()
    assert line.startswith(f"{len(PEOPLE)} lead(s) scored with rules {version}: ")
    assert line.endswith(f"changed score, {promoted} changed stage (promoted to MQL).")
    assert "Rescoring leads" in result.stderr

    again = runner.invoke(args=["rescore"])
    assert again.stdout.strip() == (f"0 lead(s) scored with rules {version}: 0 changed score, "
                                    "0 changed stage (promoted to MQL).")
    every = runner.invoke(args=["rescore", "--all"])
    assert every.stdout.startswith(f"{len(PEOPLE)} lead(s) scored")


# --- `leadgate rescore` killed with SIGKILL -----------------------------------------------------

def fill_leads(url: str, count: int, now) -> None:
    """``count`` unscored leads with one to three posts each, written as rows (a post per lead
    through the form would take minutes); their scores come from the rescore under test."""
    import uuid

    from sqlalchemy import create_engine, insert

    from capture.db.models import Submission

    engine = create_engine(url)
    leads, posts = [], []
    for n in range(count):
        person = PEOPLE[n % len(PEOPLE)]
        email = person["email"].replace("@", f"+{n}@")
        # Half a day past a whole number of days: the reasons' "N days ago" cannot change between runs.
        at = now - timedelta(days=n % 40, hours=12)
        profile = {k: person[k] for k in ("job_title", "company_size", "industry")}
        leads.append({"id": n + 1, "email": email, "email_key": email, "first_seen": at, "last_seen": at,
                      **profile})
        for visit in range(n % 3 + 1):
            posts.append({"uid": uuid.uuid4(), "lead_id": n + 1, "resource_id": SHIPPED[visit],
                          "created_at": at, "email": email, **profile, "user_agent": "test",
                          "ip_prefix": "203.0.113.0/24", "terms_accepted": True, "terms_version": "t",
                          "terms_sha256": "a" * 64, "marketing_opt_in": False, "marketing_version": "m",
                          "marketing_sha256": "b" * 64})
    with engine.begin() as conn:
        conn.execute(insert(Lead), leads)
        conn.execute(insert(Submission), posts)
    engine.dispose()


def scored_rows(url: str) -> tuple[list[tuple], list[tuple]]:
    """Each lead's numbers, reasons (without the time they are as of) and stage, and the stage
    changes (without theirs): what two runs a few seconds apart must agree on."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.connect() as conn:
        leads = [(id_, fit, engagement, score, {**json.loads(reasons), "at": None}, version, stage, mql_at is not None)
                 for id_, fit, engagement, score, reasons, version, stage, mql_at in conn.execute(
                     select(Lead.id, Lead.fit, Lead.engagement, Lead.score, Lead.score_reasons,
                            Lead.rules_version, Lead.stage, Lead.mql_at).order_by(Lead.id))]
        changes = [tuple(row) for row in conn.execute(
            select(StageChange.lead_id, StageChange.from_stage, StageChange.to_stage, StageChange.actor_kind,
                   StageChange.reason).order_by(StageChange.lead_id, StageChange.id))]
    engine.dispose()
    return leads, changes


@pytest.mark.slow  # `leadgate rescore` processes, 20,000 leads
@SQLITE_ONLY
def test_rescore_killed_halfway_and_run_again_equals_one_run(database_url, content_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from sqlalchemy import create_engine, func

    # A long half-life, so the seconds between the runs change no decayed point.
    rules = content_dir / "scoring.yml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("half_life_days: 30", "half_life_days: 3650"),
                     encoding="utf-8")
    count = 20_000
    fill_leads(database_url, count, utcnow())
    copy = tmp_path / "copy.db"
    shutil.copyfile(database_url.removeprefix("sqlite:///"), copy)
    copy_url = f"sqlite:///{copy}"
    leadgate = str(Path(sys.executable).parent / "leadgate")

    def run(url: str, **kwargs):
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("LEADGATE_")},
               "LEADGATE_DATABASE_URL": url, "LEADGATE_CONTENT_DIR": str(content_dir),
               "LEADGATE_SECRET_KEY": "k" * 32, "LEADGATE_BASE_URL": "https://leads.example.com/", "LEADGATE_INSTANCE_PATH": str(tmp_path / "instance")}
        return subprocess.Popen([leadgate, "rescore"], env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kwargs)

    engine = create_engine(database_url)
    stopped = run(database_url)
    assert stopped.stderr.readline().startswith("Rescoring leads")  # the progress bar has begun
    done = 0
    deadline = time.monotonic() + 60
    while done == 0 and stopped.poll() is None and time.monotonic() < deadline:
        with engine.connect() as conn:
            done = conn.execute(select(func.count()).select_from(Lead).where(Lead.scored_at.is_not(None))).scalar()
        time.sleep(0.005)
    stopped.send_signal(signal.SIGKILL)
    stopped.communicate()
    with engine.connect() as conn:
        done = conn.execute(select(func.count()).select_from(Lead).where(Lead.scored_at.is_not(None))).scalar()
    engine.dispose()
    assert 0 < done < count, f"the rescore was not stopped halfway ({done} of {count} done)"

    again = run(database_url)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert out.startswith(f"{count - done} lead(s) scored")  # it carried on where the kill left it

    once = run(copy_url)
    out, err = once.communicate(timeout=120)
    assert once.returncode == 0, err
    assert out.startswith(f"{count} lead(s) scored")
    assert scored_rows(database_url) == scored_rows(copy_url)
    leads, changes = scored_rows(copy_url)
    assert len(changes) == sum(lead[6] == "mql" for lead in leads) > 0
