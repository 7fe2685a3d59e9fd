"""The test tiers hold: Playwright tests are marked `browser`, and a test's PostgreSQL schema is
what the migrations build (conftest replays their SQL instead of running Alembic per test)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from capture.db import migrate

TESTS = Path(__file__).resolve().parent


def marks_browser(decorators: list[ast.expr]) -> bool:
    return any(ast.unparse(d).endswith("mark.browser") for d in decorators)


def module_marks_browser(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
               and "mark.browser" in ast.unparse(node.value) for node in tree.body)


def playwright_names(tree: ast.Module) -> set[str]:
    """Module-level names bound to Playwright: its imports, and ``x = importorskip("playwright…")``."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) and "playwright" in ast.unparse(node):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Assign) and "playwright" in ast.unparse(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def uses_playwright(function: ast.FunctionDef, names: set[str]) -> bool:
    """Whether the function names Playwright, or a module name bound to it (one walk, no unparse)."""
    for node in ast.walk(function):
        if (isinstance(node, ast.Name) and (node.id in names or "playwright" in node.id)
                or isinstance(node, ast.Attribute) and "playwright" in node.attr
                or isinstance(node, ast.Constant) and isinstance(node.value, str) and "playwright" in node.value):
            return True
    return False


def functions(tree: ast.Module) -> list[tuple[ast.FunctionDef, bool]]:
    """Module functions and test-class methods, each with whether its class is marked browser."""
    found = [(node, False) for node in tree.body if isinstance(node, ast.FunctionDef)]
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            marked = marks_browser(node.decorator_list) or any(
                isinstance(n, ast.Assign) and "mark.browser" in ast.unparse(n) for n in node.body)
            found += [(n, marked) for n in node.body if isinstance(n, ast.FunctionDef)]
    return found


def fixtures_on_playwright(tree: ast.Module, inherited: set[str]) -> set[str]:
    """Names of the module's fixtures that drive Playwright, themselves or through other fixtures."""
    names = playwright_names(tree)
    fixtures = {f.name: f for f, _ in functions(tree) if any("fixture" in ast.unparse(d) for d in f.decorator_list)}
    on = set(inherited) | {name for name, f in fixtures.items() if uses_playwright(f, names)}
    while grown := {name for name, f in fixtures.items()
                    if name not in on and any(a.arg in on for a in f.args.args)}:
        on |= grown
    return on


def test_every_playwright_test_is_marked_browser():
    """`-m "not browser"` must leave out every test that needs Chromium."""
    conftest = ast.parse((TESTS / "conftest.py").read_text(encoding="utf-8"))
    shared = fixtures_on_playwright(conftest, set())
    unmarked, users = [], set()
    for path in sorted(TESTS.glob("test_*.py")):
        if path == Path(__file__):  # this file names Playwright only to look for it
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        on = fixtures_on_playwright(tree, shared)
        names = playwright_names(tree)
        for function, class_marked in functions(tree):
            if not function.name.startswith("test_"):
                continue
            if uses_playwright(function, names) or any(a.arg in on for a in function.args.args):
                users.add(path.name)
                if not (class_marked or module_marks_browser(tree) or marks_browser(function.decorator_list)):
                    unmarked.append(f"{path.name}::{function.name}")
        if "playwright" in source:
            assert path.name in users, f"{path.name} mentions Playwright but no test of it was found to use it"
    assert not unmarked, f"add @pytest.mark.browser to these Playwright tests: {', '.join(unmarked)}"


def schema_of(url: str) -> str:
    """Tables, columns, keys, indexes and constraints as SQLAlchemy reads them, and the revision."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        tables = {name: (found.get_columns(name), found.get_pk_constraint(name), found.get_foreign_keys(name),
                         found.get_indexes(name), found.get_unique_constraints(name),
                         found.get_check_constraints(name))
                  for name in sorted(found.get_table_names())}
        return repr((tables, migrate.current(engine)))
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_kind", ["postgresql"], indirect=True)
def test_a_postgresql_test_schema_is_what_the_migrations_build(database_url, empty_database_url):
    migrate.upgrade(empty_database_url)
    assert schema_of(database_url) == schema_of(empty_database_url)
