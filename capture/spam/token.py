"""The form token: proof that a form was shown by the service some time before it was sent.

The landing pages are static, so the page script asks ``GET /form-token`` for a token when it
shows the form, and the post carries it back in the hidden ``form_token`` field. A token is
signed with the secret key (its own salt, so no other signed value of the service passes for
one), holds a random nonce, and says when it was issued: a post that brings it sooner than
``FORM_MIN_SECONDS`` after is faster than a person fills a form in; one older than
``FORM_TOKEN_MAX_AGE`` comes from a page left open for hours, or a token kept by a script.

itsdangerous signs whole seconds and checks only a maximum age: the issue time is also in the
signed payload, in milliseconds, so that "0.4 s after the form was shown" is measured, not
rounded to a second either way. The nonce lets a token be used for one stored post only
(capture.spam.limits keeps the used ones).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "leadgate.form-token"
EXTENSION = "leadgate.form_tokens"

OK, MISSING, INVALID, STALE, TOO_FAST = "ok", "missing", "invalid", "stale", "too_fast"


@dataclass(frozen=True)
class TokenCheck:
    """What a posted form token showed."""

    state: str
    #: Seconds since the form was shown (ok, too fast, stale); None when unreadable.
    age: float | None = None
    #: The token's nonce, for its one use (ok and too fast).
    nonce: str | None = None

    @property
    def usable(self) -> bool:
        """Signed by the service and within its maximum age: its nonce can be spent."""
        return self.state in (OK, TOO_FAST)


class FormTokens:
    """Issues and checks one app's form tokens."""

    def __init__(self, secret_key: str, min_seconds: float, max_age: int):
        self.serializer = URLSafeTimedSerializer(secret_key, salt=SALT)
        self.min_seconds = min_seconds
        self.max_age = max_age

    def issue(self, shown_before: float = 0.0) -> str:
        """A new token; ``shown_before`` seconds are counted as already spent on the form."""
        issued_ms = int((time.time() - shown_before) * 1000)
        return self.serializer.dumps(f"{issued_ms}.{secrets.token_urlsafe(12)}")

    def check(self, token: str | None) -> TokenCheck:
        if not token:
            return TokenCheck(MISSING)
        try:
            payload = self.serializer.loads(token, max_age=self.max_age)
        except SignatureExpired as e:
            issued = e.date_signed.timestamp() if e.date_signed else None
            return TokenCheck(STALE, age=time.time() - issued if issued else None)
        except BadSignature:
            return TokenCheck(INVALID)
        issued_ms, _, nonce = str(payload).partition(".")
        if not issued_ms.isdigit() or not nonce:
            return TokenCheck(INVALID)  # signed by us, yet not a form token: never issued
        age = time.time() - int(issued_ms) / 1000
        return TokenCheck(TOO_FAST if age < self.min_seconds else OK, age=age, nonce=nonce)


def get_tokens() -> FormTokens:
    """The current app's form tokens, made on first use."""
    tokens = current_app.extensions.get(EXTENSION)
    if tokens is None:
        config = current_app.config
        tokens = current_app.extensions[EXTENSION] = FormTokens(
            config["SECRET_KEY"], config["FORM_MIN_SECONDS"], config["FORM_TOKEN_MAX_AGE"])
    return tokens
