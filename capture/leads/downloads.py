"""The download log: each use of a signed link, kept against the submission that earned it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from capture.db.models import USER_AGENT_MAX, Download, Submission, utcnow
from capture.db.store import Store


def has_submission(store: Store, uid: uuid.UUID) -> bool:
    """Whether a submission is stored (a replay tells new leads from ones it already had)."""
    with store.read() as s:
        return s.scalars(select(Submission.id).where(Submission.uid == uid)).first() is not None


def record_download(store: Store, *, submission_uid: uuid.UUID, resource_id: str, user_agent: str = "",
                    ip_prefix: str | None = None, at: datetime | None = None) -> Download | None:
    """Log one download of a submission's link, now or ``at`` (replayed from the spool);
    None when that submission is not stored (still in the spool, or erased since)."""
    with store.write() as s:
        submission = s.scalars(
            select(Submission).where(Submission.uid == submission_uid)).one_or_none()
        if submission is None:
            return None
        download = Download(
            lead_id=submission.lead_id, submission_id=submission.id, resource_id=resource_id,
            created_at=at or utcnow(), user_agent=user_agent[:USER_AGENT_MAX], ip_prefix=ip_prefix,
        )
        s.add(download)
    return download


def has_download(store: Store, submission_uid: uuid.UUID, at: datetime) -> bool:
    """Whether a download of this submission at this instant is recorded: a spooled
    download is replayed once, however often its line is read."""
    with store.read() as s:
        return s.scalars(
            select(Download.id).join(Submission, Submission.id == Download.submission_id)
            .where(Submission.uid == submission_uid, Download.created_at == at)).first() is not None
