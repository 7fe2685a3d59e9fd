"""`leadgate user` and `leadgate token`: staff accounts for the workspace and API tokens for scripts."""

from __future__ import annotations

import sys

import click

from capture.cli.command import group, option

PASSWORD_STDIN = option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of standard input instead of asking.")


@group()
def user() -> None:
    """Staff accounts that sign in to the workspace."""


@user.command("add")
@click.argument("email")
@option("--role", required=True, metavar="sales|marketing|admin",
        help="What the account may do; an admin may do everything.")
@PASSWORD_STDIN
def user_add(email: str, role: str, password_stdin: bool) -> None:
    """Add a staff account for EMAIL, the address it signs in with; the password is asked for
    twice (at least 12 characters)."""
    from capture.db.store import get_store
    from capture.staff import accounts

    try:
        account = accounts.add_user(get_store(), email, _read_password(password_stdin), role.strip().lower())
    except accounts.AuthError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Added {account.email} ({account.role}).")


@user.command("password")
@click.argument("email")
@PASSWORD_STDIN
def user_password(email: str, password_stdin: bool) -> None:
    """Set a new password for the account of EMAIL; it is signed out everywhere else."""
    from capture.db.store import get_store
    from capture.staff import accounts

    try:
        accounts.account(get_store(), email)  # before asking for a password it cannot use
        account = accounts.set_password(get_store(), email, _read_password(password_stdin))
    except accounts.AuthError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"New password set for {account.email}.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        # getpass cannot hide a piped password: it warned twice and read two lines.
        raise click.ClickException(
            "standard input is not a terminal, so the password cannot be asked for: pass "
            "--password-stdin to read it from the first line of standard input.")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@user.command("list")
def user_list() -> None:
    """Every staff account: email, role, since when, and whether it is disabled."""
    from capture.db.store import get_store
    from capture.staff import accounts

    for account in accounts.users(get_store()):
        state = "  disabled" if account.disabled else ""
        click.echo(f"{account.email}  {account.role}  since {_iso(account.created_at)}{state}")


@user.command("disable")
@click.argument("email")
def user_disable(email: str) -> None:
    """Stop the account of EMAIL signing in or using its tokens; its sessions end at once."""
    _set_disabled(email, True)


@user.command("enable")
@click.argument("email")
def user_enable(email: str) -> None:
    """Let the disabled account of EMAIL sign in again."""
    _set_disabled(email, False)


def _set_disabled(email: str, disabled: bool) -> None:
    from capture.db.store import get_store
    from capture.staff import accounts

    try:
        account = accounts.set_disabled(get_store(), email, disabled)
    except accounts.AuthError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{account.email} {'disabled' if disabled else 'enabled'}.")


@group()
def token() -> None:
    """API tokens for scripts (`Authorization: Bearer <token>`)."""


@token.command("create")
@click.argument("email")
@option("--name", default="", help="What the token is for, e.g. \"CRM sync\".")
def token_create(email: str, name: str) -> None:
    """Create a token for the account of EMAIL and print it; it cannot be shown again."""
    from capture.db.models import TOKEN_NAME_MAX
    from capture.db.store import get_store
    from capture.staff import accounts

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
    from capture.db.store import get_store
    from capture.staff import accounts

    for row, email in accounts.tokens(get_store()):
        used = _iso(row.last_used_at) if row.last_used_at else "never"
        state = f"  revoked {_iso(row.revoked_at)}" if row.revoked_at else ""
        click.echo(f"{row.id}  {row.prefix}…  {email}  {row.name or '-'}  "
                   f"created {_iso(row.created_at)}  used {used}{state}")


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke the token numbered ID (see `leadgate token list`); it stops working at once."""
    from capture.db.store import get_store
    from capture.staff import accounts

    if accounts.revoke_token(get_store(), token_id) is None:
        raise click.ClickException(f"There is no token {token_id} (see `leadgate token list`).")
    click.echo(f"Token {token_id} revoked.")


def _iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
