"""Alembic runs this for every command: the migrations, on a connection from capture.db.migrate.

The service passes its connection in ``config.attributes``. Alembic's own command line, which
developers use to write a migration (alembic.ini at the repository root), connects to
``LEADGATE_DATABASE_URL``, else to the ini file's ``sqlalchemy.url``.
"""

import logging.config
import os

from alembic import context

from capture.db.migrate import migrating
from capture.db.models import metadata


def run(connection) -> None:
    # Batch operations: SQLite alters a table by copying it into a new one; PostgreSQL gets
    # plain ALTER TABLE statements from the same migration. The upgrade is one transaction on
    # both: capture.db.engine hands SQLite's BEGIN to SQLAlchemy, so its DDL is transactional too.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Leadgate's migrations run against a database; --sql is not supported.")
connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    logging.config.fileConfig(context.config.config_file_name, disable_existing_loggers=False)
    url = os.environ.get("LEADGATE_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    with migrating(url) as connection:
        run(connection)
