"""The test tiers hold: a test's PostgreSQL schema is what the migrations build (conftest
replays their SQL instead of running Alembic per test)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from capture import migrate


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
