"""What a form post shows of a bot: the signals of capture.spam.verdict, read from the request.

Each reason says what was seen, in words staff read in the spam folder ("Sent 0.4 s after the
form was shown (at least 3 s expected)."); the weights and the threshold are the verdict's.
Nothing here refuses a post: a held post is answered as any other, so a bot learns nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from flask import current_app, request

from capture.fields import BY_NAME
from capture.leads.submission import NewSubmission
from capture.scoring.domains import DISPOSABLE, domain_of, kind_of_domain
from capture.spam.limits import AddressUse, get_limits
from capture.spam.token import INVALID, MISSING, STALE, TOO_FAST, TokenCheck, get_tokens
from capture.spam.verdict import Reason, judge, reason

HONEYPOT = "website"
#: A share of the address's posts used beyond which the post is a little suspect.
RATE_SHARE = 0.5
#: Characters of a seen value quoted in a reason.
QUOTE = 80


def quoted(value: str) -> str:
    value = " ".join(value.split())
    return f"“{value[:QUOTE]}…”" if len(value) > QUOTE else f"“{value}”"


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``5 min``, ``5 h 2 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def token_reasons(token: TokenCheck) -> list[Reason]:
    config = current_app.config
    if token.state == MISSING:
        return [reason("token_missing", "No form token was sent: the page script did not run "
                                        "(JavaScript off, or not a browser).")]
    if token.state == INVALID:
        return [reason("token_invalid", "The form token was not one this service signed "
                                        "(forged, altered or cut).")]
    if token.state == STALE:
        shown = f" {duration(token.age)} ago" if token.age is not None else ""
        return [reason("token_stale", f"The form was shown{shown}; its token lasts "
                                      f"{duration(config['FORM_TOKEN_MAX_AGE'])}.")]
    if token.state == TOO_FAST:
        return [reason("too_fast", f"Sent {duration(max(token.age or 0, 0))} after the form was shown "
                                   f"(at least {config['FORM_MIN_SECONDS']:g} s expected).")]
    return []


def replayed() -> Reason:
    return reason("token_replayed", "The form token had already been used for a stored post.")


def header_reasons(is_site_page: Callable[[str], bool]) -> list[Reason]:
    """No Origin nor Referer (browsers send one with a form), or a Referer from elsewhere.
    A post with an Origin got here only when the Origin is allowed (capture.web.views)."""
    if request.headers.get("Origin"):
        return []
    referer = request.headers.get("Referer", "")
    if not referer:
        return [reason("no_origin", "The post came with neither an Origin nor a Referer header.")]
    if not is_site_page(referer):
        return [reason("foreign_referer", f"No Origin, and the Referer {quoted(referer)} "
                                          "is not a page of the site.")]
    return []


def rate_reasons(address: AddressUse) -> list[Reason]:
    busiest = address.busiest()
    if busiest is None or busiest.over or busiest.count <= busiest.limit.amount * RATE_SHARE:
        return []
    limit = busiest.limit
    per = f"{limit.multiples} {limit.GRANULARITY.name}s" if limit.multiples > 1 else limit.GRANULARITY.name
    return [reason("rate", f"Post {busiest.count} of the {limit.amount} allowed per {per} "
                           "from this network address.")]


def post_reasons(token: TokenCheck, address: AddressUse, email: str,
                 is_site_page: Callable[[str], bool]) -> list[Reason]:
    """Every signal a valid post shows, but a replayed token (known once it is spent)."""
    reasons = []
    trap = request.form.get(HONEYPOT, "")
    if trap.strip():
        reasons.append(reason("honeypot", f"The hidden “{BY_NAME[HONEYPOT].label}” field, which people "
                                          f"never see, held {quoted(trap)}."))
    reasons += token_reasons(token)
    reasons += header_reasons(is_site_page)
    reasons += rate_reasons(address)
    if current_app.config["DISPOSABLE_EMAILS"] == "suspect" and kind_of_domain(domain_of(email)) == DISPOSABLE:
        reasons.append(reason("disposable", f"{domain_of(email)} gives out throw-away addresses."))
    return reasons


def judged(data: NewSubmission, is_site_page: Callable[[str], bool]) -> NewSubmission:
    """A valid post with its verdict, about to be stored: counted for its address, network and
    email address, its token spent (capture.spam.limits; TooManyPosts over a limit)."""
    token = get_tokens().check(request.form.get("form_token"))
    address, replay = get_limits().count(data.email, token.nonce if token.usable else None)
    reasons = post_reasons(token, address, data.email, is_site_page)
    if replay:
        reasons.append(replayed())
    return replace(data, spam=judge(reasons))
