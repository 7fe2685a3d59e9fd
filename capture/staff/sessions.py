"""Workspace sessions kept on the server, so that signing out (or a new password, or a
disabled account) ends them, whoever kept a copy of the cookie.

The signed cookie holds a random key; the ``staff_sessions`` row is found by the key's
SHA-256, so a copy of the table opens nothing. A session stands while its row is not ended,
its absolute end (``PERMANENT_SESSION_LIFETIME`` after sign-in) is ahead and it was used
within ``SESSION_IDLE_SECONDS``. ``last_seen_at`` is written at most every
:data:`RENEW_SECONDS` (or half the idle time, if shorter), so most pages read one row and
write nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, false, or_, select, update
from sqlalchemy.orm import Session

from capture.db.models import USER_AGENT_MAX, StaffSession, User
from capture.db.store import Store

#: How stale ``last_seen_at`` may get before a request writes it again.
RENEW_SECONDS = 60
#: Days an ended or expired session stays listed in the table (then the account's next sign-in
#: deletes it): long enough to look into a sign-in that should not have happened.
KEEP_DAYS = 30


@dataclass(frozen=True)
class Lifetime:
    """How long a session lasts in all (absolute) and unused (idle), in seconds."""

    absolute: int
    idle: int

    @property
    def renew_after(self) -> timedelta:
        return timedelta(seconds=min(RENEW_SECONDS, self.idle / 2))


def session_id(key: str) -> str:
    """The row's id for a cookie's key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def start(store: Store, user: User, lifetime: Lifetime, user_agent: str, ip_prefix: str | None) -> str:
    """A new session for the user; returns the key for the cookie (never stored). The
    account's sessions over for more than :data:`KEEP_DAYS` are deleted on the way."""
    key = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=KEEP_DAYS)
    with store.write() as s:
        s.execute(delete(StaffSession).where(
            StaffSession.user_id == user.id,
            or_(StaffSession.expires_at < long_ago, StaffSession.ended_at < long_ago,
                StaffSession.last_seen_at < long_ago)))
        s.add(StaffSession(id=session_id(key), user_id=user.id, created_at=now, last_seen_at=now,
                           expires_at=now + timedelta(seconds=lifetime.absolute), ended_at=None,
                           user_agent=user_agent[:USER_AGENT_MAX], ip_prefix=ip_prefix))
    return key


def resume(store: Store, key: str, lifetime: Lifetime) -> tuple[StaffSession, User] | None:
    """The session of this key and its account, if it still stands (renewing its last use
    when that is older than a minute); None when it ended, expired, idled out or the
    account is disabled."""
    now = datetime.now(UTC)
    with store.read() as s:
        row = s.execute(
            select(StaffSession, User).join(User)
            .where(StaffSession.id == session_id(key), StaffSession.ended_at.is_(None),
                   StaffSession.expires_at > now, User.disabled == false())
        ).one_or_none()
    if row is None:
        return None
    staff_session, user = row
    if staff_session.last_seen_at <= now - timedelta(seconds=lifetime.idle):
        end(store, staff_session.id)
        return None
    if staff_session.last_seen_at <= now - lifetime.renew_after:
        with store.write() as s:
            s.execute(update(StaffSession).where(StaffSession.id == staff_session.id)
                      .values(last_seen_at=now))
        staff_session.last_seen_at = now
    return staff_session, user


def end(store: Store, sid: str, user_id: int | None = None) -> bool:
    """End one session (of this account only, when given); False when there was none standing."""
    with store.write() as s:
        done = s.execute(update(StaffSession).where(
            StaffSession.id == sid, StaffSession.ended_at.is_(None),
            *([StaffSession.user_id == user_id] if user_id is not None else []))
            .values(ended_at=datetime.now(UTC)))
    return done.rowcount > 0


def end_all(s: Session, user_id: int, keep: str | None = None) -> int:
    """End every session of an account (but ``keep``), in the caller's transaction: a new
    password or a disabled account ends them together with the change."""
    done = s.execute(update(StaffSession).where(
        StaffSession.user_id == user_id, StaffSession.ended_at.is_(None),
        *([StaffSession.id != keep] if keep is not None else []))
        .values(ended_at=datetime.now(UTC)))
    return done.rowcount


def end_others(store: Store, user_id: int, keep: str) -> int:
    """"Sign out everywhere else": every session of the account but this one."""
    with store.write() as s:
        return end_all(s, user_id, keep)


def standing(store: Store, user_id: int, lifetime: Lifetime) -> list[StaffSession]:
    """The account's sessions that still stand, the most recently used first."""
    now = datetime.now(UTC)
    with store.read() as s:
        return list(s.scalars(
            select(StaffSession)
            .where(StaffSession.user_id == user_id, StaffSession.ended_at.is_(None),
                   StaffSession.expires_at > now,
                   StaffSession.last_seen_at > now - timedelta(seconds=lifetime.idle))
            .order_by(StaffSession.last_seen_at.desc(), StaffSession.created_at.desc())))


#: (pattern, name) in the order to try: Edge and Opera also say "Chrome", Chrome says "Safari".
BROWSERS = ((r"Edg(?:e|A|iOS)?/(\d+)", "Edge"), (r"OPR/(\d+)", "Opera"), (r"Firefox/(\d+)", "Firefox"),
            (r"(?:Chrome|CriOS)/(\d+)", "Chrome"), (r"Version/(\d+)[^ ]* .*Safari/", "Safari"),
            (r"curl/(\d+)", "curl"))
SYSTEMS = (("Windows", "Windows"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"),
           ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def describe_browser(user_agent: str) -> str:
    """A User-Agent in a few words a person recognises: "Firefox 121 on Linux"."""
    browser = next((f"{name} {m.group(1)}" for pattern, name in BROWSERS
                    if (m := re.search(pattern, user_agent))), "")
    system = next((name for marker, name in SYSTEMS if marker in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (user_agent[:60] if user_agent.strip() else "Unknown browser")
