"""The sales workspace: sign-in, the list of leads, each lead's page and its stage moves.

Views parse the request, call the store and render; who may see what is in capture.staff.roles,
which leads a filter selects in capture.leads.filters, which stage moves are allowed in
capture.leads.stages. Every page here answers ``no-store`` and a Content-Security-Policy
without scripts and without inline styles (capture.web.headers; the look is one stylesheet,
``static/workspace.css``): the pages show what visitors typed, and Jinja's escaping is the
first guard, not the only one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from capture.catalog import get_catalog
from capture.consent import ledger
from capture.consent.proof import proof, told
from capture.db.models import REASON_MAX, Download, Lead, Submission, utcnow
from capture.db.store import get_store
from capture.errors import Problem
from capture.leads.filters import ARGS, LeadFilter
from capture.leads.queries import (
    DEFAULT_DIRECTION,
    LEAD_SORTS,
    TimelineEntry,
    count_leads,
    get_lead,
    lead_consent_texts,
    lead_timeline,
    list_leads,
    read_order,
)
from capture.leads.stages import (
    CHANNELS,
    LABELS,
    MEANINGS,
    MOVES,
    STAGES,
    Actor,
    Move,
    MoveRefused,
    move_stage,
    parse_value,
    stage_history,
)
from capture.scoring.apply import get_scoring
from capture.scoring.rules import Rules
from capture.scoring.score import Reason, gap_to_mql, reasons_from_json
from capture.spam import folder
from capture.staff import accounts, auth, roles, session_pages

PAGE_SIZE = 50
SORT_LABELS = {"score": "Score", "last_seen": "Last seen", "first_seen": "First seen", "email": "Email",
               "company": "Company"}
DATE_SORTS = frozenset({"last_seen", "first_seen"})
NUMBER_SORTS = frozenset({"score"})
#: Filters kept under "More filters" (opened when one is set, or wrong).
MORE_FILTERS = frozenset({"from", "to", "resource", "type", "utm_source", "utm_medium", "utm_campaign",
                          "marketing", "fit_min", "fit_max", "engagement_min", "engagement_max",
                          "mql_from", "mql_to"})
#: The fields of the "Move to…" form, as posted.
MOVE_FIELDS = ("stage", "reason", "disqualified_reason", "channel", "value", "currency")

# The stylesheet is served to anyone: the sign-in page needs it before anyone is signed in.
bp = Blueprint(auth.WORKSPACE_BLUEPRINT, __name__, url_prefix="/workspace",
               static_folder="static", static_url_path="/static")


class BadCursor(ValueError):
    """A page link that was cut, edited, or made for another sort order."""


def encode_cursor(sort: str, direction: str, key: tuple[Any, int], before: bool) -> str:
    """An opaque page link: where the page starts (or ends), for one sort order."""
    value = key[0].isoformat() if isinstance(key[0], datetime) else key[0]
    raw = json.dumps([sort, direction, "b" if before else "a", value, key[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(text: str, sort: str, direction: str) -> tuple[bool, tuple[Any, int]]:
    """(before?, key) from a page link made by encode_cursor for the same order."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        c_sort, c_direction, side, value, lead_id = json.loads(raw)
        if (c_sort, c_direction) != (sort, direction) or side not in ("a", "b"):
            raise BadCursor(text)
        if not isinstance(lead_id, int) or not isinstance(value, int if sort in NUMBER_SORTS else str) \
                or isinstance(value, bool):
            raise BadCursor(text)
        if sort in DATE_SORTS:
            value = datetime.fromisoformat(value).astimezone(UTC)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as e:
        raise BadCursor(text) from e
    return side == "b", (value, lead_id)


def order_label(sort: str, direction: str) -> str:
    """The order in words, e.g. "last seen, newest first", for screen readers."""
    if sort in DATE_SORTS:
        return f"{SORT_LABELS[sort].lower()}, {'newest' if direction == 'desc' else 'oldest'} first"
    if sort in NUMBER_SORTS:
        return f"{SORT_LABELS[sort].lower()}, {'highest' if direction == 'desc' else 'lowest'} first"
    return f"{SORT_LABELS[sort].lower()}, {'Z to A' if direction == 'desc' else 'A to Z'}"


def filter_args(args: Mapping[str, str]) -> dict[str, str]:
    """The filter parameters that were given, to carry into links and the CSV download."""
    return {name: args[name] for name in ARGS if args.get(name, "").strip()}


def leads_url(params: Mapping[str, str], **changes: str | None) -> str:
    query = {k: v for k, v in {**params, **changes}.items() if v}
    return url_for(".leads") + ("?" + urlencode(query) if query else "")


