"""Problems a person can fix, each said in one sentence that names what to do.

Every command's errors pass through :func:`explain` (see capture.cli.command): a bad setting,
content that cannot be read, a database that cannot be opened or has no tables yet. Anything
else is a bug and keeps its traceback. Imports are made inside the functions, so that
``leadgate --help`` does not load SQLAlchemy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine

NO_TABLES = "the database has no tables yet: run `leadgate db upgrade`."


def explain(error: Exception, database_url: str | None) -> str | None:
    """The sentence for an error a person can fix; None for any other error."""
    from sqlalchemy.exc import SQLAlchemyError

    from capture.catalog import CatalogError
    from capture.config import ConfigError

    if isinstance(error, ConfigError):
        return str(error)
    if isinstance(error, CatalogError):
        return f"the content cannot be read: {error}"
    if isinstance(error, SQLAlchemyError):
        if database_url is None:
            return f"the database refused: {reason(error)}."
        return (cannot_reach(error, database_url) or schema_problem(database_url)
                or f"the database refused the command: {reason(error)}.")
    return None


def reason(error: BaseException) -> str:
    """The driver's own first line (the SQL and SQLAlchemy's links left out)."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(cause).__name__


def shown(url: str) -> str:
    """A database URL fit to print: the password replaced by ***."""
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def cannot_reach(error: Exception, url: str) -> str | None:
    """Why the database could not be opened at all, when that is what went wrong."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import DBAPIError

    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            return (f"cannot open the database at {parsed.database}: the folder {folder} does not "
                    "exist; create it, or set LEADGATE_DATABASE_URL to a file in another folder.")
    # SQLAlchemy wraps a failure to connect without a statement.
    if isinstance(error, DBAPIError) and error.statement is None:
        if sqlite:
            return f"cannot open the database at {parsed.database}: {reason(error)}."
        return (f"cannot connect to the database at {shown(url)}: {reason(error)}; check that the "
                "server runs and that LEADGATE_DATABASE_URL names it.")
    return None


def schema_problem(url: str) -> str | None:
    """What to do when the database is not at the schema this code needs; None when it is."""
    from sqlalchemy.exc import SQLAlchemyError

    from capture.db import migrate
    from capture.db.engine import create_store_engine

    engine = create_store_engine(url)
    try:
        revision = migrate.current(engine)
    except SQLAlchemyError as e:
        return cannot_reach(e, url) or f"cannot read the database's schema revision: {reason(e)}."
    finally:
        engine.dispose()
    if revision is None:
        return NO_TABLES
    if revision != migrate.head():
        return (f"the database's schema is at revision {revision}, this version of Leadgate needs "
                f"{migrate.head()}: run `leadgate db upgrade`.")
    return None


def require_tables(engine: Engine) -> None:
    """Stop before any output when the database cannot be opened or has no tables yet, so that
    an export to a file does not leave a file holding only the header."""
    from capture.db import migrate

    if migrate.current(engine) is None:
        raise click.ClickException(NO_TABLES)
