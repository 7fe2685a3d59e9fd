"""`leadgate privacy export|erase|purge`: the rights of the person from a terminal
(rules in capture.privacy, docs/privacy.md)."""

from __future__ import annotations

import sys

import click

from capture.cli.command import group, option


@group()
def privacy() -> None:
    """A person's rights: a copy of their data, erasure, and the retention purge."""


@privacy.command("export")
@click.argument("email")
@option("--output", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
        help="Write the JSON to FILE (readable by you only) instead of standard output.")
def privacy_export(email: str, output: str | None) -> None:
    """Everything held about the person of EMAIL (any case), as JSON: profile, submissions,
    downloads, consent events with their exact words, score, stages, emails, posts held as spam
    and lines waiting in the spool. Exits 1 when nothing is held. Recorded in the export log."""
    import os

    from capture.cli.export import who_runs_this
    from capture.db.store import get_store
    from capture.privacy import access
    from capture.spool import get_spool
    from capture.staff import audit

    store = get_store()
    document = access.person_data(store, email, get_spool().file)
    if document is None:
        click.echo(f"Nothing is held about {email}: no lead, no post in the spam folder, nothing in the spool.",
                   err=True)
        sys.exit(1)
    lead = document["lead"]
    record = audit.start(store, "cli", who_runs_this(), access.audit_filters(lead["id"] if lead else None))
    body = access.as_json(document)
    if output:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(body)
        click.echo(f"Wrote everything held about {email} to {output}.", err=True)
    else:
        click.echo(body, nl=False)
    audit.finish(store, record, 1, True)


@privacy.command("erase")
@click.argument("email")
@option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
def privacy_erase(email: str, yes: bool) -> None:
    """Erase the person of EMAIL: their details, consent events, emails, jobs, held posts and spool
    lines go; the lead stays as an anonymous row so report counts stay; the address goes on the
    suppression list so old data cannot bring it back. Cannot be undone."""
    from flask import current_app

    from capture.cli.export import who_runs_this
    from capture.privacy import erasure, suppression

    if not yes:
        click.confirm(f"Erase everything held about {email}? This cannot be undone", abort=True)
    try:
        done = erasure.erase(current_app._get_current_object(), email, channel="cli",  # type: ignore[attr-defined]
                             actor=who_runs_this())
    except suppression.KeyUnknown as e:
        raise click.ClickException(str(e)) from None
    click.echo(done.describe())
    if done.files:
        sys.exit(1)


@privacy.command("purge")
@option("--dry-run", is_flag=True, help="Only say how many leads would be erased, and their numbers.")
def privacy_purge(dry_run: bool) -> None:
    """Erase every lead without activity (a post, a download, a consent event, a stage move) for
    longer than retention_months of content/leadgate.yml. The worker does this once a day when
    LEADGATE_RETENTION_PURGE is true."""
    from flask import current_app

    from capture.privacy import retention, suppression

    try:
        done = retention.purge(current_app._get_current_object(), dry_run=dry_run)  # type: ignore[attr-defined]
    except suppression.KeyUnknown as e:
        raise click.ClickException(str(e)) from None
    click.echo(done.describe())
    if done.files:
        sys.exit(1)
