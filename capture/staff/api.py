"""``POST /api/leads/<id>/stage``: scripts (a CRM sync, a chat bot) move a lead with an API token.

The body is JSON or form fields: ``stage`` and, as the move needs them, ``reason``, ``value``,
``currency`` and ``channel``. The move is checked by the one table of moves
(capture.leads.stages); a refusal is a 422 naming the rule, under the field it concerns. The
history names the token's owner. Sales and admin tokens move leads; marketing tokens get 403
(capture.staff.roles).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request

from capture.catalog import get_catalog
from capture.db.models import REASON_MAX
from capture.db.store import get_store
from capture.errors import Problem
from capture.leads import stages
from capture.leads.queries import get_lead
from capture.scoring.apply import get_scoring
from capture.staff import auth, roles

bp = Blueprint("api", __name__)

#: The fields a move may carry, and their longest accepted values.
MOVE_FIELDS = {"stage": 20, "reason": REASON_MAX, "value": 40, "currency": 10, "channel": 20}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def read_move_fields() -> Mapping[str, str]:
    """The move's fields from a JSON object or a form, as text; Problem for anything else."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise Problem(400, "The body is not a JSON object such as {\"stage\": \"sql\"}.")
        fields: dict[str, str] = {}
        errors: dict[str, list[str]] = {}
        for name in MOVE_FIELDS:
            value = body.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                errors[name] = [f"Give {name} as text."]
            else:
                fields[name] = str(value)
        if errors:
            raise Problem(422, errors=errors)
        return fields
    if request.mimetype in FORM_TYPES or not request.content_length:
        return {name: request.form[name] for name in MOVE_FIELDS if name in request.form}
    raise Problem(415, f"Send the move as JSON or as form fields, not {request.mimetype or 'this'}.",
                  title="Unsupported body")


def checked_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Every field within its limit and a stage given, or a 422 naming each field."""
    errors = {name: [f"Keep {name} to {limit} characters."]
              for name, limit in MOVE_FIELDS.items() if len(fields.get(name, "")) > limit}
    if not fields.get("stage", "").strip() and "stage" not in errors:
        errors["stage"] = [f"Give the stage to move to: one of {', '.join(stages.STAGES)}."]
    if errors:
        raise Problem(422, "The move was not made.", errors=errors)
    return {name: fields.get(name, "") for name in MOVE_FIELDS}


@bp.post("/api/leads/<int:lead_id>/stage")
@auth.api_token_required
@roles.needs(roles.MOVE)
def move_lead(lead_id: int) -> Response:
    """Move one lead; the answer holds the lead as it now is and the change recorded."""
    owner = g.user
    fields = checked_fields(read_move_fields())
    settings = get_catalog().settings
    store = get_store()
    try:
        move = stages.Move(fields["stage"].strip().lower(), reason=fields["reason"],
                           channel=fields["channel"], value=stages.parse_value(fields["value"]),
                           currency=fields["currency"])
        change = stages.move_stage(store, lead_id, move, stages.Actor("token", owner.email),
                                   threshold=get_scoring().threshold,
                                   disqualify_reasons=settings.disqualification_reasons,
                                   currency=settings.currency)
    except LookupError:
        raise Problem(404, f"There is no lead {lead_id}.") from None
    except stages.MoveRefused as e:
        raise Problem(422, str(e), title="Move refused", errors={e.field: [str(e)]}) from None
    lead = get_lead(store, lead_id)
    return jsonify(ok=True, lead=_lead(lead), change=_change(change))


def _lead(lead: Any) -> dict[str, Any]:
    return {"id": lead.id, "email": lead.email, "stage": lead.stage, "score": lead.score}


def _change(change: Any) -> dict[str, Any]:
    return {"from": change.from_stage, "to": change.to_stage, "by": change.actor,
            "reason": change.reason, "at": change.created_at.isoformat()}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
