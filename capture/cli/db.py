"""`leadgate db`: the database's schema, brought to the version this code needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import current_app

from capture.cli.command import group


@group()
def db() -> None:
    """The database's schema: Leadgate's migrations bring it to the version this code needs."""


@contextmanager
def _database_errors(doing: str) -> Iterator[None]:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as e:
        raise click.ClickException(f"Could not {doing}: {getattr(e, 'orig', None) or e}") from None


def upgrade_database(url: str) -> None:
    """Migrate to the newest schema and say so; `db upgrade` and `serve` share it."""
    from capture.db import migrate

    with _database_errors("upgrade the database"):
        migrate.upgrade(url)
    click.echo(f"Database schema at revision {migrate.head()}, the newest.", err=True)


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the tables, or migrate them to the newest schema; does nothing when up to date."""
    upgrade_database(current_app.config["DATABASE_URL"])


@db.command("current")
def db_current() -> None:
    """Show the database's schema revision and the one this version of Leadgate needs."""
    from capture.db import migrate
    from capture.db.store import get_store

    with _database_errors("read the database's revision"):
        revision = migrate.current(get_store().engine)
    needed = "the newest" if revision == migrate.head() else f"this version needs {migrate.head()}"
    click.echo(f"{revision or 'none'} ({needed})")
