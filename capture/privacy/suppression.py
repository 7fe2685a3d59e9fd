"""The suppression list: who was erased, as a keyed hash of the address, so that data from
before the erasure (a spool line, a post held as spam, an import) does not bring them back.

The rule, in one function every way in calls (:func:`is_suppressed`): a post made *before* the
person's latest erasure is dropped; a post made after it is a new, lawful start — the person
came back and asked for a resource themselves — and is stored (docs/privacy.md says why).
The hash is HMAC-SHA256 keyed with the service's SECRET_KEY: the list cannot be read back
into addresses without the key, and changing the key empties it in effect (docs/privacy.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from flask import Flask, current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from capture.config import SECRET_KEY_FILE
from capture.db.models import Suppression
from capture.db.store import Store
from capture.leads.merge import email_key


class KeyUnknown(Exception):
    """The service's secret key is not known to this process (a command run without
    LEADGATE_SECRET_KEY): a suppression made or checked with another key would not match."""


def secret_key(app: Flask) -> str:
    """The key the service hashes suppressions with.

    A ``leadgate`` command run without LEADGATE_SECRET_KEY signs with a key of its own that
    dies with it (capture.cli.command); the service's key is then the demo's key in the
    instance folder, or unknown.
    """
    if os.environ.get("LEADGATE_SECRET_KEY") or any(app.config.get(mode) for mode in ("TESTING", "DEMO", "DEBUG")):
        return app.config["SECRET_KEY"]
    demo_key = Path(app.instance_path) / SECRET_KEY_FILE
    if demo_key.is_file():
        return demo_key.read_text(encoding="utf-8").strip()
    raise KeyUnknown("set LEADGATE_SECRET_KEY to the service's secret key: the suppression list of "
                     "erased people is keyed with it")


def key_hash(secret: str, email: str) -> str:
    """HMAC-SHA256(SECRET_KEY, "suppression:" + email key), in hex."""
    return hmac.new(secret.encode(), f"suppression:{email_key(email)}".encode(), hashlib.sha256).hexdigest()


def add(session: Session, dialect: str, secret: str, email: str, at: datetime, reason: str) -> None:
    """Put the address on the list inside the erasing transaction; erased again, its time moves on."""
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
    statement = insert(Suppression.__table__).values(
        key_hash=key_hash(secret, email), created_at=at, reason=reason)
    session.execute(statement.on_conflict_do_update(
        index_elements=["key_hash"], set_={"created_at": at, "reason": reason}))


def erased_at(store: Store, secret: str, email: str) -> datetime | None:
    """When this address was last erased, None if never."""
    with store.read() as s:
        return s.scalar(select(Suppression.created_at).where(Suppression.key_hash == key_hash(secret, email)))


def is_suppressed(store: Store, secret: str | None, email: str, made_at: datetime) -> bool:
    """Whether data about this address made at ``made_at`` predates the person's erasure, and so
    must not be stored: the check of a spool replay, a spam release and an import.

    ``secret`` None: the current app's key (:func:`secret_key`). Without the key the answer is
    still known while nobody was ever erased (False); once someone was, KeyUnknown.
    """
    if secret is None:
        secret = known_key(store, (lambda: secret_key(current_app)) if has_app_context() else _no_key)
        if secret is None:
            return False
    erased = erased_at(store, secret, email)
    return erased is not None and made_at <= erased


def known_key(store: Store, key: Callable[[], str]) -> str | None:
    """The suppression list's key from ``key``; None when it is unknown but the list is empty
    (there is nobody to check for), KeyUnknown when it is unknown and someone was erased."""
    try:
        return key()
    except KeyUnknown:
        if any_suppressed(store):
            raise
        return None


def _no_key() -> str:
    raise KeyUnknown("the suppression list's key is needed: pass the app's secret key")


def any_suppressed(store: Store) -> bool:
    """Whether anyone was ever erased (a process without the key may then skip the check)."""
    with store.read() as s:
        return s.scalars(select(Suppression.key_hash).limit(1)).first() is not None
