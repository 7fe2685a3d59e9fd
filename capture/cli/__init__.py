"""The `leadgate` command. Commands are thin: they parse options and call library functions.

One module per group of commands: ``site`` (build, serve), ``export``, ``db``, ``staff``
(user, token) and ``spool``.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from capture.cli import db, export, site, spool, staff


def _create_app() -> Flask:
    from capture import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main() -> None:
    """Leadgate: gated content on a MkDocs site, a capture service, and exports for sales."""


for command in (site.build, site.serve, export.export, db.db, staff.user, staff.token, spool.spool):
    main.add_command(command)


def init_app(app: Flask) -> None:
    """Make every command reachable as `flask --app capture COMMAND` too."""
    for command in main.commands.values():
        app.cli.add_command(command)
