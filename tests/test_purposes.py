"""Further purposes of consent, as a marketer adds them to content/leadgate.yml: the built page
shows their box, a form post records them in the ledger, the proof, the lead page and the export
show them, and their words are versioned like the others (docs/consent.md, "Further purposes")."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from werkzeug.datastructures import MultiDict

from capture.catalog import CatalogError, load_catalog, load_settings
from capture.db.models import Lead
from capture.leads.submission import NewSubmission
from capture.spool.lines import decode, submission_line
from capture.web.forms import check_submission
from capture.web.openapi import describe

from leads import consent_events, find_lead
from staff import csrf_token, signed_in
from test_build import CONTROLLER, Tags, build_site, form_region, label_of, read, write_notice

WORDS = "Share my details with event partners so they can send me their offers."
PARTNERS = {"version": "partners-2026-12", "label": "Partner offers", "text": WORDS}


def add_purposes(content: Path, **purposes: dict) -> None:
    """What a marketer does: further entries under ``consent:`` in leadgate.yml."""
    path = content / "leadgate.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    data = data or {}
    data.setdefault("consent", {}).update(purposes)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.fixture
def content_dir(content_dir: Path) -> Path:
    """conftest's content, its privacy notice, and a partners purpose in the settings."""
    write_notice(content_dir, settings=CONTROLLER)
    add_purposes(content_dir, partners=PARTNERS)
    return content_dir


