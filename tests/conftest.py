"""Shared fixtures: a small content folder, the app, its test client and CLI runner."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner, FlaskClient
from sqlalchemy import create_engine, make_url

from capture import create_app
from capture.catalog import Catalog, load_catalog
from capture.store import Store, get_store

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


# --- The capture service -------------------------------------------------------------------

#: Set to a PostgreSQL URL to run the service tests there, each test in a schema of its own.
TEST_DATABASE_URL = os.environ.get("LEADGATE_TEST_DATABASE_URL")
SECRET_KEY = "test-secret-key-not-for-production-0123456789"
SITE_ORIGIN = "https://site.example.com"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / 'leadgate.db'}"
        return
    schema = f"leadgate_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_DATABASE_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(TEST_DATABASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def make_app(content_dir: Path, database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps on the test database (a restart, changed content…); stores closed after."""
    apps: list[Flask] = []

    def build(**config: object) -> Flask:
        app = create_app({
            "TESTING": True,
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": database_url,
            "CONTENT_DIR": str(content_dir),
            "SITE_DIR": None,
            "SITE_URL": "",
            "ALLOWED_ORIGINS": SITE_ORIGIN,
            **config,
        })
        apps.append(app)
        return app

    yield build
    for app in apps:
        get_store(app).dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def store(app: Flask) -> Store:
    return get_store(app)


@pytest.fixture
def catalog(content_dir: Path) -> Catalog:
    return load_catalog(content_dir)


@pytest.fixture
def form_post(catalog: Catalog) -> Callable[..., dict[str, str]]:
    """A valid download request as the landing page posts it; keyword arguments change fields.

    Pass a field as None to leave it out of the post.
    """
    def build(resource_id: str = "leads-vs-prospects", **fields: str | None) -> dict[str, str]:
        resource = catalog.get(resource_id)
        data: dict[str, str | None] = {
            "email": "ann.lee@example.com",
            "first_name": "Ann",
            "last_name": "Lee",
            "company": "Acme Analytics",
            "job_title": "Head of Growth",
            "company_size": "51-200",
            "industry": "Software",
            "terms": "accepted",
            "resource_id": resource_id,
            "terms_sha256": (resource.terms if resource else catalog.settings.terms).sha256,
            "marketing_sha256": catalog.settings.marketing.sha256,
            "utm_source": "newsletter",
            "utm_medium": "email",
            "utm_campaign": "autumn",
            "utm_term": "",
            "utm_content": "",
            "referrer": "https://news.example.org/issue-12",
            "landing_page": "https://site.example.com/resources/leads-vs-prospects/?utm_source=newsletter",
        }
        data.update(fields)
        return {k: v for k, v in data.items() if v is not None}
    return build
