"""The `leadgate` command. Commands are thin: they parse options and call library functions."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _create_app():
    from capture import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main() -> None:
    """Leadgate: gated content on a MkDocs site, a capture service, and exports for sales."""


@main.command(with_appcontext=False)
@click.option("-f", "--config-file", default="mkdocs.yml", show_default=True,
              type=click.Path(exists=True, dir_okay=False), help="The MkDocs configuration.")
@click.option("-d", "--site-dir", type=click.Path(file_okay=False),
              help="Where to write the site (default: site_dir from the configuration).")
def build(config_file: str, site_dir: str | None) -> None:
    """Build the static site from content/."""
    out = _build(config_file, site_dir)
    click.echo(f"Site built in {out}", err=True)


def _build(config_file: str, site_dir: str | None) -> Path:
    from capture.site.build import SiteBuildError, build_site

    try:
        return build_site(config_file, site_dir)
    except SiteBuildError as e:
        raise click.ClickException(f"The site could not be built.\n{e}") from None


@main.command(with_appcontext=False)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--workers", type=click.IntRange(1, 64),
              help="gunicorn worker processes (default: $WEB_CONCURRENCY, else 2).")
@click.option("--demo", is_flag=True,
              help="Local demo: use (or create) instance/secret_key instead of LEADGATE_SECRET_KEY.")
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader.")
@click.option("--build/--no-build", "build_first", default=True, show_default=True,
              help="Build the site before serving it.")
@click.option("-f", "--config-file", default="mkdocs.yml", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("-d", "--site-dir", type=click.Path(file_okay=False),
              help="The built site to serve (default: site_dir from the configuration).")
@click.option("--upgrade/--no-upgrade", default=None,
              help="Migrate the database to the newest schema first (default: $LEADGATE_AUTO_UPGRADE, "
                   "else yes).")
def serve(host: str, port: int, workers: int | None, demo: bool, dev: bool, build_first: bool,
          config_file: str, site_dir: str | None, upgrade: bool | None) -> None:
    """Serve the built site and the capture service together (default http://127.0.0.1:8000)."""
    from capture import create_app
    from capture.config import ConfigError

    if build_first:
        site = _build(config_file, site_dir)
    else:
        site = Path(site_dir or "site")
        if not (site / "index.html").is_file():
            raise click.ClickException(f"No built site in {site}: run `leadgate build` first.")
    env = {"LEADGATE_SITE_DIR": str(site.resolve())}
    if demo:
        env["LEADGATE_DEMO"] = "true"
    os.environ.update(env)
    try:
        app = create_app({"DEBUG": True} if dev else None)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if app.config["AUTO_UPGRADE"] if upgrade is None else upgrade:
        # Once, here, before any worker starts: workers never change the schema.
        _upgrade(app.config["DATABASE_URL"])
    click.echo(f"Leadgate on http://{host}:{port}/", err=True)
    if dev:
        app.run(host=host, port=port, debug=True)
        return
    # The settings operators use too; gunicorn imports the factory in each worker after
    # forking, so no database connection is ever shared across processes.
    # gunicorn puts the working directory first on sys.path, so a worker may import capture from
    # a source tree while this process imported an installed copy: pin the instance folder
    # (database, secret, spool) to the one resolved here.
    os.environ["LEADGATE_INSTANCE_PATH"] = app.instance_path
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:capture.gunicorn_conf",
            "--bind", f"{host}:{port}"]
    if workers is not None:
        argv += ["--workers", str(workers)]
    os.execv(sys.executable, [*argv, "capture:create_app()"])


#: Export parameter (as in a query string) → the option that sets it, for error messages.
EXPORT_OPTIONS = {
    "q": "--q", "from": "--from", "to": "--to", "resource": "--resource", "type": "--type",
    "utm_source": "--utm-source", "utm_medium": "--utm-medium", "utm_campaign": "--utm-campaign",
    "marketing": "--marketing", "columns": "--columns", "format": "--format", "excel": "--excel",
}


@main.command()
@click.option("-o", "--output", type=click.File("wb", lazy=True), default="-",
              help="Write to FILE instead of standard output.")
@click.option("--q", "--search", "q", metavar="TEXT",
              help="Part of the email, first or last name, or company, in any case.")
@click.option("--from", "seen_from", metavar="YYYY-MM-DD",
              help="Leads who sent a form on or after this day (UTC).")
