"""`leadgate spam list|release|purge`: the spam folder from a terminal, as the workspace's
``/workspace/spam`` shows it (rules in capture.spam.folder)."""

from __future__ import annotations

import json
import sys

import click

from capture.cli.command import group, option

#: Posts read from the folder at a time while listing it.
BATCH = 500


@group()
def spam() -> None:
    """Posts held as spam: kept apart from the leads until released, deleted or purged."""


@spam.command("list")
@option("--days", type=click.IntRange(min=1), default=None, metavar="N",
        help="Only posts held in the last N days (default: every post waiting).")
@option("--json", "as_json", is_flag=True, help="One JSON object a line, each reason with its detail.")
def spam_list(days: int | None, as_json: bool) -> None:
    """List the posts waiting in the spam folder, newest first: number, time, email, resource,
    spam score and the signals that held it."""
    from datetime import timedelta

    from capture.db.models import utcnow
    from capture.db.store import get_store
    from capture.spam import folder

    since = utcnow() - timedelta(days=days) if days else None
    items: list[folder.HeldItem] = []
    after = None
    while True:
        page, after = folder.list_held(get_store(), limit=BATCH, after=after, since=since)
        items.extend(page)
        if after is None:
            break
    if as_json:
        for item in items:
            click.echo(json.dumps({
                "id": item.id, "uid": str(item.uid), "created_at": item.created_at.isoformat(),
                "email": item.email, "resource_id": item.resource_id, "score": item.score,
                "reasons": [{"signal": r.signal, "weight": r.weight, "detail": r.detail} for r in item.reasons],
            }, ensure_ascii=False))
        return
    if not items:
        within = f" from the last {days} day{'s' if days != 1 else ''}" if days else ""
        click.echo(f"No posts{within} are waiting in the spam folder.")
        return
    from capture.analytics.formats import write_table

    write_table(sys.stdout, ["id", "time (UTC)", "email", "resource", "score", "reasons"], [
        [str(item.id), item.created_at.strftime("%Y-%m-%d %H:%M"), item.email, item.resource_id,
         f"{item.score:.1f}", ", ".join(r.signal for r in item.reasons)] for item in items],
        [True, False, False, False, True, False])
    click.echo(f"{len(items)} post{'s' if len(items) != 1 else ''} waiting. Release one a person "
               "sent with `leadgate spam release ID --by YOUR_EMAIL`.")


@spam.command("release")
@click.argument("ids", nargs=-1, required=True, metavar="ID…")
@option("--by", "by", required=True, metavar="STAFF_EMAIL",
        help="The staff account releasing them (a sales or admin account).")
def spam_release(ids: tuple[str, ...], by: str) -> None:
    """Release the posts numbered ID… (the numbers `leadgate spam list` shows, or their uids):
    each becomes a lead exactly as a clean post does (scored, its consent recorded), once;
    releasing one again adds nothing."""
    from flask import current_app

    from capture.db.store import get_store
    from capture.mail.outbox import get_mail_settings
    from capture.privacy.suppression import KeyUnknown
    from capture.scoring.apply import get_scoring
    from capture.spam import folder
    from capture.staff import accounts, roles

    store = get_store()
    try:
        staff = accounts.active_account(store, by)
    except accounts.AuthError as e:
        raise click.ClickException(f"--by: {e}") from None
    if not roles.may(staff, roles.SPAM):
        raise click.ClickException(f"--by: {staff.email} is a {staff.role} account: only sales and admin "
                                   "accounts release posts from the spam folder.")
    missing = []
    for key in ids:
        try:
            folder.find(store, key)
        except folder.NotHeld:
            missing.append(key)
    if missing:
        raise click.ClickException(
            f"no post {', '.join(missing)} in the spam folder (a wrong number, or deleted or purged): "
            "see `leadgate spam list`; nothing was released.")
    for key in ids:
        try:
            done = folder.release(store, key, staff.email, get_scoring(),
                                  mail=get_mail_settings(current_app))
        except folder.AlreadyReleased as e:
            click.echo(f"{e.post.id} {e.post.email}: already released by {e.post.released_by or 'someone'}; "
                       "nothing added")
        except folder.Suppressed:
            click.echo(f"{key}: sent by a person erased since; the post was deleted, nothing added")
        except folder.NotHeld:
            click.echo(f"{key}: deleted or purged meanwhile; nothing added")
        except KeyUnknown as e:
            # Every release checks the list, the first one included: nothing was released before.
            raise click.ClickException(f"{e} (to tell whether a post's sender was erased since); "
                                       "nothing was released.") from None
        else:
            click.echo(f"{done.post_id} {done.email}: released as lead {done.lead_id} (by {staff.email})")


@spam.command("purge")
@option("--days", type=click.IntRange(min=1), default=None, metavar="N",
        help="Remove posts held more than N days ago (default: SPAM_KEEP_DAYS).")
@option("--dry-run", is_flag=True, help="Only say how many posts would be removed.")
def spam_purge(days: int | None, dry_run: bool) -> None:
    """Remove the posts held longer than the spam folder keeps them (SPAM_KEEP_DAYS, 30 by
    default), released ones included (their leads stay). The service does this by itself
    about once a day; safe to run at any time, from several places at once."""
    from flask import current_app

    from capture.db.store import get_store
    from capture.spam import folder

    days = days or current_app.config["SPAM_KEEP_DAYS"]
    count = folder.purge(get_store(), days, dry_run=dry_run)
    posts = f"{count} post{'s' if count != 1 else ''}"
    ago = f"held more than {days} day{'s' if days != 1 else ''} ago"
    if dry_run:
        click.echo(f"Would remove {posts} {ago} (--dry-run: nothing removed).")
    else:
        click.echo(f"Removed {posts} {ago} from the spam folder.")
