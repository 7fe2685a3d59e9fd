"""The links in an email that act for the person: confirm the address, unsubscribe.

Each token is the lead's id signed with the app's secret key under a salt of its own, so a
download token (salt ``download-link``) or a form token is never one of these. A confirmation
link expires after ``CONFIRM_MAX_AGE``; an unsubscribe link never does (a person must be able to
leave with the link in any email they ever received, RFC 8058 and GDPR Art. 7(3)).
Following either link (GET) only shows a page with one button: link scanners and previews never
change anything; the POST does it.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer

#: RFC 8058's one-click unsubscribe: the form field and value a mail program POSTs to the
#: List-Unsubscribe URL, and the List-Unsubscribe-Post header that announces it.
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
ONE_CLICK = f"{ONE_CLICK_FIELD}={ONE_CLICK_VALUE}"

CONFIRM_SALT = "confirm-link"
UNSUBSCRIBE_SALT = "unsubscribe-link"


class TokenInvalid(Exception):
    """Not signed by us for this purpose, altered, or not a token at all."""


class TokenExpired(Exception):
    """Authentic, but older than it may be."""


@lru_cache(maxsize=4)
def _confirm(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=CONFIRM_SALT)


@lru_cache(maxsize=4)
def _unsubscribe(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=UNSUBSCRIBE_SALT)


def _lead_id(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TokenInvalid("token payload has the wrong shape")
    return value


def sign_confirm(secret_key: str, lead_id: int) -> str:
    return _confirm(secret_key).dumps(lead_id)


def read_confirm(secret_key: str, token: str, max_age: int) -> int:
    """The lead a confirmation token names; TokenExpired or TokenInvalid."""
    try:
        return _lead_id(_confirm(secret_key).loads(token, max_age=max_age))
    except SignatureExpired:
        raise TokenExpired() from None
    except BadData:
        raise TokenInvalid() from None


def sign_unsubscribe(secret_key: str, lead_id: int) -> str:
    return _unsubscribe(secret_key).dumps(lead_id)


def read_unsubscribe(secret_key: str, token: str) -> int:
    """The lead an unsubscribe token names; TokenInvalid."""
    try:
        return _lead_id(_unsubscribe(secret_key).loads(token))
    except BadData:
        raise TokenInvalid() from None


def masked(address: str) -> str:
    """An address as a page may show it to whoever holds the page: ``a…@example.com``."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}…@{domain}" if local else "your address"


EMAILED_SALT = "thanks-emailed"


@lru_cache(maxsize=4)
def _emailed(secret_key: str) -> TimestampSigner:
    return TimestampSigner(secret_key, salt=EMAILED_SALT)


def sign_emailed(secret_key: str, resource_id: str, to_address: str) -> str:
    """The thank-you page's token when the link goes by email: the resource and the masked
    address, never a download token (whoever posts must read the mailbox to download).
    Signed text, as a download token is: a form post makes one, and the JSON serializer
    costs several times more."""
    shown = base64.urlsafe_b64encode(masked(to_address).encode()).decode().rstrip("=")
    return _emailed(secret_key).sign(f"{resource_id}.{shown}").decode()


def read_emailed(secret_key: str, token: str, max_age: int) -> tuple[str, str] | None:
    """(resource id, masked address) from a thank-you token of an emailed link; None when the
    token is not one (it may be a download token); TokenExpired when too old."""
    try:
        value = _emailed(secret_key).unsign(token, max_age=max_age).decode()
        resource_id, shown = value.split(".")
        return resource_id, base64.urlsafe_b64decode(shown + "=" * (-len(shown) % 4)).decode()
    except SignatureExpired:
        raise TokenExpired() from None
    except (BadData, ValueError):  # not ours, or not two parts of text
        return None