@click.option("--to", "seen_to", metavar="YYYY-MM-DD",
              help="Leads who sent a form on or before this day (UTC).")
@click.option("--resource", metavar="ID", help="Leads who requested this resource.")
@click.option("--type", "resource_type", metavar="TYPE",
              help="Leads who requested a resource of this type (ebook, whitepaper…).")
@click.option("--utm-source", metavar="VALUE", help="Leads with a form post from this utm_source.")
@click.option("--utm-medium", metavar="VALUE", help="… from this utm_medium.")
@click.option("--utm-campaign", metavar="VALUE", help="… from this utm_campaign.")
@click.option("--marketing", metavar="yes|no",
              help="yes: the latest marketing choice was to opt in; no: it was not.")
@click.option("--columns", metavar="a,b,c",
              help="Columns, in order (default: the usual set; `all` for every one; see docs/export.md).")
@click.option("--format", "fmt", default="csv", show_default=True, metavar="csv|jsonl",
              help="csv for spreadsheets, jsonl (one JSON object a line) for programs.")
@click.option("--excel", is_flag=True, help="Start the CSV with a UTF-8 BOM so Excel reads it as UTF-8.")
@with_appcontext
def export(output, q, seen_from, seen_to, resource, resource_type, utm_source, utm_medium,
           utm_campaign, marketing, columns, fmt, excel) -> None:
    """Export leads as CSV or JSON Lines: one row per lead, with source and consent.

    Filters combine; --from, --to, --resource, --type and --utm-* must hold on one and the
    same form post (see docs/export.md).
    """
    from capture.catalog import get_catalog
    from capture.db.store import get_store
    from capture.leads.export import ExportOptions, write_export
    from capture.leads.filters import LeadFilter

    args = {"q": q, "from": seen_from, "to": seen_to, "resource": resource, "type": resource_type,
            "utm_source": utm_source, "utm_medium": utm_medium, "utm_campaign": utm_campaign,
            "marketing": marketing, "columns": columns, "format": fmt, "excel": "yes" if excel else ""}
    catalog = get_catalog() if resource_type else None
    lead_filter, errors = LeadFilter.from_args(
        args, catalog.settings.resource_types if catalog else None)
    options, option_errors = ExportOptions.from_args(args)
    errors.update(option_errors)
    if errors:
        raise click.UsageError("\n".join(
            f"{EXPORT_OPTIONS[name]}: {message}" for name, messages in errors.items() for message in messages))
    count = write_export(get_store(), output, options, lead_filter, catalog)
    if output.name != "-":
        click.echo(f"{count} lead{'' if count == 1 else 's'} written to {output.name}", err=True)


@main.group()
def db() -> None:
    """The database's schema: Leadgate's migrations bring it to the version this code needs."""


@contextmanager
def _database_errors(doing: str) -> Iterator[None]:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as e:
        raise click.ClickException(f"Could not {doing}: {getattr(e, 'orig', None) or e}") from None


def _upgrade(url: str) -> None:
    from capture.db import migrate

    with _database_errors("upgrade the database"):
        migrate.upgrade(url)
    click.echo(f"Database schema at revision {migrate.head()}, the newest.", err=True)


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the tables, or migrate them to the newest schema; does nothing when up to date."""
    _upgrade(current_app.config["DATABASE_URL"])


@db.command("current")
def db_current() -> None:
    """Show the database's schema revision and the one this version of Leadgate needs."""
    from capture.db import migrate
    from capture.db.store import get_store

    with _database_errors("read the database's revision"):
        revision = migrate.current(get_store().engine)
    needed = "the newest" if revision == migrate.head() else f"this version needs {migrate.head()}"
    click.echo(f"{revision or 'none'} ({needed})")


PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of standard input instead of asking.")


@main.group()
def user() -> None:
    """Staff accounts that sign in to the workspace."""


@user.command("add")
@click.argument("email")
@click.option("--role", required=True, metavar="sales|marketing|admin",
              help="What the account may do; an admin may do everything.")
@PASSWORD_STDIN
def user_add(email: str, role: str, password_stdin: bool) -> None:
    """Add a staff account; the password is asked for twice (at least 12 characters)."""
    from capture.staff import accounts
    from capture.db.store import get_store

    try:
        account = accounts.add_user(get_store(), email, _read_password(password_stdin), role.strip().lower())
    except accounts.AuthError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Added {account.email} ({account.role}).")


