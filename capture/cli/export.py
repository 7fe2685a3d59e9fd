"""`leadgate export`: leads as CSV or JSON Lines, with the filters of the workspace and the API;
`leadgate export-log`: every export, recorded (capture.staff.audit)."""

from __future__ import annotations

import getpass
import os
import shlex
import socket
from contextlib import closing
from typing import Any, BinaryIO

import click

from capture.cli.command import command, option
from capture.cli.problems import require_tables

#: Export parameter (as in a query string) → the option that sets it, for error messages.
EXPORT_OPTIONS = {
    "q": "--search", "from": "--from", "to": "--to", "resource": "--resource", "type": "--type",
    "utm_source": "--utm-source", "utm_medium": "--utm-medium", "utm_campaign": "--utm-campaign",
    "marketing": "--marketing", "stage": "--stage", "score_min": "--score-min",
    "score_max": "--score-max", "fit_min": "--fit-min", "fit_max": "--fit-max",
    "engagement_min": "--engagement-min", "engagement_max": "--engagement-max",
    "mql_from": "--mql-from", "mql_to": "--mql-to", "columns": "--columns", "format": "--format", "excel": "--excel",
}


@command()
@option("-o", "--output", type=click.File("wb", lazy=True), default="-", metavar="FILE",
        help="Write to FILE instead of standard output.")
@option("-s", "--search", "q", metavar="TEXT",
        help="Part of the email, first or last name, or company, in any case.")
@option("--from", "seen_from", metavar="YYYY-MM-DD",
        help="Leads who sent a form on or after this day (UTC).")
@option("--to", "seen_to", metavar="YYYY-MM-DD",
        help="Leads who sent a form on or before this day (UTC).")
@option("--resource", metavar="ID", help="Leads who requested this resource.")
@option("--type", "resource_type", metavar="TYPE",
        help="Leads who requested a resource of this type (ebook, whitepaper…).")
@option("--utm-source", metavar="VALUE", help="Leads with a form post from this utm_source.")
@option("--utm-medium", metavar="VALUE", help="… from this utm_medium.")
@option("--utm-campaign", metavar="VALUE", help="… from this utm_campaign.")
@option("--marketing", metavar="yes|no",
        help="yes: the latest marketing choice was to opt in; no: it was not.")
@option("--stage", metavar="STAGE",
        help="Leads at this stage now (lead, mql, sql, prospect, customer, disqualified, recycled).")
@option("--score-min", metavar="0-100", help="Leads scoring at least this.")
@option("--score-max", metavar="0-100", help="Leads scoring at most this.")
@option("--fit-min", metavar="0-100", help="Leads with at least this fit.")
@option("--fit-max", metavar="0-100", help="… at most this fit.")
@option("--engagement-min", metavar="0-100", help="Leads with at least this engagement.")
@option("--engagement-max", metavar="0-100", help="… at most this engagement.")
@option("--mql-from", metavar="YYYY-MM-DD", help="Leads who became an MQL on or after this day (UTC).")
@option("--mql-to", metavar="YYYY-MM-DD", help="… on or before this day (UTC).")
@option("--columns", metavar="a,b,c",
        help="Columns, in order (default: the usual set; `all` for every one; see docs/export.md).")
@option("--format", "fmt", default="csv", show_default=True, metavar="csv|jsonl",
        help="csv for spreadsheets, jsonl (one JSON object a line) for programs.")
@option("--excel", is_flag=True, help="Start the CSV with a UTF-8 BOM so Excel reads it as UTF-8.")
def export(output, q, seen_from, seen_to, resource, resource_type, utm_source, utm_medium,
           utm_campaign, marketing, stage, score_min, score_max, fit_min, fit_max, engagement_min,
           engagement_max, mql_from, mql_to, columns, fmt, excel) -> None:
    """Export leads as CSV or JSON Lines: one row per lead, with score, source and consent.

    Filters combine; --from, --to, --resource, --type and --utm-* must hold on one and the
    same form post (see docs/export.md).
    """
    from capture.catalog import get_catalog, get_settings
    from capture.db.store import get_store
    from capture.leads.export import ExportOptions
    from capture.leads.filters import LeadFilter

    args = {"q": q, "from": seen_from, "to": seen_to, "resource": resource, "type": resource_type,
            "utm_source": utm_source, "utm_medium": utm_medium, "utm_campaign": utm_campaign,
            "marketing": marketing, "stage": stage, "score_min": score_min, "score_max": score_max,
            "fit_min": fit_min, "fit_max": fit_max, "engagement_min": engagement_min,
            "engagement_max": engagement_max, "mql_from": mql_from, "mql_to": mql_to,
            "columns": columns, "format": fmt, "excel": "yes" if excel else ""}
    catalog = get_catalog() if resource_type or resource else None
    lead_filter, errors = LeadFilter.from_args(args, *catalog.choices() if catalog else ())
    options, option_errors = ExportOptions.from_args(args, get_settings().purposes)
    errors.update(option_errors)
    if errors:
        raise click.UsageError("\n".join(
            f"{EXPORT_OPTIONS[name]}: {message}" for name, messages in errors.items() for message in messages))
    require_tables(get_store().engine)
    count = audited_export(output, options, lead_filter, catalog, given_options(args))
    if output.name != "-":
        click.echo(f"{count} lead{'' if count == 1 else 's'} written to {output.name}", err=True)


def given_options(args: dict[str, str | None]) -> str:
    """The filter and column options as typed, for the export log: ``--stage mql --excel``."""
    given = []
    for name, value in args.items():
        if name == "excel":
            given += ["--excel"] if value else []
        elif value and not (name == "format" and value == "csv"):  # the default, not a choice
            given += [EXPORT_OPTIONS[name], value]
    return shlex.join(given)


def who_runs_this() -> str:
    """The account on this host that runs the command: the log's "who" for the command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (command line)"


def audited_export(output: BinaryIO, options: Any, lead_filter: Any, catalog: Any, filters: str) -> int:
    """Write the export, recorded in the export log from start to end; the leads written."""
    from capture.db.store import get_store
    from capture.leads.export import iter_export
    from capture.staff import audit

    store = get_store()
    record = audit.start(store, "cli", who_runs_this(), filters)
    rendering = iter_export(store, options, lead_filter, catalog)
    count = rendering.count
    with closing(audit.recorded(rendering, store, record, lambda: count.rows)) as blocks:
        for block in blocks:
            output.write(block)
    return rendering.rows


@command(name="export-log")
@option("--limit", "count", type=click.IntRange(1, 10_000), default=50, show_default=True, metavar="N",
        help="How many exports to show, newest first.")
@option("--channel", type=click.Choice(["cli", "workspace", "api"]), default=None,
        help="Only exports made this way.")
def export_log(count: int, channel: str | None) -> None:
    """Every export of leads, newest first: when, how, who, the filter given, leads, finished.

    "not finished" is an export still running, or one cut off before its end.
    """
    from capture.db.store import get_store
    from capture.staff import audit

    require_tables(get_store().engine)
    page = audit.recent(get_store(), limit=count, channel=channel)
    if not page.records:
        click.echo("No exports recorded yet.", err=True)
    for record in page.records:
        state = "finished" if record.completed else "not finished"
        leads = f"{record.rows} lead{'' if record.rows == 1 else 's'}"
        click.echo(f"{record.created_at:%Y-%m-%dT%H:%M:%SZ}  {record.channel:<9}  {record.actor}  "
                   f"{leads}  {state}  {record.filters or '(every lead)'}")
