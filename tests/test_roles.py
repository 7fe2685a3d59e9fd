"""Every route, asked by every role, answers as docs/security.md's roles table says.

The table is parsed from the doc; the routes come from the app's URL map. A route without a row,
or a row without a route, fails with the row to add or remove; an answer that differs fails with
the route, the role and both answers. The walk acts as people and scripts do: signed-in browsers
(with the CSRF token of their page) for the workspace, API tokens for /api/, nobody at all.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule

from capture.catalog import get_catalog
from capture.db.models import Lead, StaffSession, User
from capture.leads.submission import NewSubmission
from capture.spam import folder
from capture.spam.verdict import judge, reason
from capture.db.store import get_store
from conftest import SITE_ORIGIN
from staff import add_user, csrf_token, sign_in
from test_api_export import TOKEN, record

ROOT = Path(__file__).resolve().parent.parent
SECURITY = ROOT / "docs" / "security.md"
ROLES = ("anonymous", "sales", "marketing", "admin")
TABLE_HEADING = "### Every route, for each role"
CELL = re.compile(r"^(\d{3})(?: → (\S+))?(?:; (\d{3}) when ([A-Z_]+)=(\w+))?$")

# One database is enough: the table is about guards, not SQL.
sqlite_only = pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)


@dataclass(frozen=True)
class Answer:
    status: int
    #: The start of the Location header's path, for redirects the table names one for.
    location: str | None = None

    def matches(self, status: int, location: str | None) -> bool:
        return status == self.status and (self.location is None or (location or "").startswith(self.location))

    def __str__(self) -> str:
        return f"{self.status} → {self.location}" if self.location else str(self.status)


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    #: Role → (answer by default, {(setting, value): answer under that setting}).
    answers: dict[str, tuple[Answer, dict[tuple[str, str], Answer]]]

    def expected(self, role: str, variant: tuple[str, str] | None) -> Answer:
        default, under = self.answers[role]
        return under.get(variant, default) if variant else default


def roles_table(text: str | None = None) -> dict[tuple[str, str], Row]:
    """docs/security.md's roles table: (method, path) → Row."""
    text = SECURITY.read_text(encoding="utf-8") if text is None else text
    assert TABLE_HEADING in text, f"docs/security.md has no section {TABLE_HEADING!r}"
    lines = []
    for line in text.split(TABLE_HEADING, 1)[1].splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:6] == ["method", "path", *ROLES], f"the roles table's columns are {header}"
    rows = {}
    for line in lines[2:]:
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        method, path, *answers = cells[:6]
        parsed = {}
        for role, cell in zip(ROLES, answers):
            match = CELL.match(cell)
            assert match, f"docs/security.md, {method} {path}, {role}: cannot read {cell!r}"
            status, location, other, setting, value = match.groups()
            under = {(setting, value): Answer(int(other))} if other else {}
            parsed[role] = (Answer(int(status), location), under)
        assert (method, path) not in rows, f"docs/security.md names {method} {path} twice"
        rows[(method, path)] = Row(method, path, parsed)
    return rows


def variants(table: dict[tuple[str, str], Row]) -> list[tuple[str, str] | None]:
    """The default settings, then each setting a cell names."""
    named = {v for row in table.values() for _, under in row.answers.values() for v in under}
    return [None, *sorted(named)]


def implied(rule: Rule, method: str) -> str | None:
    """The row a request is checked against when the table has none of its own: HEAD as GET,
    Flask's automatic OPTIONS always 200."""
    if method == "HEAD" and "GET" in rule.methods:
        return "GET"
    if method == "OPTIONS" and getattr(rule, "provide_automatic_options", False):
        return "OPTIONS*"
    return None


