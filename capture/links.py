"""Signed, expiring download links: the token names the request, its resource, and when.

Nobody can guess a link to a gated file or reuse one forever: the token is signed with the
app's secret key (itsdangerous, salt ``download``) and refused after ``DOWNLOAD_MAX_AGE``.
An expired token is still authentic, so it can say which resource to request again.

The token binds the submission's uid, which exists before any row does: a link works while
its submission waits in the spool (capture.spool), and the lead is found through it later.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

SALT = "download"


@dataclass(frozen=True)
class DownloadClaim:
    submission_uid: uuid.UUID
    resource_id: str


class LinkInvalid(Exception):
    """The token was not signed by us, was altered, or is not a token at all."""


class LinkExpired(Exception):
    """The token is authentic but older than the allowed age."""

    def __init__(self, claim: DownloadClaim):
        super().__init__(f"download link for {claim.resource_id} expired")
        self.claim = claim


@lru_cache(maxsize=4)  # one per secret key, built once: it holds no state between calls
def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def _claim(payload: object) -> DownloadClaim:
    if not (isinstance(payload, dict) and isinstance(payload.get("u"), str)
            and isinstance(payload.get("r"), str)):
        raise LinkInvalid("token payload has the wrong shape")
    try:
        uid = uuid.UUID(hex=payload["u"])
    except ValueError:
        raise LinkInvalid("token payload has the wrong shape") from None
    return DownloadClaim(submission_uid=uid, resource_id=payload["r"])


def sign_download(secret_key: str, claim: DownloadClaim) -> str:
    """A URL-safe token for the download and thank-you links."""
    return _serializer(secret_key).dumps({"u": claim.submission_uid.hex, "r": claim.resource_id})


def read_download(secret_key: str, token: str, max_age: int) -> DownloadClaim:
    """The claim inside a token; raises LinkExpired or LinkInvalid."""
    serializer = _serializer(secret_key)
    try:
        return _claim(serializer.loads(token, max_age=max_age))
    except SignatureExpired as e:
        # The signature was checked before the age, so the payload is ours.
        try:
            claim = _claim(serializer.load_payload(e.payload))
        except BadData:
            raise LinkInvalid(str(e)) from None
        raise LinkExpired(claim) from None
    except BadData as e:
        raise LinkInvalid(str(e)) from None