@pytest.fixture(autouse=True)
def _quiet_material(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")


def partners_sha(catalog) -> str:
    [partners] = catalog.settings.purposes
    return partners.text.sha256


def test_the_built_page_shows_an_unticked_optional_box_with_the_exact_words(content_dir, tmp_path, catalog):
    site = build_site(content_dir, tmp_path / "site", capture_url="https://get.example.com/")
    region = form_region(read(site, "resources/leads-vs-prospects/index.html"))
    inputs = {a["name"]: a for a in Tags(region).find("input")}
    box = inputs["consent_partners"]
    assert box["type"] == "checkbox" and box["value"] == "yes"
    assert "checked" not in box and "required" not in box
    assert inputs["partners_sha256"]["type"] == "hidden"
    assert inputs["partners_sha256"]["value"] == partners_sha(catalog)
    assert label_of(region, "consent_partners") == (
        f'{WORDS} <span class="leadgate-form__optional">(optional)</span>')
    # Below the marketing box, the terms still the only required one.
    assert region.index('name="marketing_opt_in"') < region.index('name="consent_partners"')
    assert [name for name, a in inputs.items() if "required" in a] == ["email", "terms"]
    # Its words are published with the others, to be kept for good.
    register = yaml.safe_load((content_dir / "consent-texts.yml").read_text(encoding="utf-8"))["texts"]
    assert {"purpose": "partners", "version": "partners-2026-12", "sha256": partners_sha(catalog),
            "words": WORDS} in [{k: e[k] for k in ("purpose", "version", "sha256", "words")} for e in register]


def test_a_ticked_box_is_given_and_the_proof_lead_page_and_export_show_it(
        client, runner, store, form_post, catalog):
    answer = client.post("/submit", data=form_post(consent_partners="yes", partners_sha256=partners_sha(catalog)))
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    lead = find_lead(store, "ann.lee@example.com")
    events = {e.kind: e for e in consent_events(store, lead.id)}
    assert set(events) == {"terms", "marketing", "partners"}
    partners = events["partners"]
    assert (partners.event, partners.version, partners.sha256) == ("given", "partners-2026-12", partners_sha(catalog))
    assert events["marketing"].event == "declined"

    proof = runner.invoke(args=["consent", "proof", "ann.lee@example.com"])
    assert proof.exit_code == 0, proof.output
    assert "Partner offers (partners): given, version partners-2026-12" in proof.output
    assert f"words:  {WORDS}" in proof.output and f"sha256: {partners_sha(catalog)}" in proof.output

    out = runner.invoke(args=["export", "--columns", "all", "--format", "jsonl"])
    assert out.exit_code == 0, out.output
    row = json.loads(out.output.splitlines()[0])
    columns = list(row)
    assert columns.index("marketing_at") < columns.index("partners_state") < columns.index("marketing_opt_in")
    assert (row["partners_state"], row["partners_version"], row["partners_sha256"]) == (
        "given", "partners-2026-12", partners_sha(catalog))
    assert row["partners_at"]
    default = runner.invoke(args=["export"]).output
    header = next(csv.reader(io.StringIO(default)))
    assert header[header.index("marketing_at") + 1:][:3] == ["partners_state", "partners_version", "partners_at"]

    signed_in(client, runner)
    page = client.get(f"/workspace/leads/{lead.id}").get_data(as_text=True)
    assert "<h3>Partner offers</h3>" in page and WORDS in page and "partners-2026-12" in page
    assert "Agreed to Partner offers (partners-2026-12)" in page  # the timeline


def test_staff_withdraw_a_further_purpose_on_the_persons_request(client, runner, store, form_post, catalog):
    client.post("/submit", data=form_post(consent_partners="yes", marketing_opt_in="yes",
                                          partners_sha256=partners_sha(catalog)))
    lead = find_lead(store, "ann.lee@example.com")
    signed_in(client, runner)
    page = client.get(f"/workspace/leads/{lead.id}").get_data(as_text=True)
    assert "Withdraw consent to Partner offers" in page and "Withdraw marketing consent" in page
    token = csrf_token(client, f"/workspace/leads/{lead.id}")
    answer = client.post(f"/workspace/leads/{lead.id}/consent/withdraw",
                         data={"csrf_token": token, "purpose": "partners"}, follow_redirects=True)
    assert "Consent to Partner offers withdrawn." in answer.get_data(as_text=True)
    states = {e.kind: e.event for e in consent_events(store, lead.id)}  # the newest per purpose
    assert states["partners"] == "withdrawn" and states["marketing"] == "given"
    refused = client.post(f"/workspace/leads/{lead.id}/consent/withdraw",
                          data={"csrf_token": token, "purpose": "terms"})
    assert refused.status_code == 422


def test_a_box_left_unticked_is_declined(client, store, form_post, catalog):
    assert client.post("/submit", data=form_post(partners_sha256=partners_sha(catalog))).status_code == 303
    lead = find_lead(store, "ann.lee@example.com")
    [partners] = [e for e in consent_events(store, lead.id) if e.kind == "partners"]
    assert (partners.event, partners.version) == ("declined", "partners-2026-12")


def test_a_form_sent_back_to_fix_keeps_the_box_as_the_person_left_it(client, form_post, catalog):
    answer = client.post("/submit", data=form_post(email="not an address", consent_partners="yes",
                                                   partners_sha256=partners_sha(catalog)))
    assert answer.status_code == 422
    inputs = {a["name"]: a for a in Tags(form_region(answer.get_data(as_text=True))).find("input")}
    assert "checked" in inputs["consent_partners"] and "checked" not in inputs["marketing_opt_in"]
    assert inputs["partners_sha256"]["value"] == partners_sha(catalog)


def test_a_page_built_before_the_purpose_records_nothing_for_it(client, store, form_post):
    assert client.post("/submit", data=form_post()).status_code == 303
    lead = find_lead(store, "ann.lee@example.com")
    assert "partners" not in {e.kind for e in consent_events(store, lead.id)}


@pytest.mark.parametrize("fields", [
    {"consent_partners": "yes", "partners_sha256": "0" * 64},  # words the service does not know
    {"consent_partners": "yes"},  # ticked beside no words at all
])
def test_a_box_beside_unknown_words_is_a_stale_page(client, store, form_post, fields):
    answer = client.post("/submit", data=form_post(**fields), headers={"Accept": "application/json"})
    assert answer.status_code == 409
    with store.read() as s:
        assert s.query(Lead).count() == 0


def test_changed_words_without_a_new_version_fail_check_naming_file_and_version(
        content_dir, tmp_path, make_app):
    build_site(content_dir, tmp_path / "site")  # publishes partners-2026-12
    add_purposes(content_dir, partners={**PARTNERS, "text": "Share my details with anyone."})
    result = make_app().test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert ("leadgate.yml: consent.partners: the words of partners version partners-2026-12 differ from "
            "the words first published on") in result.output
    add_purposes(content_dir, partners={**PARTNERS, "version": "partners-2027-01", "text": "Share my details with anyone."})
    assert make_app().test_cli_runner().invoke(args=["check"]).exit_code == 0


@pytest.mark.parametrize(("name", "entry", "message"), [
    ("Partners", PARTNERS, "consent.Partners: 'Partners' is not a purpose name: up to 20 lower-case letters"),
    ("event-partners", PARTNERS, "consent.event-partners: 'event-partners' is not a purpose name"),
    ("a" * 21, PARTNERS, f"consent.{'a' * 21}: '{'a' * 21}' is not a purpose name"),
    ("partners", {"version": "p-1", "text": WORDS}, "consent.partners.label: is missing"),
    ("partners", {**PARTNERS, "text": " "}, "consent.partners.text: is missing"),
    ("partners", {**PARTNERS, "ticked": True}, "consent.partners.ticked: unknown field"),
    ("partners", "yes", "consent.partners: needs a version, a text and a label"),
])
def test_a_bad_purpose_is_a_clear_error_naming_file_and_field(tmp_path, name, entry, message):
    content = tmp_path / "content"
    content.mkdir()
    add_purposes(content, **{name: entry})
    with pytest.raises(CatalogError) as caught:
        load_settings(content)
    assert f"leadgate.yml: {message}" in str(caught.value)


def test_purposes_keep_the_order_of_the_settings(tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    add_purposes(content, research={**PARTNERS, "version": "r-1", "label": "Research", "text": "Ask me."},
                 partners=PARTNERS)
    settings = load_settings(content)
    assert [p.name for p in settings.purposes] == ["research", "partners"]


def test_a_spooled_post_keeps_its_purposes_and_old_lines_still_decode(form_post, catalog):
    checked = check_submission(MultiDict(form_post(consent_partners="yes", partners_sha256=partners_sha(catalog))),
                               catalog)
    data = NewSubmission(**checked.submission)
    assert [(text.kind, ticked) for text, ticked in data.purposes] == [("partners", True)]
    assert decode(submission_line(data)) == data
    old = json.loads(submission_line(data))
    del old["purposes"]
    assert decode((json.dumps(old) + "\n").encode()).purposes == ()


def test_the_openapi_description_lists_the_purpose_fields(client, catalog):
    properties = client.get("/api/openapi.json").get_json()["paths"]["/submit"]["post"][
        "requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert properties["consent_partners"]["enum"] == ["yes"]
    assert properties["consent_partners"]["title"] == "Partner offers"
    assert properties["partners_sha256"]["enum"] == [partners_sha(catalog)]
    assert list(properties).index("consent_partners") > list(properties).index("website")
    assert "consent_partners" in json.dumps(describe(load_catalog(catalog.content_dir)))
