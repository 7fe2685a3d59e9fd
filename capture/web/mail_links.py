"""The routes of an email's links: confirm an address (double opt-in) and unsubscribe.

GET shows a page with one button and changes nothing (mail scanners and link previews follow
every link); POST acts, through the consent ledger (capture.consent.ledger.confirm, withdraw),
and answers the same however often it is sent. RFC 8058's one-click unsubscribe is a POST of
``List-Unsubscribe=One-Click`` to the very URL of the ``List-Unsubscribe`` header, sent by the
mail program without a page, an Origin or a cookie: it is answered 200 with a line of text.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, make_response, render_template, request

from capture.consent import ledger
from capture.consent.state import CONFIRMED
from capture.db.models import utcnow
from capture.db.store import get_store
from capture.errors import Problem
from capture.leads.attribution import ip_prefix
from capture.mail.outbox import MARKETING_STATE
from capture.mail.links import (
    ONE_CLICK_FIELD,
    ONE_CLICK_VALUE,
    TokenExpired,
    TokenInvalid,
    read_confirm,
    read_unsubscribe,
)
from capture.shells import MESSAGE_PAGE, MESSAGE_REGION, in_site_shell, site_link
from capture.web.links import public_url
from capture.web.views import private

bp = Blueprint("mail_links", __name__)

#: The body of an RFC 8058 one-click unsubscribe.
NOT_VALID = ("This link is not valid. It may be incomplete: open it again from the email, "
             "or copy the whole address into your browser.")


def page(title: str, *message: str, action: str | None = None, button: str = "") -> Response:
    """One of these pages, inside the site's message page, never stored or referred."""
    content = render_template("mail_page_region.html", title=title, message=message, action=action,
                              button=button, link_url=site_link(), link_text="Browse the resources")
    return private(make_response(in_site_shell(MESSAGE_REGION, MESSAGE_PAGE, title, content)))


def confirm_lead(token: str) -> int:
    config = current_app.config
    try:
        return read_confirm(config["SECRET_KEY"], token, config["CONFIRM_MAX_AGE"])
    except TokenInvalid:
        raise Problem(404, NOT_VALID, title="Link not valid") from None
    except TokenExpired:
        raise Problem(410, "This confirmation link has expired. Request a resource again with the "
                           "marketing box ticked to get a new one.", title="Link expired") from None


def unsubscribe_lead(token: str) -> int:
    try:
        return read_unsubscribe(current_app.config["SECRET_KEY"], token)
    except TokenInvalid:
        raise Problem(404, NOT_VALID, title="Link not valid") from None


def who() -> dict[str, object]:
    """What the ledger keeps of the request that acted: when, the network, the browser."""
    return {"at": utcnow(), "ip_prefix": ip_prefix(request.remote_addr), "user_agent": request.user_agent.string}


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> Response:
    confirm_lead(token)
    return page("Confirm your subscription",
                "Please confirm that you want to receive our marketing emails at this address.",
                "You can unsubscribe at any time with the link at the foot of every email.",
                action=public_url("mail_links.confirm", token=token), button="Yes, subscribe me")


@bp.post("/confirm/<token>")
def confirm(token: str) -> Response:
    lead_id = confirm_lead(token)
    store = get_store()
    if not ledger.confirm(store, lead_id, method=ledger.CONFIRMATION_LINK, **who()) and not confirmed(lead_id):
        return page("Nothing to confirm",
                    "This address has no subscription waiting for confirmation: it was withdrawn, "
                    "or the details were erased. Tick the marketing box on a form to subscribe again.")
    return page("Subscription confirmed", "Thank you: your address is confirmed, and you will receive "
                "our marketing emails. You can unsubscribe at any time with the link in every email.")


def confirmed(lead_id: int) -> bool:
    """Whether the lead's marketing consent stands confirmed (a second click changes nothing)."""
    with get_store().read() as s:
        return s.execute(MARKETING_STATE, {"lead_id": lead_id}).scalar() == CONFIRMED


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> Response:
    unsubscribe_lead(token)
    return page("Unsubscribe", "Stop receiving our marketing emails at this address?",
                action=public_url("mail_links.unsubscribe", token=token), button="Unsubscribe")


@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> Response:
    lead_id = unsubscribe_lead(token)
    one_click = request.form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE
    method = ledger.ONE_CLICK if one_click else ledger.UNSUBSCRIBE_PAGE
    ledger.withdraw(get_store(), lead_id, ledger.MARKETING, method, **who())
    if one_click:
        return private(current_app.response_class("Unsubscribed.\n", mimetype="text/plain"))
    return page("You are unsubscribed", "You will receive no more marketing emails from us at this address.",
                "Changed your mind? Tick the marketing box the next time you request a resource.")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
