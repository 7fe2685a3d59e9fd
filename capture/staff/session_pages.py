"""``/workspace/sessions``: a member of staff sees where they are signed in and ends the others.

Each standing session is listed with its browser and network (the /24 or /48 kept at sign-in),
when it started and when it was last used, this one marked. Ending a session (one, or every
other one: "sign out everywhere else") ends its row: that browser's next page asks it to sign
in. The rules are in capture.staff.sessions.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from capture.db.store import get_store
from capture.errors import Problem
from capture.staff import auth, sessions

bp = Blueprint("sessions", __name__, url_prefix="/workspace/sessions")


@bp.get("/")
@auth.login_required
def list_sessions() -> Any:
    user, this = auth.current_user(), auth.current_session()
    # This session first, then the others, the most recently used first.
    rows = sorted(sessions.standing(get_store(), user.id, auth.lifetime()), key=lambda row: row.id != this.id)
    lifetime = auth.lifetime()
    return render_template("workspace/sessions.html", title="Where you are signed in", this=this,
                           rows=rows, describe=sessions.describe_browser,
                           lasting=duration(lifetime.absolute), idle=duration(lifetime.idle))


def duration(seconds: int) -> str:
    """Seconds as the page says them: "12 hours", "1 hour", "30 minutes", "45 seconds"."""
    for size, unit in ((3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


@bp.post("/end")
@auth.login_required
def end_one() -> Response:
    """End one of this account's other sessions (this one ends with "Sign out")."""
    sid = request.form.get("session", "")
    if sid == auth.current_session().id:
        raise Problem(400, "This is the session you are using: to end it, sign out.",
                      link=(url_for(".list_sessions"), "Back to your sessions"))
    if not sessions.end(get_store(), sid, auth.current_user().id):
        raise Problem(404, "This session has already ended, or is not yours.", title="Session not found",
                      link=(url_for(".list_sessions"), "Back to your sessions"))
    flash("Session ended: that browser has to sign in again.")
    return redirect(url_for(".list_sessions"), 303)


@bp.post("/end-others")
@auth.login_required
def end_others() -> Response:
    """Sign out everywhere else."""
    ended = sessions.end_others(get_store(), auth.current_user().id, auth.current_session().id)
    flash(f"Signed out everywhere else ({ended} session{'' if ended == 1 else 's'} ended)."
          if ended else "You were not signed in anywhere else.")
    return redirect(url_for(".list_sessions"), 303)
