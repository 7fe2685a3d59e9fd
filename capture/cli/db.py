"""`leadgate db`: the database's schema, brought to the version this code needs."""

from __future__ import annotations

import click
from flask import current_app

from capture.cli.command import group
from capture.cli.problems import cannot_reach, reason


@group()
def db() -> None:
    """The database's schema: Leadgate's migrations bring it to the version this code needs."""


def upgrade_database(url: str) -> None:
    """Migrate to the newest schema and say so; `db upgrade` and `serve` share it."""
    from sqlalchemy.exc import SQLAlchemyError

    from capture.db import migrate

    try:
        migrate.upgrade(url)
    except SQLAlchemyError as e:
        # An upgrade is one transaction: when it fails, the schema is as it was.
        raise click.ClickException(
            cannot_reach(e, url) or f"the database could not be upgraded, nothing was changed: {reason(e)}."
        ) from None
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

    revision = migrate.current(get_store().engine)
    needed = "the newest" if revision == migrate.head() else f"this version needs {migrate.head()}"
    click.echo(f"{revision or 'none'} ({needed})")
