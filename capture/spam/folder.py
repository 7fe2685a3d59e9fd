"""The spam folder: posts held back from the leads, until staff release or delete them, or
they are purged after SPAM_KEEP_DAYS.

The rule: a post whose verdict holds it (capture.spam.verdict) is kept here, in
``held_posts``, never in the leads' tables; so it cannot reach the lead list, an export, a
report or a score, whatever query those run. Each row keeps the whole post as a spool line
(capture.spool.lines), so that a release rebuilds the very NewSubmission the visitor sent and
stores it through :func:`~capture.leads.submission.record_submission`, exactly as a clean
post is stored: under the same uid (its download link keeps working, now as the lead's),
scored, with its consent, and with the verdict kept on the submission for staff to see.

A release is recorded once however often it is asked for, even by two people at the same
moment: ``record_submission`` is idempotent on the uid (the second call adds nothing), and only
then is the row marked released, by whoever marks it first. A crash between the two leaves the
lead stored and the row still waiting; releasing it again only marks it.

Erasure (capture.privacy.erasure) deletes a person's held posts. A post of theirs that reaches
the folder later but was made before the erasure (a spool replay racing it) is not released:
:func:`release` deletes it and raises :class:`Suppressed`, storing nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from capture.db.models import HeldPost, utcnow
from capture.db.store import Store
from capture.leads.merge import email_key
from capture.leads.submission import NewSubmission, record_submission
from capture.mail.outbox import MailSettings
from capture.scoring.apply import Scoring
from capture.spam.verdict import SIGNALS, THRESHOLD, Reason, Verdict
from capture.spool import lines

#: The folder's page shows this many posts at a time.
PAGE_SIZE = 50


class NotHeld(LookupError):
    """No such post in the spam folder (a wrong number, or deleted or purged since)."""


class Suppressed(NotHeld):
    """The post was made before its sender was erased: deleted, nothing stored."""


class AlreadyReleased(Exception):
    """The post was released before (by someone, at some time): nothing was added."""

    def __init__(self, post: HeldPost):
        super().__init__(f"post {post.id} was already released by {post.released_by or 'someone'}")
        self.post = post


@dataclass(frozen=True)
class HeldItem:
    """A held post as the folder lists it."""

    id: int
    uid: uuid.UUID
    created_at: datetime
    email: str
    resource_id: str
    score: float
    reasons: tuple[Reason, ...]
    released_at: datetime | None
    released_by: str


@dataclass(frozen=True)
class DayCount:
    """Posts held on one UTC day, and how many of those were released since."""

    day: date
    held: int
    released: int


@dataclass(frozen=True)
class Released:
    """A release done: the lead and submission it stored, and who released it."""

    post_id: int
    lead_id: int
    submission_id: int
    email: str
    by: str


def signal_words(signal: str) -> str:
    """A signal's name in words, for people: ``too_fast`` → "Too fast"."""
    return signal.replace("_", " ").capitalize()


def released_reasons(spam_score: float, spam_reasons: str) -> str | None:
    """Why a stored post had been held, in words, when staff released it from the folder (its
    submission keeps the verdict); None for a post that was never held."""
    verdict = Verdict.from_json(spam_reasons)
    if spam_score < THRESHOLD or not verdict.reasons:
        return None
    return ", ".join(signal_words(r.signal) for r in verdict.reasons)


def signal_meaning(signal: str) -> str:
    known = SIGNALS.get(signal)
    return known.meaning if known else ""


def _insert(dialect: str) -> Any:
    return {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]


