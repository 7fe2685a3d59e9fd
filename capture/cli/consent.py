"""`leadgate consent proof EMAIL`: the evidence of what a person agreed to, for them or an authority."""

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
    purposes = evidence(store, lead.id, double_opt_in=current_app.config["DOUBLE_OPT_IN"])
    for line in proof_lines(lead, purposes):
        click.echo(line)
