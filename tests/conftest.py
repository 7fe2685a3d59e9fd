"""Shared fixtures: a small content folder, the app, its test client and CLI runner."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import textwrap
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache
import pytest
import werkzeug.security
from flask import Flask
from flask.testing import FlaskCliRunner, FlaskClient
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from capture import create_app
from capture.db import migrate
from capture.catalog import Catalog, load_catalog
from capture.spool import get_spool
from capture.db.store import Store, get_store

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


# --- Databases: every test that uses one runs on SQLite and on PostgreSQL ------------------

#: The machine's PostgreSQL, used unless --postgres-url or LEADGATE_TEST_DATABASE_URL names another.
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres-url", metavar="URL",
        help="PostgreSQL server for the [postgresql] tests, each in a schema of its own "
             f"(default: $LEADGATE_TEST_DATABASE_URL, else {DEFAULT_POSTGRES_URL}). When it cannot "
             "be reached those tests are skipped, or fail when CI=true.")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every [postgresql] test `postgres`, however it got there (the fixture's own params
    or a test's indirect parametrization), so `-m "not postgres"` runs SQLite alone."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_kind") == "postgresql":
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_admin(pytestconfig: pytest.Config) -> Iterator[Engine]:
    """The PostgreSQL server of this run, checked once: unreachable skips, or fails on CI."""
    url = (pytestconfig.getoption("postgres_url") or os.environ.get("LEADGATE_TEST_DATABASE_URL")
           or DEFAULT_POSTGRES_URL)
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except OperationalError as e:
        problem = f"PostgreSQL at {engine.url} cannot be reached ({' '.join(str(e.orig).split())})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI=true needs it: start it, or point LEADGATE_TEST_DATABASE_URL "
                        "or --postgres-url at one", pytrace=False)
        pytest.skip(f"{problem}; set LEADGATE_TEST_DATABASE_URL or --postgres-url to run these")
    yield engine
    engine.dispose()


class PostgresSchemas:
    """This run's schemas on the PostgreSQL server, one per test, all named ``leadgate_<run>_…``.

    Alembic runs once, into a template schema, and the SQL it sends is kept: a test's schema
    replays that SQL, every statement as sent, in one round trip: 95 ms against 159 ms for a
    ``migrate.upgrade``, much of which is Alembic's own Python. Cloning a template database
    (``CREATE DATABASE … TEMPLATE``) copies its whole catalog: 139 ms, and the slowest of the
    three under load (docs/performance.md, "The test suite").

    A thread of its own makes the schemas and drops them: migrated ones a few tests ahead,
    while the tests before run, so that a test's set-up takes one ready and its teardown only
    hands it back.
    """

    #: Migrated schemas kept ready beyond the one a test is about to take.
    AHEAD = 2

    def __init__(self, admin: Engine) -> None:
        self.admin = admin
        # The worker's one connection, kept: a new one for each CREATE and DROP cost ~15 ms a test.
        self.engine = create_engine(admin.url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        self.prefix = f"leadgate_{uuid.uuid4().hex[:8]}_"
        self._names = itertools.count()
        self._migration: str | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadgate-test-schemas")
        self._ready: deque[Future[str]] = deque()
        self._drops: list[Future[None]] = []

    def url(self, schema: str) -> str:
        """The server's URL with the schema as search_path: same server, credentials, database."""
        return self.admin.url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)

    @property
    def migration(self) -> str:
        """The SQL of ``migrate.upgrade`` into an empty schema, recorded on first use."""
        if self._migration is None:
            self._migration = self._record_migration()
        return self._migration

    def _record_migration(self) -> str:
        from psycopg import ClientCursor  # only once PostgreSQL is reachable: SQLite runs need no psycopg

        template = f"{self.prefix}template"
        url = make_url(self.url(template))
        statements: list[str] = []

        def record(conn: Connection, cursor: Any, statement: str, parameters: Any,
                   context: Any, executemany: bool) -> None:
            if conn.engine.url == url:
                for params in parameters if executemany else [parameters]:
                    statements.append(ClientCursor(cursor.connection).mogrify(statement, params))

        with self.engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{template}"')
        event.listen(Engine, "before_cursor_execute", record)
        try:
            migrate.upgrade(url.render_as_string(hide_password=False))
        finally:
            event.remove(Engine, "before_cursor_execute", record)
        script = ";\n".join(statements)
        # Replayed with another search_path, a statement naming the template would change it.
        assert template not in script, f"the migrations name their schema {template}:\n{script}"
        return self._squashed(template) or script

    def _squashed(self, template: str) -> str | None:
        """The template's schema as pg_dump writes it, names unqualified: each table created
        whole. Replaying the migrations' own SQL spent most of its time in their ALTER TABLE …
        ADD COLUMN statements (~30 ms each on this server, even on empty tables: 400 ms a
        schema); this script makes the same schema (tests/test_tiers.py compares them). None
        without a pg_dump of the server's version, and the migrations' SQL is replayed."""
        url = make_url(self.admin.url)
        try:
            dump = subprocess.run(
                ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-n", template,
                 "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres",
                 "-d", url.database or "postgres"],
                capture_output=True, text=True, timeout=60, env={**os.environ, "PGPASSWORD": url.password or ""})
        except (OSError, subprocess.TimeoutExpired):
            return None
        if dump.returncode != 0:
            return None
        kept = [line for line in dump.stdout.splitlines()
                if not line.startswith(("--", "\\", "SET ", "SELECT pg_catalog.set_config"))]
        script = "\n".join(kept).replace(f"CREATE SCHEMA {template};", "").replace(f"{template}.", "")
        with self.engine.connect() as conn:
            revision = conn.exec_driver_sql(f'SELECT version_num FROM "{template}".alembic_version').scalar_one()
        # The trigger's function names a table made after it, as pg_dump orders them.
        return (f"SET LOCAL check_function_bodies = false;\n{script}\n"
                f"INSERT INTO alembic_version (version_num) VALUES ('{revision}');")

    def _create(self, script: str | None) -> str:
        name = f"{self.prefix}{next(self._names)}"
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
            if script is not None:
                conn.exec_driver_sql(f'SET LOCAL search_path TO "{name}"')
                conn.exec_driver_sql(script, execution_options={"no_parameters": True})
        return name

    def _drop(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')

    @contextmanager
    def schema(self, *, migrated: bool) -> Iterator[str]:
        """The URL of a new schema, empty or at the newest revision; dropped after."""
        if migrated:
            script = self.migration  # recorded here, before the worker needs the connection
            while len(self._ready) <= self.AHEAD:
                self._ready.append(self._worker.submit(self._create, script))
            name = self._ready.popleft().result()
        else:
            name = self._worker.submit(self._create, None).result()
        try:
            yield self.url(name)
        finally:
            self._drops.append(self._worker.submit(self._drop, name))

    def close(self) -> None:
        """Stop the worker and drop every schema of this run still there (the template, those
        made ahead, any a drop missed); then raise the first drop that failed, if one did."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        try:
            with self.engine.begin() as conn:
                names = conn.execute(text("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, :prefix)"),
                                     {"prefix": self.prefix}).scalars().all()
                for name in names:
                    conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        finally:
            self.engine.dispose()
        for drop in self._drops:
            if not drop.cancelled():
                drop.result()


@pytest.fixture(scope="session")
def postgres_schemas(postgres_admin: Engine) -> Iterator[PostgresSchemas]:
    schemas = PostgresSchemas(postgres_admin)
    try:
        yield schemas
    finally:
        schemas.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per run; each test gets a copy (a file copy is ~100× faster)."""
    path = tmp_path_factory.mktemp("template") / "leadgate.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_kind(request: pytest.FixtureRequest) -> str:
    """Which database a test runs on; a test needing one kind parametrizes this indirectly."""
    return request.param


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, database_kind: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables: a new SQLite file, or a new PostgreSQL schema dropped after."""
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'leadgate.db'}"
        return
    with request.getfixturevalue("postgres_schemas").schema(migrated=False) as url:
        yield url


@pytest.fixture
def database_url(request: pytest.FixtureRequest, database_kind: str) -> Iterator[str]:
    """A database with the newest schema and no rows: a copy of the SQLite template, or a
    PostgreSQL schema of its own, dropped after."""
    if database_kind == "sqlite":
        url = request.getfixturevalue("empty_database_url")
        shutil.copyfile(request.getfixturevalue("sqlite_template"), make_url(url).database)
        yield url
        return
    with request.getfixturevalue("postgres_schemas").schema(migrated=True) as url:
        yield url


# --- The capture service -------------------------------------------------------------------

#: scrypt at 1/32 of werkzeug's default work (N=32768): the same code path, ~5 ms a hash.
QUICK_PASSWORD_HASH = "scrypt:1024:8:1"


@pytest.fixture(scope="session", autouse=True)
def quick_password_hashes() -> Iterator[None]:
    """Hash staff passwords in this process with cheap scrypt parameters.

    Adding a user hashes a password and signing in checks one (0.15 s each at full cost): ~290
    of them were a third of the quick loop. Only the default changes, on werkzeug's own
    function, wherever it is imported; servers in child processes keep the full cost.
    """
    function = werkzeug.security.generate_password_hash
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(function, "__defaults__", (QUICK_PASSWORD_HASH, *function.__defaults__[1:]))
        yield


SECRET_KEY = "test-secret-key-not-for-production-0123456789"
SITE_ORIGIN = "https://site.example.com"


class CompiledTemplates(jinja2.BytecodeCache):
    """Templates compiled once per run, shared by every app a test builds: each app's Jinja
    environment would compile them again, a third of a workspace test's time. Keys include the
    template's source checksum, so an edited template is compiled anew."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATES_COMPILED = CompiledTemplates()


class SiteBrowser(FlaskClient):
    """A browser on the site's pages: its form posts carry the site's Origin, as every
    browser's do (a post without Origin or Referer is a spam signal, capture.spam). A test of
    a script without one removes it: ``client.environ_base.pop("HTTP_ORIGIN")``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_ORIGIN"] = SITE_ORIGIN


@pytest.fixture
def make_app(content_dir: Path, database_url: str, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build apps on the test database (a restart, changed content…); stores closed and spool
    threads stopped after. Their spool is in tmp_path, never in the instance folder."""
    apps: list[Flask] = []

    def build(**config: object) -> Flask:
        app = create_app({
            "TESTING": True,
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": database_url,
            "CONTENT_DIR": str(content_dir),
            "SITE_DIR": None,
            "SITE_URL": "",
            # The test client's own address: links the service builds start here.
            "BASE_URL": "http://localhost",
            "ALLOWED_ORIGINS": SITE_ORIGIN,
            "SPOOL_PATH": str(tmp_path / "spool.jsonl"),
            **config,
        })
        app.jinja_env.bytecode_cache = TEMPLATES_COMPILED
        app.test_client_class = SiteBrowser
        apps.append(app)
        return app

    yield build
    for app in apps:
        get_spool(app).stop()
        get_store(app).dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser without JavaScript on the site's pages: its form posts carry the site's Origin,
    as every browser's do (a post without Origin or Referer is a spam signal, capture.spam)."""
    client = app.test_client()
    client.environ_base["HTTP_ORIGIN"] = SITE_ORIGIN
    return client


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
