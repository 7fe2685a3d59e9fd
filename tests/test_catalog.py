"""The rules for what a marketer may publish, checked through the shared catalog reader.

Every refusal must name the file and the field, so the person who wrote the page can fix it
without reading code. The site build turns these same problems into a build failure
(tests/test_build.py checks that it does).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from capture.catalog import CatalogError, load_catalog
from capture.content_settings import Controller
from capture.privacy_notice import fill_privacy_notice, notice_problems
from conftest import TINY_PDF, write_resource

BASE = {"id": "bad", "title": "A bad page", "type": "ebook", "summary": "Short.", "file": "bad.pdf"}


def front(**changes: object) -> str:
    """The base front matter with some fields changed (None removes a field)."""
    meta = {**BASE, **changes}
    return yaml.safe_dump({k: v for k, v in meta.items() if v is not None}, sort_keys=False)


def refusal(content: Path) -> CatalogError:
    with pytest.raises(CatalogError) as caught:
        load_catalog(content)
    return caught.value


def test_reads_every_resource(content_dir: Path) -> None:
    catalog = load_catalog(content_dir)
    assert sorted(catalog.resources) == ["leads-vs-prospects", "scoring"]
    ebook = catalog.get("leads-vs-prospects")
    assert ebook.type == "ebook"
    assert ebook.tags == ("qualification", "sales")
    assert ebook.file == (content_dir / "resources" / "leads-vs-prospects.pdf").resolve()
    assert catalog.gated_files() == {r.file for r in catalog}


def test_catalog_intro_page_is_not_a_resource(content_dir: Path) -> None:
    (content_dir / "resources" / "index.md").write_text("# All our resources\n\nIntro.\n", encoding="utf-8")
    assert sorted(load_catalog(content_dir).resources) == ["leads-vs-prospects", "scoring"]


def test_own_consent_text_replaces_the_default(content_dir: Path) -> None:
    write_resource(content_dir, "partner", front(id="partner", file="file.pdf",
                   consent_text="Share my details with Acme to send me this report.",
                   consent_version="acme-1"))
    catalog = load_catalog(content_dir)
    terms = catalog.get("partner").terms
    assert (terms.version, terms.text) == ("acme-1", "Share my details with Acme to send me this report.")
    assert terms.sha256 != catalog.settings.terms.sha256
    assert catalog.get("scoring").terms == catalog.settings.terms


@pytest.mark.parametrize(("front_matter", "files", "field", "message"), [
    (front(title=None), {"bad.pdf": TINY_PDF}, "title", "is missing"),
    (front(file=None), {}, "file", "is missing"),
    (front(summary="   "), {"bad.pdf": TINY_PDF}, "summary", "is missing"),
    (front(title=42), {"bad.pdf": TINY_PDF}, "title", "must be text, not int"),
    (front(summary="x" * 501), {"bad.pdf": TINY_PDF}, "summary", "longer than 500 characters"),
    (front(author="Ann"), {"bad.pdf": TINY_PDF}, "author", "unknown field (allowed: id, title"),
    (front(type="podcast"), {"bad.pdf": TINY_PDF}, "type", "unknown type 'podcast' (allowed: ebook, whitepaper"),
    (front(id="Bad_ID"), {"bad.pdf": TINY_PDF}, "id", "'Bad_ID' must be lower-case letters, digits"),
    (front(id="double--hyphen"), {"bad.pdf": TINY_PDF}, "id", "must be lower-case letters, digits"),
    (front(), {}, "file", "'bad.pdf' does not exist"),
    (front(), {"bad.pdf": b"Hello, not a PDF"}, "file", "'bad.pdf' is not a PDF"),
    (front(file="bad.docx"), {"bad.docx": TINY_PDF}, "file", "'bad.docx' is not a PDF"),
    (front(file="../../outside.pdf"), {}, "file", "'../../outside.pdf' is outside the content folder"),
    (front(tags="sales"), {"bad.pdf": TINY_PDF}, "tags", "must be a list of text values"),
    (front(tags=["x" * 41]), {"bad.pdf": TINY_PDF}, "tags", "at most 40 characters"),
    (front(cover="missing.png"), {"bad.pdf": TINY_PDF}, "cover", "'missing.png' does not exist"),
    (front(cover="bad.pdf"), {"bad.pdf": TINY_PDF}, "cover", "'bad.pdf' is not an image"),
    (front(consent_version="v2"), {"bad.pdf": TINY_PDF}, "consent_version", "only makes sense with consent_text"),
    ("title: [unclosed\n", {}, "front matter", "is not valid YAML"),
    ("- a list\n- not a mapping\n", {}, "front matter", "must be a mapping of field: value"),
])
def test_bad_front_matter_names_file_and_field(content_dir: Path, front_matter: str, files: dict[str, bytes],
                                               field: str, message: str) -> None:
    page = write_resource(content_dir, "bad", front_matter, pdf=None)
    for name, data in files.items():
        (page.parent / name).write_bytes(data)
    lines = str(refusal(content_dir)).splitlines()
    assert any(line.startswith(f"resources/bad.md: {field}: ") and message in line for line in lines), lines


def test_duplicate_id_names_both_files(content_dir: Path) -> None:
    write_resource(content_dir, "scoring-copy", front(id="scoring", file="file.pdf"))
    assert refusal(content_dir).problems == [
        ("resources/scoring.md", "id", "duplicate id 'scoring' (also used by resources/scoring-copy.md)"),
    ]


def test_every_problem_is_reported_at_once(content_dir: Path) -> None:
    write_resource(content_dir, "one", front(id="one", type="podcast", file="file.pdf"))
    write_resource(content_dir, "two", front(id="two", title=None, file="file.pdf"))
    fields = {(path, field) for path, field, _ in refusal(content_dir).problems}
    assert fields == {("resources/one.md", "type"), ("resources/two.md", "title")}


def test_types_come_from_the_settings(content_dir: Path) -> None:
    (content_dir / "leadgate.yml").write_text("resource_types: [ebook, whitepaper, webinar]\n", encoding="utf-8")
    write_resource(content_dir, "talk", front(id="talk", type="webinar", file="file.pdf"))
    assert load_catalog(content_dir).get("talk").type == "webinar"


@pytest.mark.parametrize(("settings", "field", "message"), [
    ("colour: blue\n", "colour", "unknown setting"),
    ("industries: [unclosed\n", "file", "is not valid YAML"),
    ("- a\n- b\n", "file", "must be a mapping"),
    ("resource_types: []\n", "resource_types", "must be a non-empty list of text values"),
    ("company_sizes: [1-10, 42]\n", "company_sizes", "must be a non-empty list of text values"),
    ("consent:\n  terms:\n    text: I agree.\n", "consent.terms", "needs a text and a version"),
    ("controller: Example Ltd\n", "controller", "must be a mapping with name, email"),
    ("controller:\n  email: privacy@example.com\n", "controller.name", "is missing"),
    ("controller:\n  name: [Example Ltd]\n  email: privacy@example.com\n", "controller.name",
     "must be text, not list"),
    ("controller:\n  name: Example Ltd\n  email: privacy at example.com\n", "controller.email",
     "'privacy at example.com' is not an email address"),
    ("controller:\n  name: Example Ltd\n  email: privacy@example.com\n  phone: 0123\n", "controller.phone",
     "unknown field (allowed: name, email, address)"),
    (f"controller:\n  name: Example Ltd\n  email: privacy@example.com\n  address: {'x' * 501}\n",
     "controller.address", "longer than 500 characters"),
    ("retention_months: 0\n", "retention_months", "must be a whole number of months from 1 to 120"),
    ("retention_months: 1.5\n", "retention_months", "must be a whole number of months"),
    ("retention_months: true\n", "retention_months", "must be a whole number of months"),
])
def test_bad_settings_name_the_setting(content_dir: Path, settings: str, field: str, message: str) -> None:
    (content_dir / "leadgate.yml").write_text(settings, encoding="utf-8")
    problems = refusal(content_dir).problems
    assert [(p, f) for p, f, _ in problems] == [("leadgate.yml", field)]
    assert message in problems[0][2]


# -- the privacy notice's settings and placeholders -------------------------------------------

CONTROLLER = """\
controller:
  name: Fish & <Chips> Ltd
  email: Privacy@Fish.EXAMPLE
  address: |
    1 Pier Road
    Brighton BN1 1AA
