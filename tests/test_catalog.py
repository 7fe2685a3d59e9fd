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
])
def test_bad_settings_name_the_setting(content_dir: Path, settings: str, field: str, message: str) -> None:
    (content_dir / "leadgate.yml").write_text(settings, encoding="utf-8")
    problems = refusal(content_dir).problems
    assert [(p, f) for p, f, _ in problems] == [("leadgate.yml", field)]
    assert message in problems[0][2]
