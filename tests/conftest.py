"""Shared fixtures: a small content folder, the app, its test client and CLI runner."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The smallest file a PDF reader opens: enough for the catalog's "is it a PDF" check.
TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def write_resource(content: Path, name: str, front_matter: str, body: str = "Landing copy.\n",
                   pdf: str | None = "file.pdf") -> Path:
    """Write ``resources/<name>.md`` (and its PDF unless pdf is None) under a content folder."""
    folder = content / "resources"
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / f"{name}.md"
    page.write_text(f"---\n{textwrap.dedent(front_matter).strip()}\n---\n\n{body}", encoding="utf-8")
    if pdf:
        (folder / pdf).write_bytes(TINY_PDF)
    return page


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A content folder with one ebook and one whitepaper, independent of the shipped content."""
    content = tmp_path / "content"
    content.mkdir()
    (content / "index.md").write_text("# Home\n\nWelcome.\n", encoding="utf-8")
    write_resource(content, "leads-vs-prospects", """
        id: leads-vs-prospects
        title: Leads versus prospects
        type: ebook
        summary: How to tell a lead from a prospect.
        file: leads-vs-prospects.pdf
        tags: [qualification, sales]
    """, pdf="leads-vs-prospects.pdf")
    write_resource(content, "scoring", """
        id: scoring
        title: Lead scoring sales trusts
        type: whitepaper
        summary: A scoring model sales will use.
        file: scoring.pdf
        tags: [scoring]
    """, pdf="scoring.pdf")
    return content
