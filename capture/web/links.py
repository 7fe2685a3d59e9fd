"""The links the service builds: from BASE_URL (never the request's Host), and the signed,
expiring download links, whose token names the request, its resource, and when.

A link in a redirect, a page or an email goes wherever its host says: built from the Host a
client sends, ``Host: evil.example`` would send the visitor's personal link to whoever holds
that name. :func:`public_url` builds every absolute link from the configured BASE_URL.

Nobody can guess a link to a gated file or reuse one forever: the token is signed with the
app's secret key (itsdangerous, salt ``download-link``) and refused after ``DOWNLOAD_MAX_AGE``.
An expired token is still authentic, so it can say which resource to request again.

The token binds the submission's uid, which exists before any row does: a link works while
its submission waits in the spool (capture.spool), and the lead is found through it later.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

from urllib.parse import urlsplit

from flask import Flask, current_app
from itsdangerous import BadData, SignatureExpired, TimestampSigner
from werkzeug.routing import MapAdapter

SALT = "download-link"
EXTENSION = "leadgate.links"


def base_adapter(app: Flask) -> MapAdapter:
    """The URL map bound to BASE_URL: builds links without a request, and for a request whose
    Host is not trusted. Made once per app (building with it changes nothing in it)."""
    adapter = app.extensions.get(EXTENSION)
    if adapter is None:
        if not app.config["BASE_URL"]:
            raise RuntimeError("no BASE_URL to build links from: set LEADGATE_BASE_URL")
        parts = urlsplit(app.config["BASE_URL"])
        adapter = app.url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)
        app.extensions[EXTENSION] = adapter
    return adapter


def public_url(endpoint: str, **values: object) -> str:
    """The absolute address of a route, under BASE_URL: for links people follow (redirects,
    pages, emails). A blueprint-relative ``.name`` is not accepted: name the blueprint."""
    return base_adapter(current_app).build(endpoint, values, force_external=True)


@dataclass(frozen=True)
class DownloadClaim:
    submission_uid: uuid.UUID
    resource_id: str


#: The units a link's lifetime is told in, largest first. No weeks: "7 days" reads at a glance.
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def valid_for(max_age: int) -> str:
    """DOWNLOAD_MAX_AGE (positive seconds) in words: "7 days", "1 hour and 30 minutes".

    The one wording of a link's lifetime, exact rather than rounded: the thank-you page shows
    it, and the JSON answer to the page script carries it for the script to show.
    """
    parts = []
    for name, seconds in _UNITS:
        count, max_age = divmod(max_age, seconds)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


class LinkInvalid(Exception):
    """The token was not signed by us, was altered, or is not a token at all."""


class LinkExpired(Exception):
    """The token is authentic but older than the allowed age."""

    def __init__(self, claim: DownloadClaim):
        super().__init__(f"download link for {claim.resource_id} expired")
        self.claim = claim


@lru_cache(maxsize=4)  # one per secret key, built once: they hold no state between calls
def _signer(secret_key: str) -> TimestampSigner:
    return TimestampSigner(secret_key, salt=SALT)


def sign_download(secret_key: str, claim: DownloadClaim) -> str:
    """A URL-safe token for the download and thank-you links: ``<uid>.<resource>.<time>.<sig>``.

    The uid's hex digits and the resource's slug need no encoding, so the token is signed
    text: shorter and cheaper than itsdangerous' JSON serializer (docs/performance.md).
    """
    return _signer(secret_key).sign(f"{claim.submission_uid.hex}.{claim.resource_id}").decode()


def read_download(secret_key: str, token: str, max_age: int) -> DownloadClaim:
    """The claim inside a token; raises LinkExpired or LinkInvalid."""
    try:
        value = _signer(secret_key).unsign(token, max_age=max_age)
    except SignatureExpired as e:
        # The signature was checked before the age, so the payload is ours.
        raise LinkExpired(_claim(e.payload)) from None
    except BadData as e:
        raise LinkInvalid(str(e)) from None
    return _claim(value)


def _claim(value: object) -> DownloadClaim:
    """The claim in a token's signed value, ``<uid hex>.<resource id>``."""
    uid_hex, _, resource_id = value.decode().partition(".") if isinstance(value, bytes) else ("", "", "")
    try:
        uid = uuid.UUID(hex=uid_hex)
    except ValueError:
        raise LinkInvalid("token payload has the wrong shape") from None
    if not resource_id:
        raise LinkInvalid("token payload has the wrong shape")
    return DownloadClaim(submission_uid=uid, resource_id=resource_id)
