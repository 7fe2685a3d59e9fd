"""Signed, expiring download links: the token names who asked for which resource, and when.

Nobody can guess a link to a gated file or reuse one forever: the token is signed with the
app's secret key (itsdangerous, salt ``download``) and refused after ``DOWNLOAD_MAX_AGE``.
An expired token is still authentic, so it can say which resource to request again.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

SALT = "download"


@dataclass(frozen=True)
class DownloadClaim:
    lead_id: int
    resource_id: str
    submission_id: int | None


class LinkInvalid(Exception):
    """The token was not signed by us, was altered, or is not a token at all."""


class LinkExpired(Exception):
    """The token is authentic but older than the allowed age."""

    def __init__(self, claim: DownloadClaim):
        super().__init__(f"download link for {claim.resource_id} expired")
        self.claim = claim


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def _claim(payload: object) -> DownloadClaim:
    if not (isinstance(payload, dict) and isinstance(payload.get("l"), int)
            and isinstance(payload.get("r"), str)
            and (payload.get("s") is None or isinstance(payload.get("s"), int))):
        raise LinkInvalid("token payload has the wrong shape")
    return DownloadClaim(lead_id=payload["l"], resource_id=payload["r"], submission_id=payload.get("s"))


def sign_download(secret_key: str, claim: DownloadClaim) -> str:
    """A URL-safe token for the download and thank-you links."""
    return _serializer(secret_key).dumps(
        {"l": claim.lead_id, "r": claim.resource_id, "s": claim.submission_id})


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