@user.command("password")
@click.argument("email")
@PASSWORD_STDIN
def user_password(email: str, password_stdin: bool) -> None:
    """Set a new password for an account; it is signed out everywhere else."""
    from capture.staff import accounts
    from capture.db.store import get_store

    try:
        accounts.account(get_store(), email)  # before asking for a password it cannot use
        account = accounts.set_password(get_store(), email, _read_password(password_stdin))
    except accounts.AuthError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"New password set for {account.email}.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@user.command("list")
def user_list() -> None:
    """Every staff account: email, role, since when, and whether it is disabled."""
    from capture.staff import accounts
    from capture.db.store import get_store

    for account in accounts.users(get_store()):
        state = "  disabled" if account.disabled else ""
        click.echo(f"{account.email}  {account.role}  since {_iso(account.created_at)}{state}")


@user.command("disable")
@click.argument("email")
def user_disable(email: str) -> None:
    """Stop an account signing in or using its tokens; its sessions end at their next page."""
    _set_disabled(email, True)


@user.command("enable")
@click.argument("email")
def user_enable(email: str) -> None:
    """Let a disabled account sign in again."""
    _set_disabled(email, False)


def _set_disabled(email: str, disabled: bool) -> None:
    from capture.staff import accounts
    from capture.db.store import get_store

    try:
        account = accounts.set_disabled(get_store(), email, disabled)
    except accounts.AuthError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{account.email} {'disabled' if disabled else 'enabled'}.")


@main.group()
def token() -> None:
    """API tokens for scripts (``Authorization: Bearer <token>``)."""


@token.command("create")
@click.argument("email")
@click.option("--name", default="", help="What the token is for, e.g. \"CRM sync\".")
def token_create(email: str, name: str) -> None:
    """Create a token for an account and print it; it cannot be shown again."""
    from capture.staff import accounts
    from capture.db.models import TOKEN_NAME_MAX
    from capture.db.store import get_store

    if len(name) > TOKEN_NAME_MAX:
        raise click.BadParameter(f"use at most {TOKEN_NAME_MAX} characters", param_hint="--name")
    try:
        row, secret = accounts.create_token(get_store(), email, name)
    except accounts.AuthError as e:
        raise click.ClickException(str(e)) from None
    click.echo(secret)
    click.echo(f"Token {row.id} created. Store it now: it is shown only once.", err=True)


@token.command("list")
def token_list() -> None:
    """Every token: id, prefix, owner, name, when created and last used, and whether revoked."""
    from capture.staff import accounts
    from capture.db.store import get_store

    for row, email in accounts.tokens(get_store()):
        used = _iso(row.last_used_at) if row.last_used_at else "never"
        state = f"  revoked {_iso(row.revoked_at)}" if row.revoked_at else ""
        click.echo(f"{row.id}  {row.prefix}…  {email}  {row.name or '-'}  "
                   f"created {_iso(row.created_at)}  used {used}{state}")


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke a token by its id (see `leadgate token list`); it stops working at once."""
    from capture.staff import accounts
    from capture.db.store import get_store

    if accounts.revoke_token(get_store(), token_id) is None:
        raise click.ClickException(f"There is no token {token_id} (see `leadgate token list`).")
    click.echo(f"Token {token_id} revoked.")


def _iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@main.group()
def spool() -> None:
    """Submissions kept on disk while the database could not take them."""


@spool.command("status")
def spool_status() -> None:
    """Show what waits in the spool, and any unreadable lines set aside."""
    from capture.spool import get_spool

    file = get_spool().file
    click.echo(file.status().describe(file))


@spool.command("replay")
def spool_replay() -> None:
    """Store what waits in the spool; what is already stored is skipped. Exits 1 when lines stay."""
    from capture.spool import SpoolError, get_spool

    try:
        report = get_spool().replay()
    except SpoolError as e:
        raise click.ClickException(str(e)) from None
    click.echo(report.describe(get_spool().file))
    if report.kept or report.busy:
        sys.exit(1)


def init_app(app) -> None:
    """Make every command reachable as `flask --app capture COMMAND` too."""
    for command in main.commands.values():
        app.cli.add_command(command)