retention_months: 18
"""


def test_controller_and_retention_come_from_the_settings(content_dir: Path) -> None:
    assert load_catalog(content_dir).settings.controller is None  # optional until the notice uses it
    assert load_catalog(content_dir).settings.retention_months == 24
    (content_dir / "leadgate.yml").write_text(CONTROLLER, encoding="utf-8")
    settings = load_catalog(content_dir).settings
    assert settings.controller == Controller("Fish & <Chips> Ltd", "Privacy@fish.example",
                                             "1 Pier Road\nBrighton BN1 1AA")
    assert settings.retention_months == 18


def test_placeholders_in_the_notice_take_the_settings_values(content_dir: Path) -> None:
    (content_dir / "leadgate.yml").write_text(CONTROLLER, encoding="utf-8")
    settings = load_catalog(content_dir).settings
    notice = ("{{ controller.name }} ({{controller.email}}), {{ controller.address }}: "
              "{{ retention_months }} months.")
    assert fill_privacy_notice(notice, settings) == (
        "Fish &amp; &lt;Chips&gt; Ltd (Privacy@fish.example), 1 Pier Road, Brighton BN1 1AA: 18 months.")


@pytest.mark.parametrize(("settings", "notice", "problem"), [
    (CONTROLLER, "Call {{ controller.phone }}.",
     ("privacy.md", "body", "unknown placeholder {{ controller.phone }} (allowed: {{ controller.name }}, "
                            "{{ controller.email }}, {{ controller.address }}, {{ retention_months }})")),
    (CONTROLLER, "We are {{ controller.name | upper }}.",
     ("privacy.md", "body", "unknown placeholder {{ controller.name | upper }} (allowed: {{ controller.name }}, "
                            "{{ controller.email }}, {{ controller.address }}, {{ retention_months }})")),
    ("retention_months: 6\n", "{{ controller.name }} keeps them {{ retention_months }} months, {{ controller.name }}.",
     ("leadgate.yml", "controller", "is not set, but privacy.md shows {{ controller.name }}: add a controller "
                                    "section with the name and email of who is responsible")),
    ("controller:\n  name: Example Ltd\n  email: privacy@example.com\n", "Write to {{ controller.address }}.",
     ("leadgate.yml", "controller.address", "is not set, but privacy.md shows {{ controller.address }}: "
                                            "set it, or take the placeholder out of privacy.md")),
])
def test_a_placeholder_without_a_value_names_what_to_fix(content_dir: Path, settings: str, notice: str,
                                                        problem: tuple[str, str, str]) -> None:
    (content_dir / "leadgate.yml").write_text(settings, encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        fill_privacy_notice(notice, load_catalog(content_dir).settings)
    assert caught.value.problems == [problem]  # once, however often the placeholder appears


def test_consent_texts_naming_a_missing_notice_are_listed_with_their_file(content_dir: Path) -> None:
    write_resource(content_dir, "partner", front(id="partner", file="file.pdf",
                   consent_text="Acme may store my details, see their Privacy Policy."))
    write_resource(content_dir, "plain", front(id="plain", file="file.pdf", consent_text="Acme may store my details."))
    catalog = load_catalog(content_dir)
    assert notice_problems(catalog, notice_published=True) == []
    assert [(where, field) for where, field, _ in notice_problems(catalog, notice_published=False)] == [
        ("leadgate.yml", "consent.terms"), ("resources/partner.md", "consent_text")]
    partner = catalog.get("partner").terms
    assert partner.notice_mention == ("Acme may store my details, see their ", "Privacy Policy", ".")
    assert catalog.get("plain").terms.notice_mention is None