def requests(app: Flask) -> Iterator[tuple[Rule, str]]:
    """Every (rule, method) of the app, in a stable order."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        for method in sorted(rule.methods):
            yield rule, method


def listed(app: Flask) -> set[tuple[str, str]]:
    """The (method, path) pairs the table must have a row for."""
    return {(method, rule.rule) for rule, method in requests(app) if implied(rule, method) is None}


class Walk:
    """An app with an account and a token of each role, a lead's links, and the samples the
    routes' arguments take."""

    def __init__(self, app: Flask, form: dict[str, str]):
        self.app = app
        runner = app.test_cli_runner()
        self.tokens: dict[str, str] = {}
        for role in ROLES[1:]:
            assert add_user(runner, f"{role}@example.com", role).exit_code == 0
            made = runner.invoke(args=["token", "create", f"{role}@example.com"])
            self.tokens[role] = TOKEN.search(made.output).group(0)
        self.form = form
        posted = self.visitor().post("/submit", data=form, headers={"Accept": "application/json"})
        assert posted.status_code == 201, posted.get_data(as_text=True)
        self.link = urlsplit(posted.get_json()["download_url"]).path.rsplit("/", 1)[1]
        self.numbers = itertools.count(1)
        self.signed_in: dict[str, FlaskClient] = {}

    def visitor(self) -> FlaskClient:
        client = self.app.test_client()
        client.environ_base["HTTP_ORIGIN"] = SITE_ORIGIN
        return client

    def staff(self, role: str, fresh: bool = False) -> FlaskClient:
        """A browser of this role (signed in unless anonymous); fresh for a post, which may end it."""
        if fresh or role not in self.signed_in:
            client = self.visitor()
            if role != "anonymous":
                assert sign_in(client, f"{role}@example.com").status_code == 303
            if fresh:
                return client
            self.signed_in[role] = client
        return self.signed_in[role]

    def new_lead(self) -> int:
        email = f"lead{next(self.numbers)}@example.org"
        store = get_store(self.app)
        record(store, email)
        with store.read() as s:
            return s.scalars(select(Lead.id).where(Lead.email == email)).one()

    def other_session(self, role: str) -> str:
        """The id of another session of this role's account: signed in elsewhere just now."""
        assert sign_in(self.visitor(), f"{role}@example.com").status_code == 303
        with get_store(self.app).read() as s:
            return s.scalars(select(StaffSession.id).join(User).where(User.email == f"{role}@example.com")
                             .order_by(StaffSession.created_at.desc())).first()

    def held_post(self) -> int:
        """A post held in the spam folder (the honeypot filled), by its number."""
        with self.app.app_context():
            catalog = get_catalog()
        resource = next(iter(catalog))
        data = NewSubmission(email=f"bot{next(self.numbers)}@spam.example", resource_id=resource.id,
                             terms=resource.terms, marketing=catalog.settings.marketing,
                             marketing_opt_in=False, spam=judge([reason("honeypot")]))
        store = get_store(self.app)
        folder.hold(store, data)
        return folder.find(store, data.uid).id

    def sample(self, rule: Rule, name: str) -> Any:
        samples: dict[str, Callable[[], Any]] = {
            "lead_id": self.new_lead, "post_id": self.held_post, "token": lambda: self.link, "path": lambda: "page.html",
            "filename": lambda: "workspace.css" if rule.endpoint == "workspace.static" else "leadgate.css",
        }
        if name in samples:
            return samples[name]()
        if f"<int:{name}>" in rule.rule:
            return 1
        return "00000000-0000-4000-8000-000000000001" if f"<uuid:{name}>" in rule.rule else "sample"

    def url(self, rule: Rule) -> str:
        values = {name: self.sample(rule, name) for name in rule.arguments if name not in (rule.defaults or {})}
        return rule.build(values, append_unknown=False)[1]

    def ask(self, role: str, rule: Rule, method: str) -> tuple[int, str | None]:
        """The status and Location path of one request, as this role makes it."""
        url = self.url(rule)
        kwargs: dict[str, Any] = {"method": method}
        if rule.rule.startswith("/api/"):
            client = self.app.test_client()
            if role != "anonymous":
                kwargs["headers"] = {"Authorization": f"Bearer {self.tokens[role]}"}
            if method == "POST":
                kwargs["json"] = {"stage": "sql"}
        elif rule.endpoint == "capture.submit":
            client, kwargs["data"] = self.staff(role), self.form
        elif method == "OPTIONS" and not getattr(rule, "provide_automatic_options", False):
            client = self.staff(role)
            kwargs["headers"] = {"Access-Control-Request-Method": "POST"}
        elif method == "POST":
            client = self.staff(role, fresh=True)
            page = "/workspace/login" if role == "anonymous" else "/workspace/"
            data = {"csrf_token": csrf_token(client, page)}
            if rule.endpoint == "workspace.login":
                data.update(email=f"nobody-{role}@example.com", password="not the password at all")
            elif rule.endpoint == "workspace.move":
                data["stage"] = "sql"
            elif rule.endpoint == "sessions.end_one" and role != "anonymous":
                data["session"] = self.other_session(role)
            kwargs["data"] = data
        else:
            client = self.staff(role)
        response = client.open(url, **kwargs)
        response.close()
        if rule.endpoint == "sessions.end_others":
            self.signed_in.pop(role, None)  # its session was one of the others
        location = response.headers.get("Location")
        return response.status_code, urlsplit(location).path if location else None


