"""A person's rights from the lead's page: a copy of everything held about them as JSON
(``/workspace/leads/<id>/privacy.json``, an export of contact details: the EXPORT permission,
recorded in the export log), and erasure (admins only, confirmed by typing the address).

The rules are in capture.privacy (docs/privacy.md).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, flash, redirect, render_template, request, url_for

from capture.db.store import get_store
from capture.errors import Problem
from capture.fields import EMAIL_MAX
from capture.leads.merge import email_key
from capture.leads.queries import get_lead
from capture.privacy import access, erasure
from capture.spool import get_spool
from capture.staff import audit, auth, roles

bp = Blueprint("privacy", __name__, url_prefix="/workspace")


def _lead(lead_id: int) -> Any:
    person = get_lead(get_store(), lead_id)
    if person is None:
        raise Problem(404, "There is no lead with this number; it may have been erased.", title="Lead not found")
    return person


@bp.get("/leads/<int:lead_id>/privacy.json")
@auth.login_required
@roles.needs(roles.EXPORT)
def export(lead_id: int) -> Response:
    """Everything held about the lead's person, as a file to hand them (GDPR Art. 15 and 20)."""
    person = _lead(lead_id)
    store = get_store()
    document = access.person_data(store, person.email, get_spool().file)
    record = audit.start(store, "workspace", auth.current_user().email, access.audit_filters(lead_id))
    body = access.as_json(document or {})
    audit.finish(store, record, 1, True)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="lead-{lead_id}-personal-data.json"'})


@bp.get("/leads/<int:lead_id>/erase")
@auth.login_required
@roles.needs(roles.ERASE)
def confirm(lead_id: int) -> Any:
    return render_template("workspace/erase.html", title="Erase this person", section="leads",
                           lead=_lead(lead_id), typed="", error=None, email_max=EMAIL_MAX)


@bp.post("/leads/<int:lead_id>/erase")
@auth.login_required
@roles.needs(roles.ERASE)
def erase(lead_id: int) -> Any:
    """Erase once the admin typed the lead's address (any case): a slip of the mouse erases nobody."""
    person = _lead(lead_id)
    typed = request.form.get("email", "")[:EMAIL_MAX + 1]
    if email_key(typed.strip()) != person.email_key:
        error = ("Type the lead's email address exactly to erase this person." if typed.strip()
                 else "Type the lead's email address to confirm.")
        return render_template("workspace/erase.html", title="Erase this person", section="leads",
                               lead=person, typed=typed, error=error, email_max=EMAIL_MAX), 422
    done = erasure.erase(current_app._get_current_object(), person.email, channel="workspace",  # type: ignore[attr-defined]
                         actor=auth.current_user().email)
    flash(f"Lead {lead_id} was erased: {done.files}" if done.files else
          f"Lead {lead_id} was erased; their address is on the suppression list.")
    return redirect(url_for("workspace.leads"), 303)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
