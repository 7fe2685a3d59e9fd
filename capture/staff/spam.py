"""The spam folder's page, ``/workspace/spam``: the posts held as spam with the reasons of each,
how many were held each day, and the buttons that release a post as a lead or delete it.

Every signed-in role may look (marketing watches what the form attracts); releasing and
deleting change what becomes a lead, which is sales' call (the SPAM permission of
capture.staff.roles, as moving a lead between stages is). The rules are in capture.spam.folder.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for

from capture.catalog import get_catalog
from capture.db.store import get_store
from capture.mail.outbox import get_mail_settings
from capture.scoring.apply import get_scoring
from capture.spam import folder
from capture.spam.verdict import THRESHOLD
from capture.staff import auth, roles

bp = Blueprint("spam", __name__, url_prefix="/workspace")


def page_key(text: str | None) -> tuple[datetime, int] | None:
    """The (time, id) a page link starts after: ``<microseconds since 1970>-<id>``; None
    for the first page or a link that was cut or edited."""
    stamp, _, post_id = (text or "").partition("-")
    if not (stamp.isdigit() and post_id.isdigit()):
        return None
    try:
        return datetime.fromtimestamp(int(stamp) / 1_000_000, UTC), int(post_id)
    except (OverflowError, OSError, ValueError):
        return None


def page_link(key: tuple[datetime, int]) -> str:
    at, post_id = key
    stamp = int(at.timestamp()) * 1_000_000 + at.microsecond
    return url_for(".folder", after=f"{stamp}-{post_id}")


@bp.get("/spam", endpoint="folder")
@auth.login_required
@roles.needs(roles.READ)
def folder_page() -> Any:
    store = get_store()
    days = current_app.config["SPAM_KEEP_DAYS"]
    after = page_key(request.args.get("after"))
    items, next_key = folder.list_held(store, after=after)
    counts = folder.counts_per_day(store, days)
    return render_template(
        "workspace/spam.html", title="Spam folder", section="spam", items=items,
        waiting=folder.count_waiting(store), counts=counts, keep_days=days,
        held_in_range=sum(c.held for c in counts), released_in_range=sum(c.released for c in counts),
        top=max([c.held for c in counts] + [1]), next_url=page_link(next_key) if next_key else None,
        first_url=url_for(".folder") if after else None, catalog=get_catalog(),
        may_act=roles.may(auth.current_user(), roles.SPAM), threshold=THRESHOLD,
        words=folder.signal_words, meaning=folder.signal_meaning)


@bp.post("/spam/<int:post_id>/release")
@auth.login_required
@roles.needs(roles.SPAM)
def release(post_id: int) -> Any:
    """Make a held post a lead, as if it had never been held: scored, consent recorded."""
    staff = auth.current_user()
    try:
        done = folder.release(get_store(), post_id, staff.email, get_scoring(),
                              mail=get_mail_settings(current_app))
    except folder.NotHeld:
        flash("That post is no longer in the spam folder: it was deleted or purged.")
    except folder.AlreadyReleased as e:
        flash(f"{e.post.email} was already released as a lead by {e.post.released_by or 'someone'}; "
              "nothing was added.")
    else:
        flash(f"{done.email} was released: it is a lead now.")
    return redirect(url_for(".folder"), 303)


@bp.post("/spam/<int:post_id>/delete")
@auth.login_required
@roles.needs(roles.SPAM)
def delete(post_id: int) -> Any:
    try:
        gone = folder.delete_held(get_store(), post_id)
    except folder.NotHeld:
        flash("That post is no longer in the spam folder: it was deleted or purged.")
    except folder.AlreadyReleased as e:
        flash(f"{e.post.email} was released as a lead by {e.post.released_by or 'someone'}; "
              "it is no longer in the spam folder.")
    else:
        flash(f"The post from {gone.email} was deleted.")
    return redirect(url_for(".folder"), 303)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
