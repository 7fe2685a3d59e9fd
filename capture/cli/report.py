"""`leadgate report`, `leadgate spend import|list` and `leadgate sample`: the funnel's measures,
what sources cost, and a demo's sample data (docs/reports.md)."""

from __future__ import annotations

import sys

import click

from capture.cli.command import command, group, option
from capture.cli.problems import require_tables

FROM = option("--from", "day_from", metavar="YYYY-MM-DD",
              help="First day (UTC) of the range; default: 89 days before --to.")
TO = option("--to", "day_to", metavar="YYYY-MM-DD", help="Last day (UTC) of the range; default: today.")
FORMAT = option("--format", "fmt", type=click.Choice(("table", "csv", "json")), default="table",
                show_default=True, help="table for a terminal, csv with a header, json for programs.")


def _range(day_from: str | None, day_to: str | None):
    from capture.analytics.measures import RangeError, day_range

    try:
        return day_range(day_from, day_to)
    except RangeError as e:
        raise click.UsageError("\n".join(f"--{name}: {message}" for name, messages in e.errors.items()
                                         for message in messages)) from None


@command()
@FROM
@TO
@option("--by", type=click.Choice(("utm_source", "utm_medium", "utm_campaign", "resource")),
        help="Group by this field of each lead's first form post (default: all leads together).")
@FORMAT
def report(day_from: str | None, day_to: str | None, by: str | None, fmt: str) -> None:
    """Lead volume, the funnel's conversions, lead quality, sales cycle, deal size and cost,
    for the leads first seen in a range of days (the last 90 by default)."""
    from capture.analytics.formats import write_report
    from capture.analytics.measures import report as make_report
    from capture.catalog import get_catalog
    from capture.db.store import get_store

    range_ = _range(day_from, day_to)
    require_tables(get_store().engine)
    figures = make_report(get_store(), range_, by, get_catalog().settings.currency)
    write_report(figures, fmt, sys.stdout)


@group()
def spend() -> None:
    """What sources and campaigns cost, for cost per lead and per MQL."""


@spend.command("import")
@click.argument("file", type=click.File("rb"), metavar="FILE.csv")
def spend_import(file) -> None:
    """Import daily spend from FILE.csv, whose header names the columns date, utm_source,
    utm_campaign, amount, currency. A file with any bad row imports nothing; a day, source and
    campaign imported before gets the new amount."""
    from capture.analytics.spend import SpendFileError, import_spend, read_spend
    from capture.db.store import get_store

    name = "standard input" if file.name == "-" else file.name
    try:
        rows = read_spend(file, name)
    except SpendFileError as e:
        raise click.ClickException(f"nothing imported from {name}; fix these and import it again:\n"
                                   + "\n".join(f"  {p}" for p in e.problems)) from None
    require_tables(get_store().engine)
    done = import_spend(get_store(), rows)
    click.echo(f"Imported {len(rows)} spend row{'' if len(rows) == 1 else 's'} from {done.first} to "
               f"{done.last}: {done.added} new, {done.replaced} replaced.")


@spend.command("list")
@FROM
@TO
@FORMAT
def spend_list(day_from: str | None, day_to: str | None, fmt: str) -> None:
    """Spend per source and campaign in a range, with the leads and MQLs they brought,
    cost per lead and cost per MQL."""
    from capture.analytics.formats import write_spend
    from capture.analytics.measures import spend_lines
    from capture.db.store import get_store

    range_ = _range(day_from, day_to)
    require_tables(get_store().engine)
    write_spend(spend_lines(get_store(), range_), range_, fmt, sys.stdout)


@command()
@option("--leads", "count", type=click.IntRange(1, 20_000), default=500, show_default=True,
        help="How many sample leads to make.")
@option("--seed", type=int, default=None, help="Make the same sample again from the same seed.")
@option("--days", type=click.IntRange(7, 730), default=90, show_default=True,
        help="Spread the leads over this many days up to today.")
@option("--force", is_flag=True, help="Add the sample even though real leads are there.")
def sample(count: int, seed: int | None, days: int, force: bool) -> None:
    """Fill a demo with a clearly fake sample: leads from several sources and campaigns,
    repeat downloads, stage moves by a fictional rep and some spend, all stored the way real
    form posts and moves are."""
    from capture.analytics.sample import SampleRefused, make_sample
    from capture.catalog import get_catalog
    from capture.db.store import get_store
    from capture.scoring.apply import get_scoring

    require_tables(get_store().engine)
    try:
        made = make_sample(get_store(), get_catalog(), get_scoring(), count=count, seed=seed, days=days, force=force,
                           progress=lambda text: click.echo(text, err=True) if sys.stderr.isatty() else None)
    except SampleRefused as e:
        raise click.ClickException(str(e)) from None
    click.echo(made.summary())