def shown(status: int, location: str | None) -> str:
    """An answer as a cell of the table: the Location's path cut before an id or a token."""
    if not location:
        return str(status)
    head, _, last = location.rpartition("/")
    if last.isdigit() or len(last) > 20:
        location = head + "/"
    return f"{status} → {location}"


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>Home</title>", encoding="utf-8")
    (site / "page.html").write_text("<!doctype html><title>A page</title>", encoding="utf-8")
    return site


@pytest.fixture
def walk(make_app, site_dir, form_post) -> Callable[..., Walk]:
    def start(**config: Any) -> Walk:
        return Walk(make_app(SITE_DIR=str(site_dir), RATE_LIMIT="off", **config), form_post())
    return start


@sqlite_only
def test_every_route_has_a_row_in_the_roles_table(walk):
    table = roles_table()
    it = walk()
    missing = sorted(listed(it.app) - set(table))
    rows = []
    for method, path in missing:
        rule = next(r for r in it.app.url_map.iter_rules() if r.rule == path and method in r.methods)
        cells = [shown(*it.ask(role, rule, method)) for role in ROLES]
        rows.append(f"| {method} | `{path}` | {' | '.join(cells)} | |")
    assert not rows, (
        "docs/security.md's roles table (under \"### Every route, for each role\") has no row for "
        f"{len(rows)} route(s). Add each row below, with the answers each role SHOULD get: the cells "
        "are what the route answers today, so change any that is wrong, and the guard with it "
        "(capture/staff/roles.py). If a route's arguments need a real sample (an id that exists), "
        "add it to Walk.sample in tests/test_roles.py.\n" + "\n".join(rows))


@sqlite_only
def test_every_row_of_the_roles_table_is_a_route(make_app, site_dir):
    gone = sorted(set(roles_table()) - listed(make_app(SITE_DIR=str(site_dir))))
    assert not gone, ("docs/security.md's roles table names routes the service no longer has: remove "
                      + ", ".join(f"the row {method} {path}" for method, path in gone))


@sqlite_only
@pytest.mark.parametrize("variant", variants(roles_table()),
                         ids=lambda v: "defaults" if v is None else "=".join(v))