def hold(store: Store, data: NewSubmission) -> bool:
    """Keep a held post in the folder, in one transaction; False when its uid is there
    already (a spool replay, a retried request): holding twice adds nothing."""
    row = {"uid": data.uid, "created_at": data.created_at, "email": data.email,
           "resource_id": data.resource_id, "ip_prefix": data.ip_prefix, "score": data.spam.score,
           "reasons": data.spam.reasons_json(), "payload": lines.submission_line(data).decode("ascii"),
           "released_by": ""}
    statement = (_insert(store.dialect)(HeldPost.__table__).values(row)
                 .on_conflict_do_nothing(index_elements=["uid"]).returning(HeldPost.__table__.c.id))
    with store.write() as s:
        return s.execute(statement).first() is not None


def is_held(store: Store, uid: uuid.UUID) -> bool:
    """Whether a post of this uid is in the folder and not released (its link serves the
    file, and records nothing)."""
    with store.read() as s:
        return s.scalars(select(HeldPost.id).where(
            HeldPost.uid == uid, HeldPost.released_at.is_(None))).first() is not None


def _item(post: HeldPost) -> HeldItem:
    return HeldItem(post.id, post.uid, post.created_at, post.email, post.resource_id, post.score,
                    Verdict.from_json(post.reasons).reasons, post.released_at, post.released_by)


def list_held(store: Store, *, limit: int = PAGE_SIZE, after: tuple[datetime, int] | None = None,
              since: datetime | None = None) -> tuple[list[HeldItem], tuple[datetime, int] | None]:
    """Posts waiting in the folder, newest first, ``limit`` at a time from the (time, id) key
    ``after`` (the last of the page before), held at or after ``since``; and the key of the
    next page, None when this is the last."""
    stmt = select(HeldPost).where(HeldPost.released_at.is_(None))
    if since is not None:
        stmt = stmt.where(HeldPost.created_at >= since)
    if after is not None:
        at, post_id = after
        stmt = stmt.where(or_(HeldPost.created_at < at,
                              and_(HeldPost.created_at == at, HeldPost.id < post_id)))
    with store.read() as s:
        posts = list(s.scalars(stmt.order_by(HeldPost.created_at.desc(), HeldPost.id.desc())
                               .limit(limit + 1)))
    items = [_item(p) for p in posts[:limit]]
    more = len(posts) > limit
    return items, (items[-1].created_at, items[-1].id) if more else None


def count_waiting(store: Store) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(HeldPost)
                        .where(HeldPost.released_at.is_(None))) or 0


