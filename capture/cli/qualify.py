"""`leadgate check`, `leadgate rescore` and `leadgate stage`: the scoring rules and the stages
as marketers and sales drive them from a terminal."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from capture.cli.command import command, option


def shown_folder(path: Path) -> str:
    """The content folder as the user would type it: relative to here when inside it."""
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        shown = str(path)
    return shown.rstrip("/") + "/"


@command()
def check() -> None:
    """Check the content folder without building: the resources, leadgate.yml, the privacy
    notice, the published consent texts (also against the database, when it can be read) and
    scoring.yml. Prints every problem, one a line (file, line where known, field), and exits 1
    when there is any."""
    from flask import current_app

    from capture.checks import check_content
    from capture.db.store import get_store

    content_dir = Path(current_app.config["CONTENT_DIR"])
    checked = check_content(content_dir, get_store())
    if checked.problems:
        for problem in checked.problems:
            click.echo(problem, err=True)
        count = len(checked.problems)
        raise click.ClickException(f"{count} problem{'s' if count != 1 else ''} in {shown_folder(content_dir)}: "
                                   f"fix {'them' if count != 1 else 'it'} and run `leadgate check` again.")
    assert checked.catalog is not None and checked.scoring is not None
    version = checked.scoring.rules.version
    rules = "no scoring rules (every score 0)" if version == "none" else f"scoring rules {version}"
    count = len(checked.catalog)
    click.echo(f"{shown_folder(content_dir)}: {count} resource{'s' if count != 1 else ''}, {rules}: "
               "no problems")


@command()
@option("--all", "everyone", is_flag=True,
        help="Rescore every lead, not only those whose score is stale (scored by other rules, or "
             "before today's decay).")
def rescore(everyone: bool) -> None:
    """Recompute lead scores after content/scoring.yml changed, in batches of one transaction
    each, promoting leads whose score reaches the MQL threshold. Safe to stop and run again:
    leads already done are not stale any more, so a second run carries on."""
    from capture.db.models import utcnow
    from capture.db.store import get_store
    from capture.scoring.apply import count_stale, get_scoring, rescore as rescore_leads

    store, scoring = get_store(), get_scoring()
    now = utcnow()
    total = count_stale(store, scoring, now, everyone=everyone)
    done = 0

    def advanced(n: int) -> None:
        nonlocal done
        done += n
        bar.update(n)

    try:
        with click.progressbar(length=total, label="Rescoring leads", file=sys.stderr,
                               show_pos=True) as bar:
            result = rescore_leads(store, scoring, now=now, everyone=everyone, progress=advanced)
    except KeyboardInterrupt:
        raise click.ClickException(f"stopped after {done} lead(s); what was done is kept: run "
                                   "`leadgate rescore` again to carry on.") from None
    click.echo(f"{result.scored} lead(s) scored with rules {scoring.rules.version}: "
               f"{result.score_changed} changed score, {result.promoted} changed stage (promoted to MQL).")


@command()
@click.argument("email")
@click.argument("stage")
@option("--by", "by", required=True, metavar="STAFF_EMAIL",
        help="The staff account making the move (a sales or admin account).")
@option("--reason", default="", help="Why: required to disqualify (one of the settings' reasons) "
                                     "and to make a lead below the threshold an MQL.")
@option("--value", default=None, metavar="AMOUNT", help="The deal value, with a move to customer.")
@option("--currency", default="", metavar="CODE",
        help="The deal value's ISO 4217 code (default: currency in leadgate.yml).")
@option("--channel", default="", metavar="email|call|meeting|linkedin",
        help="How the lead answered, with a move to prospect.")
def stage(email: str, stage: str, by: str, reason: str, value: str | None, currency: str,
          channel: str) -> None:
    """Move the lead of EMAIL to STAGE (lead, mql, sql, prospect, customer, disqualified or
    recycled), recorded in its history with who and why. Moves that make no sense are refused
    with the rule they break (docs/stages.md)."""
    from capture.catalog import get_catalog
    from capture.db.store import get_store
    from capture.leads import stages
    from capture.scoring.apply import get_scoring
    from capture.staff import accounts

    store = get_store()
    try:
        staff = accounts.active_account(store, by)
    except accounts.AuthError as e:
        raise click.ClickException(f"--by: {e}") from None
    refusal = stages.refusal_for_role(staff.role)
    if refusal:
        raise click.ClickException(f"--by: {staff.email} is a {staff.role} account: {refusal}.")
    try:
        address = accounts.normalize_email(email)
    except accounts.AuthError as e:
        raise click.ClickException(str(e)) from None
    lead = stages.lead_by_email(store, address)
    if lead is None:
        raise click.ClickException(f"There is no lead with the address {address}.")
    settings = get_catalog().settings
    try:
        move = stages.Move(stage.strip().lower(), reason=reason, channel=channel,
                           value=stages.parse_value(value), currency=currency)
        change = stages.move_stage(store, lead.id, move, stages.Actor("user", staff.email),
                                   threshold=get_scoring().threshold,
                                   disqualify_reasons=settings.disqualification_reasons,
                                   currency=settings.currency)
    except stages.MoveRefused as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{lead.email}: {change.from_stage} → {change.to_stage} (by {staff.email})")