def test_every_route_answers_as_the_roles_table_says(walk, variant):
    table = roles_table()
    it = walk(**({variant[0]: variant[1]} if variant else {}))
    wrong, asked = [], 0
    for rule, method in requests(it.app):
        row = table.get((method, rule.rule))
        as_method = implied(rule, method) if row is None else None
        if as_method == "OPTIONS*":
            expected = {role: Answer(200) for role in ROLES}
        elif as_method is not None:
            row = table.get((as_method, rule.rule))
        if row is None and as_method != "OPTIONS*":
            continue  # test_every_route_has_a_row_in_the_roles_table names it
        if row is not None:
            expected = {role: row.expected(role, variant) for role in ROLES}
        for role in ROLES:
            status, location = it.ask(role, rule, method)
            asked += 1
            if not expected[role].matches(status, location):
                wrong.append(f"{method} {rule.rule} as {role}: the table says {expected[role]}, "
                             f"the service answers {shown(status, location)}")
    assert asked >= 4 * len(table)
    assert not wrong, (f"{len(wrong)} answer(s) differ from docs/security.md's roles table"
                       f"{' with ' + '='.join(variant) if variant else ''}:\n" + "\n".join(wrong))


def test_the_table_reader_reads_settings_and_redirects():
    text = f"""{TABLE_HEADING}

| method | path | anonymous | sales | marketing | admin | the walk sends |
|---|---|---|---|---|---|---|
| GET | `/x` | 302 → /workspace/login | 200 | 200; 403 when MARKETING_CAN_EXPORT=false | 200 | |
"""
    row = roles_table(text)[("GET", "/x")]
    assert row.expected("anonymous", None) == Answer(302, "/workspace/login")
    assert row.expected("marketing", None) == Answer(200)
    assert row.expected("marketing", ("MARKETING_CAN_EXPORT", "false")) == Answer(403)
    assert row.expected("sales", ("MARKETING_CAN_EXPORT", "false")) == Answer(200)
    assert variants({("GET", "/x"): row}) == [None, ("MARKETING_CAN_EXPORT", "false")]
    assert not Answer(302, "/workspace/login").matches(302, "/elsewhere")
    with pytest.raises(AssertionError, match="cannot read 'ok'"):
        roles_table(text.replace("| 200 | |", "| ok | |"))


@sqlite_only
def test_a_session_opens_no_api_and_a_token_no_page(walk):
    it = walk()
    admin = it.staff("admin")
    assert admin.get("/workspace/audit").status_code == 200
    refused = admin.get("/api/leads.csv")
    assert refused.status_code == 401 and refused.get_json()["ok"] is False
    stranger = it.app.test_client()
    page = stranger.get("/workspace/audit", headers={"Authorization": f"Bearer {it.tokens['admin']}"})
    assert page.status_code == 302 and page.headers["Location"].startswith("/workspace/login")


@sqlite_only
def test_the_pages_show_only_what_the_role_may_use(walk):
    it = walk()
    for role, export_log, download, move in (("sales", False, True, True), ("marketing", False, True, False),
                                             ("admin", True, True, True)):
        client = it.staff(role)
        leads = client.get("/workspace/").get_data(as_text=True)
        assert ('href="/workspace/audit"' in leads, "Download CSV" in leads) == (export_log, download), role
        lead = client.get(f"/workspace/leads/{it.new_lead()}").get_data(as_text=True)
        assert ("Move to…" in lead) == move, role


def test_every_test_the_threats_table_names_exists():
    """A row of the threats table points at its proof: ``tests/x.py::name``, or ``::name`` for
    another test of the file named just before."""
    text = SECURITY.read_text(encoding="utf-8")
    assert "## Threats" in text
    rows = [line for line in text.split("## Threats", 1)[1].splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in rows[0].strip("|").split("|")] == ["threat", "defence", "test that proves it"]
    missing, named = [], 0
    for row in rows[2:]:
        module = None
        for path, name in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", row.strip("|").split("|")[-1]):
            module = path or module
            assert module, f"{name} names no file: {row}"
            named += 1
            if not re.search(rf"^def {name}\(", (ROOT / module).read_text(encoding="utf-8"), re.M):
                missing.append(f"{module}::{name}")
    assert named >= len(rows) - 2
    assert not missing, "docs/security.md's threats table names tests that do not exist: " + ", ".join(missing)
