"""What every `leadgate` command is made of: the app it works in, and one Error line for
the problems a person can fix (capture.cli.problems).

``main`` is a plain click group, not Flask's FlaskGroup, so ``leadgate --help`` lists Leadgate's
commands and options only. A command that needs the app runs inside an app context: the app
Flask's command line already loaded (``flask --app capture COMMAND``, and the tests' runner), or
else one made here with ``create_app()`` and closed when the command ends.
"""

from __future__ import annotations

import functools
import os
import secrets
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import ScriptInfo

from capture.cli.problems import explain


class Command(click.Command):
    """A command that works in the app unless made with ``needs_app=False`` (build, serve)."""

    def __init__(self, *args: Any, needs_app: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.needs_app = needs_app

    def invoke(self, ctx: click.Context) -> Any:
        try:
            if self.needs_app:
                enter_app(ctx)
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            message = explain(e, current_app.config["DATABASE_URL"] if current_app else None)
            if message is None:
                raise
            raise click.ClickException(message) from None


class Group(click.Group):
    """A group whose commands are :class:`Command` and whose subgroups are Groups."""

    command_class = Command
    group_class = type


class Option(click.Option):
    """An option whose value may not look like another option: click gives an option taking a
    value whatever comes next, so `--utm-source --marketing yes` would filter on a utm_source
    of "--marketing" and leave "yes" over."""

    def type_cast_value(self, ctx: click.Context, value: Any) -> Any:
        if not self.is_flag and not self.count:
            for item in value if self.multiple and value is not None else (value,):
                if _looks_like_an_option(item):
                    name = next((o for o in self.opts if o.startswith("--")), self.opts[0])
                    raise click.BadParameter(
                        f"'{item}' looks like an option, not a value: write the value right after {name}.",
                        ctx=ctx, param=self)
        return super().type_cast_value(ctx, value)


def _looks_like_an_option(value: Any) -> bool:
    """``-x`` or ``--name``; a lone ``-`` (standard output) and negative numbers are values."""
    if not isinstance(value, str) or len(value) < 2 or not value.startswith("-"):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


#: ``@click.option`` making an :class:`Option`; every command's options are made with it.
option = functools.partial(click.option, cls=Option)


def command(**attrs: Any) -> Any:
    """``@click.command`` making a :class:`Command`."""
    return click.command(cls=Command, **attrs)


def group(**attrs: Any) -> Any:
    """``@click.group`` making a :class:`Group`."""
    return click.group(cls=Group, **attrs)


def enter_app(ctx: click.Context) -> Flask:
    """Push the app for this command: the one Flask's CLI loaded, else a new one."""
    if current_app:
        return current_app._get_current_object()  # type: ignore[attr-defined]
    info = ctx.find_object(ScriptInfo)
    if info is not None:
        app = info.load_app()
    else:
        app = create_command_app()
        ctx.call_on_close(functools.partial(close_app, app))
    ctx.with_resource(app.app_context())
    return app


def create_command_app() -> Flask:
    """The app of a command run as ``leadgate COMMAND``.

    These commands serve no request and sign nothing that leaves the process (no link, no
    session), so without LEADGATE_SECRET_KEY they run on a key of their own that dies with
    them, and without LEADGATE_BASE_URL on none: `leadgate export` works beside `leadgate serve --demo`, and a real service's key need
    not be handed to every script that exports leads. A key that is set is still checked.
    """
    from capture import create_app

    own: dict[str, object] = {}
    if not os.environ.get("LEADGATE_SECRET_KEY"):
        own["SECRET_KEY"] = secrets.token_hex(32)
    if not os.environ.get("LEADGATE_BASE_URL"):
        own["BASE_URL"] = None  # no request to answer, no link to build (capture.config.as_base_url)
    try:
        return create_app(own or None)
    except OSError as e:  # the instance folder cannot be made
        raise click.ClickException(
            f"cannot create the folder {e.filename}: {e.strerror}; set LEADGATE_INSTANCE_PATH to a "
            "folder Leadgate may write to.") from None


def close_app(app: Flask) -> None:
    """Stop the spool's thread and close the database connections of an app made here."""
    from capture.db.store import get_store
    from capture.spool import get_spool

    get_spool(app).stop()
    get_store(app).dispose()
