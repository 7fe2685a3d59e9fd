"""`leadgate spool`: submissions kept on disk while the database could not take them."""

from __future__ import annotations

import sys

import click

from capture.cli.command import group


@group()
def spool() -> None:
    """Submissions kept on disk while the database could not take them."""


@spool.command("status")
def spool_status() -> None:
    """Show what waits in the spool, and any unreadable lines set aside."""
    from sqlalchemy.exc import SQLAlchemyError

    from capture.privacy.suppression import KeyUnknown
    from capture.spool import get_spool

    spool = get_spool()
    try:
        status = spool.file.status(spool.is_suppressed)
    except KeyUnknown as e:
        raise click.ClickException(f"{e} (to tell which spooled posts are of erased people)") from None
    except SQLAlchemyError:  # the database is down: what waits is told all the same
        status = spool.file.status()
    click.echo(status.describe(spool.file))


@spool.command("replay")
def spool_replay() -> None:
    """Store what waits in the spool; what is already stored is skipped. Exits 1 when lines stay."""
    from capture.spool import SpoolError, get_spool

    from capture.privacy.suppression import KeyUnknown

    try:
        report = get_spool().replay()
    except KeyUnknown as e:
        raise click.ClickException(f"{e}; nothing was replayed") from None
    except SpoolError as e:
        raise click.ClickException(str(e)) from None
    click.echo(report.describe(get_spool().file))
    if report.kept or report.busy:
        sys.exit(1)
