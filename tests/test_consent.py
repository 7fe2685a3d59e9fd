"""The consent ledger as people act on it: a form post gives, a later unticked box does not
withdraw, a confirmation link confirms, an unsubscribe withdraws — once."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from capture.catalog import ConsentText
from capture.consent import ledger
from capture.consent.state import State, is_current, state_of
from capture.db.models import ConsentEvent, ConsentState, Erasure, Lead
from capture.db.store import get_store
from capture.leads.submission import NewSubmission, record_submission

from conftest import write_resource
from leads import consent_events, find_lead
from staff import csrf_token, signed_in

TERMS = ConsentText("terms", "terms-2026-11", "I agree that my details are stored.")
MARKETING = ConsentText("marketing", "marketing-2026-11", "Send me news.")
MARKETING_2 = ConsentText("marketing", "marketing-2026-12", "Send me news and invitations.")
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


def post(store, email: str = "ann@example.com", at: datetime = T0, **fields):
    fields.setdefault("resource_id", "leads-vs-prospects")
    fields.setdefault("marketing_opt_in", False)
    fields.setdefault("terms", TERMS)
    fields.setdefault("marketing", MARKETING)
    lead, _ = record_submission(store, NewSubmission(email=email, created_at=at, **fields))
    return lead


def ev(event: str, n: int, version: str = "v1") -> dict:
    return {"id": n, "event": event, "version": version, "sha256": version * 8, "created_at": T0 + timedelta(n)}


@pytest.mark.parametrize(("events", "state", "set_by"), [
    ([], None, None),
    (["given"], "given", 1),
    (["declined"], "declined", 1),
    (["given", "declined"], "given", 1),  # an unticked box later does not withdraw
    (["given", "confirmed"], "confirmed", 2),
    (["given", "confirmed", "given"], "confirmed", 2),  # given while confirmed stays confirmed
    (["given", "confirmed", "declined"], "confirmed", 2),
    (["given", "withdrawn"], "withdrawn", 2),
    (["given", "withdrawn", "declined"], "declined", 3),
    (["given", "withdrawn", "given"], "given", 3),
    (["declined", "given"], "given", 2),
])
def test_the_state_rule(events, state, set_by):
    result = state_of(ev(name, n + 1) for n, name in enumerate(events))
    assert (result and result.state, result and result.event_id) == (state, set_by)


@pytest.mark.parametrize(("state", "double_opt_in", "current"), [
    (None, False, False), ("given", False, True), ("given", True, False), ("confirmed", True, True),
    ("confirmed", False, True), ("declined", False, False), ("withdrawn", False, False),
])
def test_what_is_current(state, double_opt_in, current):
    value = state and State(state, 1, "v1", "a" * 64, T0)
    assert is_current(value, double_opt_in) is current


def test_withdraw_names_the_words_given_and_happens_once(store):
    lead = post(store, marketing_opt_in=True)
    later = T0 + timedelta(days=2)
    assert ledger.withdraw(store, lead.id, "marketing", ledger.ONE_CLICK, at=later, ip_prefix="192.0.2.0",
                           user_agent="Mail/1.0") is True
    assert ledger.withdraw(store, lead.id, "marketing", ledger.UNSUBSCRIBE_PAGE, at=later) is False
    last = consent_events(store, lead.id)[-1]
    assert (last.kind, last.event, last.method, last.version, last.sha256, last.granted) == (
        "marketing", "withdrawn", "one_click", MARKETING.version, MARKETING.sha256, False)
    assert (last.ip_prefix, last.user_agent) == ("192.0.2.0", "Mail/1.0")
    assert len(consent_events(store, lead.id)) == 3


def test_nothing_to_withdraw(store):
    lead = post(store)  # marketing left unticked
    assert ledger.withdraw(store, lead.id, "marketing", ledger.STAFF, at=T0, actor="sam@example.com") is False
    assert ledger.withdraw(store, 999_999, "marketing", ledger.STAFF, at=T0) is False
    assert [e.event for e in consent_events(store, lead.id)] == ["given", "declined"]


def test_confirm_confirms_the_latest_words_given_once(store):
    lead = post(store, marketing_opt_in=True)
    post(store, at=T0 + timedelta(hours=1), marketing=MARKETING_2, marketing_opt_in=True)
    post(store, at=T0 + timedelta(hours=2), marketing=MARKETING_2)  # unticked: still given
    at = T0 + timedelta(hours=3)
    assert ledger.confirm(store, lead.id, method=ledger.CONFIRMATION_LINK, at=at, ip_prefix="198.51.100.0",
                          user_agent="Browser") is True
    assert ledger.confirm(store, lead.id, method=ledger.CONFIRMATION_LINK, at=at) is False
    last = consent_events(store, lead.id)[-1]
    assert (last.event, last.method, last.version, last.sha256) == (
        "confirmed", "confirmation_link", MARKETING_2.version, MARKETING_2.sha256)
    assert find_lead(store, "ann@example.com").confirmed_at == at


def test_nothing_to_confirm_after_a_withdrawal(store):
    lead = post(store, marketing_opt_in=True)
    assert ledger.withdraw(store, lead.id, "marketing", ledger.UNSUBSCRIBE_PAGE, at=T0 + timedelta(1))
    assert ledger.confirm(store, lead.id, method=ledger.CONFIRMATION_LINK, at=T0 + timedelta(2)) is False
    assert find_lead(store, "ann@example.com").confirmed_at is None


def erase_allowed(store, lead_id: int) -> None:
    """What capture.privacy's erasure does first: the row that lets the lead's events go."""
    with store.engine.begin() as conn:
        conn.execute(sa.insert(Erasure.__table__).values(lead_id=lead_id, created_at=T0, channel="cli", actor=""))


def test_the_ledger_refuses_changes_and_deletions(store):
    lead = post(store, marketing_opt_in=True)
    statements = [sa.update(ConsentEvent.__table__).values(granted=False),
                  sa.update(ConsentEvent.__table__).values(version="forged").where(ConsentEvent.lead_id == lead.id),
                  sa.delete(ConsentEvent.__table__).where(ConsentEvent.lead_id == lead.id)]
    if store.dialect == "postgresql":
        statements.append(sa.text("TRUNCATE consent_events CASCADE"))
    for statement in statements:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), store.engine.begin() as conn:
            conn.execute(statement)
    assert [(e.event, e.version) for e in consent_events(store, lead.id)] == [
        ("given", TERMS.version), ("given", MARKETING.version)]


def test_erasure_may_delete_the_events_it_names_and_their_state(store):
    ann, bob = post(store, marketing_opt_in=True), post(store, "bob@example.com", marketing_opt_in=True)
    erase_allowed(store, ann.id)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(ConsentEvent.__table__).where(ConsentEvent.lead_id == ann.id))
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), conn.begin_nested():
            conn.execute(sa.delete(ConsentEvent.__table__).where(ConsentEvent.lead_id == bob.id))
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), conn.begin_nested():
            conn.execute(sa.update(ConsentEvent.__table__).values(actor="x").where(ConsentEvent.lead_id == bob.id))
    assert consent_events(store, ann.id) == [] and len(consent_events(store, bob.id)) == 2
    with store.read() as s:
        states = s.execute(sa.select(ConsentState.lead_id, ConsentState.purpose)).all()
    assert sorted(states) == [(bob.id, "marketing"), (bob.id, "terms")]
    assert find_lead(store, "ann@example.com").marketing_choice is None


def choice(store, email: str = "ann.lee@example.com") -> bool | None:
    return find_lead(store, email).marketing_choice


def test_an_unticked_box_on_a_later_form_does_not_withdraw(client, store, form_post):
    assert client.post("/submit", data=form_post(marketing_opt_in="yes")).status_code in (200, 303)
    assert choice(store) is True
    assert client.post("/submit", data=form_post("scoring")).status_code in (200, 303)  # box left unticked
    lead = find_lead(store, "ann.lee@example.com")
    assert [e.event for e in consent_events(store, lead.id) if e.kind == "marketing"] == ["given", "declined"]
    assert choice(store) is True
    assert ledger.withdraw(store, lead.id, "marketing", ledger.UNSUBSCRIBE_PAGE, at=T0 + timedelta(days=40))
    assert choice(store) is False


def test_never_ticked_is_not_current(client, store, form_post):
    client.post("/submit", data=form_post())
    assert choice(store) is False


def test_with_double_opt_in_only_a_confirmed_consent_is_current(make_app, form_post):
    app = make_app(DOUBLE_OPT_IN=True, SMTP_URL="smtp://127.0.0.1:1025", MAIL_FROM="news@example.com")
    store = get_store(app)
    app.test_client().post("/submit", data=form_post(marketing_opt_in="yes"))
    assert choice(store) is False
    lead = find_lead(store, "ann.lee@example.com")
    runner = app.test_cli_runner()
    headline = proof(runner).output.split("Marketing emails (marketing): ")[1].splitlines()[0]
    assert headline.startswith("given") and headline.endswith("; current: no")  # waits for its confirmation
    with app.app_context():
        assert ledger.confirm(store, lead.id, method=ledger.CONFIRMATION_LINK, at=T0 + timedelta(days=40))
    assert choice(store) is True
    out = proof(runner).output
    assert "Address confirmed 2026-12-12T08:30:00Z" in out
    headline = out.split("Marketing emails (marketing): ")[1].splitlines()[0]
    assert headline.startswith("confirmed") and headline.endswith("; current: yes")
    assert "method: confirmation_link (the confirmation link in an email)" in out


def proof(runner, email: str = "ann.lee@example.com"):
    return runner.invoke(args=["consent", "proof", email])


def test_proof_prints_every_event_to_the_word(client, runner, store, form_post, catalog):
    client.post("/submit", data=form_post(marketing_opt_in="yes"),
                headers={"Referer": "https://site.example.com/resources/leads-vs-prospects/",
                         "User-Agent": "Firefox/140"})
    client.post("/submit", data=form_post("scoring"))  # box left unticked: still given
    lead = find_lead(store, "ann.lee@example.com")
    ledger.withdraw(store, lead.id, "marketing", ledger.STAFF, at=T0 + timedelta(days=60),
                    actor="sam.sales@example.com")
    result = proof(runner, "Ann.Lee@Example.com")
    assert result.exit_code == 0, result.output
    out = result.output
    marketing, terms = catalog.settings.marketing, catalog.settings.terms
    assert f"Consent of ann.lee@example.com (lead {lead.id})" in out
    assert "Address not confirmed" in out
    assert f"Terms (terms): given, version {terms.version}" in out
    assert f"Marketing emails (marketing): withdrawn, version {marketing.version}, since 2027-01-01T08:30:00Z; current: no" in out
    assert out.count(f"words:  {marketing.text}") == 3  # given, declined, withdrawn
    assert out.count(f"sha256: {marketing.sha256}") == 3
    assert "method: form (the box on the form)" in out
    assert "from:   leads-vs-prospects on https://site.example.com/resources/leads-vs-prospects/" in out
    assert "method: staff (a member of staff, on the person's request)" in out
    assert "staff:  sam.sales@example.com" in out
    assert "Firefox/140" in out
    section = out[out.index("Marketing emails (marketing)"):]
    assert re.findall(r"^  \S+Z  (\w+)  version", section, re.M) == ["given", "declined", "withdrawn"]


@pytest.mark.parametrize(("email", "message"), [
    ("nobody@example.com", "Error: There is no lead with the address nobody@example.com."),
    ("not an address", "Error: 'not an address' is not an email address*"),
])
def test_proof_of_an_unknown_address_is_one_error_line(runner, email, message):
    result = proof(runner, email)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1
    assert fnmatch.fnmatchcase(lines[0], message), lines[0]


def test_a_replayed_post_older_than_a_withdrawal_does_not_bring_consent_back(store):
    lead = post(store, marketing_opt_in=True)
    assert ledger.withdraw(store, lead.id, "marketing", ledger.ONE_CLICK, at=T0 + timedelta(days=2))
    post(store, at=T0 + timedelta(days=1), marketing_opt_in=True)  # from the spool, after the withdrawal
    assert choice(store, "ann@example.com") is False
    post(store, at=T0 + timedelta(days=3), marketing_opt_in=True)  # a new post: given again
    assert choice(store, "ann@example.com") is True


# --- The lead page: the evidence, and a staff withdrawal -------------------------------------

WITHDRAW = re.compile(r'<form method="post" action="(/workspace/leads/\d+/consent/withdraw)">')


def test_staff_withdraw_marketing_consent_from_the_lead_page(client, runner, store, form_post):
    signed_in(client, runner, "sam.sales@example.com", "sales")
    client.post("/submit", data=form_post(marketing_opt_in="yes"))
    lead = find_lead(store, "ann.lee@example.com")
    page = client.get(f"/workspace/leads/{lead.id}").get_data(as_text=True)
    assert "Address not confirmed" in page and "may be emailed" in page
    [action] = WITHDRAW.findall(page)
    assert client.post(action, data={}).status_code == 400  # no CSRF token: refused
    assert choice(store) is True
    answer = client.post(action, data={"csrf_token": csrf_token(client, f"/workspace/leads/{lead.id}")},
                         headers={"User-Agent": "Desk/1"})
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/workspace/leads/{lead.id}#consent")
    page = client.get(f"/workspace/leads/{lead.id}").get_data(as_text=True)
    assert "Marketing consent withdrawn." in page
    assert "<strong>Withdrawn</strong>" in page and "may not be emailed" in page
    assert "Withdrew consent to marketing emails (marketing-2026-11), by a member of staff" in re.sub(r"\s+", " ", page)
    assert not WITHDRAW.findall(page)  # nothing left to withdraw
    last = consent_events(store, lead.id)[-1]
    assert (last.event, last.method, last.actor, last.user_agent) == ("withdrawn", "staff", "sam.sales@example.com",
                                                                     "Desk/1")
    assert choice(store) is False
    # Again (a second tab, a double click): nothing more is recorded.
    answer = client.post(action, data={"csrf_token": csrf_token(client, f"/workspace/leads/{lead.id}")},
                         follow_redirects=True)
    assert "There was no marketing consent to withdraw." in answer.get_data(as_text=True)
    assert len(consent_events(store, lead.id)) == 3


def test_marketing_staff_see_the_evidence_but_cannot_withdraw(client, runner, store, form_post):
    signed_in(client, runner, "mia.marketing@example.com", "marketing")
    client.post("/submit", data=form_post(marketing_opt_in="yes"))
    lead = find_lead(store, "ann.lee@example.com")
    page = client.get(f"/workspace/leads/{lead.id}").get_data(as_text=True)
    assert "Evidence: 1 event" in page and not WITHDRAW.findall(page)
    token = csrf_token(client, f"/workspace/leads/{lead.id}")
    assert client.post(f"/workspace/leads/{lead.id}/consent/withdraw", data={"csrf_token": token}).status_code == 403
    assert choice(store) is True


# --- Consent texts are versioned content -----------------------------------------------------

def set_marketing_words(content: Path, words: str, version: str = "marketing-2026-11") -> None:
    settings = content / "leadgate.yml"
    data = yaml.safe_load(settings.read_text(encoding="utf-8")) if settings.exists() else {}
    data = data or {}
    consent = data.setdefault("consent", {})
    consent["marketing"] = {"version": version, "text": words}
    consent["terms"] = {"version": TERMS.version, "text": TERMS.text}  # names no privacy notice
    settings.write_text(yaml.safe_dump(data), encoding="utf-8")


def build(content: Path, tmp_path: Path):
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: Test\ndocs_dir: {content}\nsite_dir: {tmp_path / 'site'}\n"
                      "plugins:\n  - leadgate\n", encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(config)],
                          capture_output=True, text=True, cwd=tmp_path)


def register_entries(content: Path) -> list[tuple[str, str, str]]:
    data = yaml.safe_load((content / "consent-texts.yml").read_text(encoding="utf-8"))
    return [(e["purpose"], e["version"], e["words"]) for e in data["texts"]]


@pytest.mark.slow  # mkdocs builds in processes of their own
def test_changing_published_words_without_a_new_version_fails_the_build(content_dir, tmp_path):
    set_marketing_words(content_dir, "Send me news.")
    result = build(content_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    assert ("marketing", "marketing-2026-11", "Send me news.") in register_entries(content_dir)
    assert not (tmp_path / "site" / "consent-texts.yml").exists()  # kept in the content, not published

    set_marketing_words(content_dir, "Send me news and offers from partners.")
    result = build(content_dir, tmp_path)
    assert result.returncode != 0
    assert "leadgate.yml: consent.marketing: the words of marketing version marketing-2026-11 differ" in result.stderr
    assert "consent-texts.yml" in result.stderr

    set_marketing_words(content_dir, "Send me news and offers from partners.", version="marketing-2027-01")
    result = build(content_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    entries = register_entries(content_dir)  # the old words are kept for good
    assert ("marketing", "marketing-2026-11", "Send me news.") in entries
    assert ("marketing", "marketing-2027-01", "Send me news and offers from partners.") in entries


def test_check_names_the_file_and_version_of_changed_words(make_app, content_dir):
    set_marketing_words(content_dir, "Send me news.")
    (content_dir / "consent-texts.yml").write_text(
        "texts:\n- purpose: marketing\n  version: marketing-2026-11\n"
        f"  sha256: {MARKETING.sha256}\n  first_published: '2026-11-01'\n  words: Send me news.\n", encoding="utf-8")
    runner = make_app().test_cli_runner()
    assert runner.invoke(args=["check"]).exit_code == 0
    set_marketing_words(content_dir, "Send me news, daily.")
    result = runner.invoke(args=["check"])
    assert result.exit_code == 1
    assert ("leadgate.yml: consent.marketing: the words of marketing version marketing-2026-11 differ from the "
            "words first published on 2026-11-01 (kept in consent-texts.yml)") in result.output


def test_check_compares_with_the_words_the_database_stored(make_app, content_dir, form_post):
    set_marketing_words(content_dir, "Send me news.")
    app = make_app()
    answer = app.test_client().post("/submit", data=form_post(
        marketing_opt_in="yes", marketing_sha256=MARKETING.sha256, terms_sha256=TERMS.sha256))
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    assert app.test_cli_runner().invoke(args=["check"]).exit_code == 0
    set_marketing_words(content_dir, "Send me news, daily.")  # no register file: only the database knows
    result = make_app().test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert ("leadgate.yml: consent.marketing: the words of marketing version marketing-2026-11 differ from the "
            "words the database stored for it on") in result.output


def test_a_resource_reusing_a_version_for_other_words_is_refused(make_app, content_dir):
    write_resource(content_dir, "special", """
        id: special
        title: Special
        type: ebook
        summary: Special terms.
        file: special.pdf
        consent_text: I agree to be called.
        consent_version: terms-2026-11
    """, pdf="special.pdf")
    result = make_app().test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert "resources/special.md: consent_text: the words of terms version terms-2026-11 differ" in result.output


def test_refresh_after_turning_double_opt_in_on(make_app, form_post):
    app = make_app()
    store = get_store(app)
    app.test_client().post("/submit", data=form_post(marketing_opt_in="yes"))
    assert choice(store) is True
    app = make_app(DOUBLE_OPT_IN=True, SMTP_URL="smtp://127.0.0.1:1025", MAIL_FROM="news@example.com")
    result = app.test_cli_runner().invoke(args=["consent", "refresh"])
    assert result.output == "Marketing consent current = confirmed only (double opt-in on): 1 lead changed.\n"
    assert choice(store) is False
    result = make_app().test_cli_runner().invoke(args=["consent", "refresh"])
    assert result.output == "Marketing consent current = given or confirmed (double opt-in off): 1 lead changed.\n"
    assert choice(store) is True


def test_each_state_names_the_event_that_set_it(store):
    def stored(lead_id):
        with store.read() as s:
            return {row.purpose: (row.state, row.event_id) for row in s.scalars(
                sa.select(ConsentState).where(ConsentState.lead_id == lead_id))}

    lead = post(store, marketing_opt_in=True)
    post(store, "bob@example.com", marketing_opt_in=True)
    post(store, at=T0 + timedelta(days=1))  # unticked
    ledger.withdraw(store, lead.id, "marketing", ledger.UNSUBSCRIBE_PAGE, at=T0 + timedelta(days=2))
    events = consent_events(store, lead.id)
    ids = {(e.kind, e.event, e.created_at): e.id for e in events}
    assert stored(lead.id) == {
        "terms": ("given", ids[("terms", "given", T0 + timedelta(days=1))]),
        "marketing": ("withdrawn", ids[("marketing", "withdrawn", T0 + timedelta(days=2))]),
    }
    post(store, at=T0 + timedelta(hours=12), marketing_opt_in=True)  # replayed: refolded, still withdrawn
    assert stored(lead.id)["marketing"] == ("withdrawn", ids[("marketing", "withdrawn", T0 + timedelta(days=2))])


def test_erased_leads_are_in_no_list_search_or_export_but_reports_count_them(client, runner, store):
    """Erasure itself is capture.privacy's: here its result, a tombstone with erased_at set."""
    post(store, "ann@example.com", marketing_opt_in=True, utm_source="linkedin")
    post(store, "bob@example.com", marketing_opt_in=True, utm_source="linkedin")
    bob = find_lead(store, "bob@example.com")
    with store.engine.begin() as conn:
        conn.execute(sa.update(Lead.__table__).where(Lead.id == bob.id).values(
            erased_at=T0 + timedelta(days=30), email="", email_key=f"erased:{bob.id}"))
    signed_in(client, runner, "sam.sales@example.com", "sales")
    for query in ("", "?q=example", "?utm_source=linkedin", "?marketing=yes"):
        page = client.get(f"/workspace/{query}").get_data(as_text=True)
        assert f"/workspace/leads/{find_lead(store, 'ann@example.com').id}" in page
        assert f"/workspace/leads/{bob.id}\"" not in page, query
        assert re.search(r"\b1 lead\b", page), query
    for args in ([], ["--utm-source", "linkedin"], ["--marketing", "yes"]):
        result = runner.invoke(args=["export", "--columns", "id,email", *args])
        assert result.output.splitlines()[1:] == [f"{find_lead(store, 'ann@example.com').id},ann@example.com"], args
    report = runner.invoke(args=["report", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json"])
    assert json.loads(report.output)["rows"][0]["leads"] == 2  # reports keep counting the erased
