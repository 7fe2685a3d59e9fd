"""`leadgate consent proof EMAIL`, the evidence of what a person agreed to (for them or an
authority), and `leadgate consent refresh` after double opt-in was turned on or off."""

from __future__ import annotations

import click

from capture.cli.command import group


@group()
def consent() -> None:
    """The consent ledger: what each person agreed to, to the word (docs/consent.md)."""


@consent.command()
@click.argument("email")
def proof(email: str) -> None:
    """Print the consent evidence of the lead of EMAIL: for each purpose the state now, then
    every event — time, event, exact words, SHA-256, version, method, resource and page, and
    the member of staff who acted."""
    from flask import current_app

    from capture.catalog import get_settings
    from capture.consent.proof import proof as evidence
    from capture.consent.proof import proof_lines
    from capture.db.store import get_store
    from capture.leads.stages import lead_by_email
    from capture.staff import accounts

    try:
        address = accounts.normalize_email(email)
    except accounts.AuthError as e:
        raise click.ClickException(str(e)) from None
    store = get_store()
    lead = lead_by_email(store, address)
    if lead is None:
        raise click.ClickException(f"There is no lead with the address {address}.")
    purposes = evidence(store, lead.id, double_opt_in=current_app.config["DOUBLE_OPT_IN"],
                        labels=get_settings().purpose_labels)
    for line in proof_lines(lead, purposes):
        click.echo(line)


@consent.command()
def refresh() -> None:
    """Recompute which leads' marketing consent is current (what `--marketing yes` selects)
    under today's LEADGATE_DOUBLE_OPT_IN: run it after turning double opt-in on or off, since
    each lead's value is otherwise written with its next consent event."""
    from flask import current_app

    from capture.consent.ledger import refresh_marketing_choice
    from capture.db.store import get_store

    double_opt_in = bool(current_app.config["DOUBLE_OPT_IN"])
    changed = refresh_marketing_choice(get_store(), double_opt_in)
    rule = "confirmed only (double opt-in on)" if double_opt_in else "given or confirmed (double opt-in off)"
    click.echo(f"Marketing consent current = {rule}: {changed} lead{'s' if changed != 1 else ''} changed.")