def utc(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@bp.route("/login", methods=["GET", "POST"])
@auth.limit_failed_sign_ins
def login() -> Any:
    next_url = auth.safe_next(request.values.get("next"))
    if request.method in ("GET", "HEAD"):  # HEAD is a GET without the body, not a sign-in
        if auth.current_user() is not None:
            return redirect(next_url or url_for(".leads"))
        return render_template("workspace/login.html", email="", error=None, next_url=next_url)
    email = request.form.get("email", "")
    try:
        user = accounts.authenticate(get_store(), email, request.form.get("password", ""))
    except accounts.AuthError as e:
        return render_template("workspace/login.html", email=email, error=str(e), next_url=next_url), 422
    auth.sign_in(user)
    return redirect(next_url or url_for(".leads"), 303)


@bp.post("/logout")
@auth.login_required
def logout() -> Response:
    auth.sign_out()
    return redirect(url_for(".login"), 303)


@bp.get("/")
@auth.login_required
@roles.needs(roles.READ)
def leads() -> Any:
    catalog = get_catalog()
    lead_filter, errors = LeadFilter.from_args(request.args, *catalog.choices())
    sort, direction, order_errors = read_order(request.args)
    errors.update(order_errors)
    before, key = False, None
    if request.args.get("cursor"):
        try:
            before, key = decode_cursor(request.args["cursor"], sort, direction)
        except BadCursor:
            errors["cursor"] = [
                "This page link is not valid for this list any more: start from the first page."]
    params = filter_args(request.args)
    page, total = None, None
    if not errors:
        page = list_leads(get_store(), lead_filter, sort, direction, limit=PAGE_SIZE, catalog=catalog,
                                      after=None if before else key, before=key if before else None)
        total = count_leads(get_store(), lead_filter, catalog)
    order = {"sort": sort, "dir": direction}
    links = {}
    if page is not None and page.has_next:
        links["next"] = leads_url(params, **order,
                                  cursor=encode_cursor(sort, direction, page.last_key, False))
    if page is not None and page.has_previous:
        links["previous"] = leads_url(params, **order,
                                      cursor=encode_cursor(sort, direction, page.first_key, True))
    sort_links = {
        name: leads_url(params, sort=name, dir=(
            ("asc" if direction == "desc" else "desc") if name == sort else DEFAULT_DIRECTION[name]))
        for name in LEAD_SORTS
    }
    csv_query = urlencode({**params, **order})
    body = render_template(
        "workspace/leads.html", page=page, total=total, errors=errors, args=request.args, catalog=catalog,
        sort=sort, direction=direction, order_label=order_label(sort, direction),
        sort_links=sort_links, sort_labels=SORT_LABELS, links=links,
        csv_url=url_for(".leads") + "leads.csv" + ("?" + csv_query if csv_query else ""),
        clear_url=leads_url({}, **order), filtered=bool(params),
        more_open=bool(set(params) & MORE_FILTERS or set(errors) & MORE_FILTERS),
        rules=get_scoring().rules)
    return body, 422 if errors else 200


@bp.get("/leads/<int:lead_id>")
@auth.login_required
@roles.needs(roles.READ)
def lead(lead_id: int) -> Any:
    return lead_page(lead_id)


@bp.post("/leads/<int:lead_id>/stage")
@auth.login_required
@roles.needs(roles.MOVE)
def move(lead_id: int) -> Any:
    """The "Move to…" form: a refused move comes back beside its field (422), a move done
    goes back to the lead with a notice (303)."""
    form = {name: request.form.get(name, "")[:REASON_MAX + 1] for name in MOVE_FIELDS}
    try:
        asked = move_asked(form)
        move_stage(get_store(), lead_id, asked, Actor("user", auth.current_user().email),
                   threshold=get_scoring().threshold, disqualify_reasons=disqualification_reasons(),
                   currency=default_currency())
    except MoveRefused as e:
        return lead_page(lead_id, form=form, errors={e.field: [str(e)]}, status=422)
    except LookupError:
        raise Problem(404, "There is no lead with this number; it may have been erased.",
                      title="Lead not found") from None
    flash(f"Moved to {LABELS[asked.to]}.")
    return redirect(url_for(".lead", lead_id=lead_id), 303)


@bp.post("/leads/<int:lead_id>/consent/withdraw")
@auth.login_required
@roles.needs(roles.MOVE)
def withdraw_marketing(lead_id: int) -> Any:
    """Staff record the person's withdrawal of marketing consent, or of a further purpose of the
    settings (``purpose``), asked by phone, by email…: a ledger event with method ``staff``
    naming the account; nothing when none stands."""
    if get_lead(get_store(), lead_id) is None:
        raise Problem(404, "There is no lead with this number; it may have been erased.",
                      title="Lead not found")
    purpose = request.form.get("purpose") or ledger.MARKETING
    labels = get_catalog().settings.purpose_labels
    if purpose != ledger.MARKETING and purpose not in labels:
        raise Problem(422, "Only marketing consent and the further purposes of the settings can be withdrawn.")
    withdrawn = ledger.withdraw(get_store(), lead_id, purpose, ledger.STAFF, at=utcnow(),
                                user_agent=request.user_agent.string, actor=auth.current_user().email)
    what = "marketing consent" if purpose == ledger.MARKETING else f"consent to {labels[purpose]}"
    flash(f"{what[0].upper()}{what[1:]} withdrawn." if withdrawn else f"There was no {what} to withdraw.")
    return redirect(url_for(".lead", lead_id=lead_id, _anchor="consent"), 303)


def move_asked(form: Mapping[str, str]) -> Move:
    """The move a posted form asks for, from the fields of the stage chosen only: the form
    shows every field where the browser cannot hide the others."""
    to = form["stage"]
    if not to:
        raise MoveRefused("Choose the stage to move this lead to.")
    reason = form["disqualified_reason"] if to == "disqualified" else form["reason"]
    customer = to == "customer"
    return Move(to, reason=reason, channel=form["channel"] if to == "prospect" else "",
                value=parse_value(form["value"]) if customer else None,
                currency=form["currency"] if customer and form["value"].strip() else "")


def disqualification_reasons() -> tuple[str, ...]:
    """The reasons a lead may be disqualified for, from leadgate.yml."""
    return get_catalog().settings.disqualification_reasons


def default_currency() -> str:
    """The currency of a deal value typed without one, from leadgate.yml."""
    return get_catalog().settings.currency


def lead_page(lead_id: int, *, form: Mapping[str, str] | None = None,
              errors: Mapping[str, list[str]] | None = None, status: int = 200) -> Any:
    """A lead's page: who, the score and why, the way to MQL, the move form, the timeline."""
    store = get_store()
    person = get_lead(store, lead_id)
    if person is None:
        raise Problem(404, "There is no lead with this number; it may have been erased.",
                      title="Lead not found")
    timeline = lead_timeline(store, lead_id)
    submissions = {e.item.id: e.item for e in timeline if isinstance(e.item, Submission)}
    # A stage change comes after the post that caused it, both stored at the same moment
    # (sorted() keeps that order for equal times).
    changes = [TimelineEntry(change.created_at, "stage-change", change)
               for change in stage_history(store, lead_id)]
    events = sorted([*timeline, *changes], key=lambda entry: entry.at)
    rules = get_scoring().rules
    fit_reasons, engagement_reasons = reasons_from_json(person.score_reasons)
    labels = get_catalog().settings.purpose_labels
    body = render_template(
        "workspace/lead.html", lead=person, timeline=events, catalog=get_catalog(),
        first=submissions.get(person.first_submission_id),
        latest=submissions.get(person.last_submission_id),
        consent=proof(store, lead_id, double_opt_in=current_app.config["DOUBLE_OPT_IN"],
                      labels=labels),
        methods=ledger.METHODS, told=partial(told, labels=labels),
        withdrawable=(ledger.MARKETING, *labels), consent_texts=lead_consent_texts(store, lead_id),
        downloads=sum(isinstance(e.item, Download) for e in timeline),
        rules=rules, scoring_on=rules.mql_threshold <= 100,
        fit_reasons=fit_reasons, engagement_reasons=engagement_reasons,
        gap=gap_to_mql(person.fit, person.engagement, person.score,
                       [r.rule for r in fit_reasons + engagement_reasons], rules),
        may_move=roles.may(auth.current_user(), roles.MOVE), moves=MOVES[person.stage],
        reasons=disqualification_reasons(), channels=CHANNELS, currency=default_currency(),
        form=form or {}, errors=errors or {}, reason_max=REASON_MAX,
        released_reasons=lambda post: folder.released_reasons(post.spam_score, post.spam_reasons))
    return body, status


def signed(points: float) -> str:
    """Points as a reason shows them: +25, −15, +7.5."""
    return str(Reason("", points)).strip()


def score_parts(lead: Lead | Any, rules: Rules) -> tuple[float, float]:
    """How many of the score's points come from fit and from engagement: the bar's two parts."""
    return lead.fit * rules.fit_weight / 100, lead.engagement * rules.engagement_weight / 100


def page_helpers() -> dict[str, Any]:
    """What the workspace layout shows on every staff page, the exports' refusals included."""
    if not request.path.startswith(auth.WORKSPACE):
        return {}
    return {"signed_in": auth.current_user(), "utc": utc, "stages": STAGES, "stage_labels": LABELS,
            "stage_meanings": MEANINGS, "signed": signed, "score_parts": score_parts}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(session_pages.bp)
    app.context_processor(page_helpers)