def _day(column: Any, dialect: str) -> ColumnElement[Any]:
    """A moment's UTC day as ``YYYY-MM-DD`` text, on either database."""
    if dialect == "sqlite":
        return func.date(column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def counts_per_day(store: Store, days: int, today: date | None = None) -> list[DayCount]:
    """Posts held on each of the last ``days`` UTC days (today included), newest first,
    days with none included."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(), UTC)
    day = _day(HeldPost.created_at, store.dialect).label("day")
    with store.read() as s:
        rows = s.execute(select(day, func.count(), func.count(HeldPost.released_at))
                         .where(HeldPost.created_at >= start).group_by(day)).all()
    found = {date.fromisoformat(d): (held, released) for d, held, released in rows}
    return [DayCount(d, *found.get(d, (0, 0)))
            for d in (today - timedelta(days=n) for n in range(days))]


def find(store: Store, uid_or_id: uuid.UUID | int | str) -> HeldPost:
    """The post by its number in the folder, or its uid; NotHeld when there is none."""
    where = _key(uid_or_id)
    with store.read() as s:
        post = s.scalars(select(HeldPost).where(where)).one_or_none()
    if post is None:
        raise NotHeld(f"there is no post {uid_or_id} in the spam folder (deleted or purged?)")
    return post


def _key(uid_or_id: uuid.UUID | int | str) -> ColumnElement[bool]:
    if isinstance(uid_or_id, uuid.UUID):
        return HeldPost.uid == uid_or_id
    if isinstance(uid_or_id, int):
        return HeldPost.id == uid_or_id
    text = uid_or_id.strip()
    if text.isdigit():
        return HeldPost.id == int(text)
    try:
        return HeldPost.uid == uuid.UUID(text)
    except ValueError:
        raise NotHeld(f"{text!r} is neither a post's number nor its uid") from None


def release(store: Store, uid_or_id: uuid.UUID | int | str, actor: str, scoring: Scoring,
            secret: str | None = None, *, mail: MailSettings | None = None) -> Released:
    """Store a held post as a real lead, once, and mark it released by ``actor``.

    NotHeld when there is no such post, AlreadyReleased when it was released before (then
    nothing is added), Suppressed when its sender was erased after sending it (the post is
    deleted). ``secret``: the suppression list's key, the current app's by default.
    """
    from capture.privacy import suppression

    post = find(store, uid_or_id)
    if post.released_at is not None:
        raise AlreadyReleased(post)
    data = lines.decode(post.payload.encode("ascii"))
    if not isinstance(data, NewSubmission) or data.uid != post.uid:
        raise lines.CorruptLine(f"post {post.id}'s payload is not its submission")
    if suppression.is_suppressed(store, secret, data.email, data.created_at):
        with store.write() as s:
            s.execute(delete(HeldPost).where(HeldPost.id == post.id))
        raise Suppressed(f"post {post.id} was sent by a person erased since: it was deleted, nothing was stored")
    # Idempotent on the uid: a release racing this one stores nothing more.
    lead, submission = record_submission(store, data, scoring, mail=mail)  # its emails go now
    with store.write() as s:
        marked = s.execute(update(HeldPost).where(HeldPost.id == post.id, HeldPost.released_at.is_(None))
                           .values(released_at=utcnow(), released_by=actor)).rowcount
    if not marked:
        try:
            again: HeldPost | None = find(store, post.id)
        except NotHeld:
            again = None  # deleted while this release stored it: the lead stands
        if again is not None and again.released_at is not None:
            raise AlreadyReleased(again)
    return Released(post.id, lead.id, submission.id, data.email, actor)


def person_posts(session: Session, email: str) -> list[HeldPost]:
    """The posts held with this address (any case), oldest first: a person's own data."""
    key = email_key(email)
    stmt = select(HeldPost).order_by(HeldPost.created_at, HeldPost.id)
    if key.isascii():  # SQL's lower() folds ASCII only (SQLite); the rest is compared here
        stmt = stmt.where(func.lower(HeldPost.email) == key)
    return [post for post in session.scalars(stmt) if email_key(post.email) == key]


def delete_person(session: Session, email: str) -> int:
    """Delete every post held with this address, inside an erasure's transaction; how many."""
    ids = [post.id for post in person_posts(session, email)]
    if ids:
        session.execute(delete(HeldPost).where(HeldPost.id.in_(ids)))
    return len(ids)


def delete_held(store: Store, uid_or_id: uuid.UUID | int | str) -> HeldItem:
    """Delete a waiting post for good; NotHeld when there is none, AlreadyReleased when it is
    a lead now (erasing a lead is another matter)."""
    post = find(store, uid_or_id)
    if post.released_at is not None:
        raise AlreadyReleased(post)
    with store.write() as s:
        gone = s.execute(delete(HeldPost).where(HeldPost.id == post.id,
                                                HeldPost.released_at.is_(None))).rowcount
    if not gone:
        again = find(store, post.id)
        raise AlreadyReleased(again)
    return _item(post)


def purge(store: Store, older_than_days: int, *, now: datetime | None = None,
          dry_run: bool = False) -> int:
    """Remove the posts held more than ``older_than_days`` days ago (released ones too: their
    lead is in the leads' tables); how many. A plain DELETE by age: idempotent, and safe when
    several processes purge at once."""
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    old = HeldPost.created_at < cutoff
    if dry_run:
        with store.read() as s:
            return s.scalar(select(func.count()).select_from(HeldPost).where(old)) or 0
    with store.write() as s:
        return s.execute(delete(HeldPost).where(old)).rowcount
