"""The `leadgate` command. Commands are thin: they parse options and call library functions.

One module per group of commands: ``site`` (build, serve), ``export``, ``db``, ``staff``
(user, token), ``spool``, ``qualify`` (check, rescore, stage), ``report`` (report, spend,
sample), ``spam`` (the spam folder), ``consent`` (proof), ``privacy`` (a person's rights) and
``jobs`` (worker, jobs status|retry); ``command`` holds what they share.
"""

from __future__ import annotations

from flask import Flask

from capture.cli import consent, db, export, jobs, privacy, qualify, report, site, spam, spool, staff
from capture.cli.command import group


@group()
def main() -> None:
    """Leadgate: gated content on a MkDocs site, a capture service, and exports for sales."""


for _command in (site.build, site.serve, export.export, export.export_log, db.db, staff.user, staff.token, spool.spool,
                 qualify.check, qualify.rescore, qualify.stage, report.report, report.spend,
                 report.sample, spam.spam, consent.consent, privacy.privacy, jobs.worker, jobs.jobs):
    main.add_command(_command)


def init_app(app: Flask) -> None:
    """Make every command reachable as `flask --app capture COMMAND` too."""
    for command in main.commands.values():
        app.cli.add_command(command)
