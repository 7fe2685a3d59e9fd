"""What the jobs are doing, for people: counts, the oldest job waiting, jobs waiting for
another attempt and jobs given up. ``leadgate jobs status`` and ``/workspace/jobs`` both show
:func:`read_status`, so the terminal and the page cannot disagree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from capture.db.models import Job, utcnow
from capture.db.store import Store
from capture.jobs import queue

#: Jobs listed per group (failed, waiting for another attempt); the counts cover every job.
LISTED = 100


@dataclass(frozen=True)
class JobLine:
    """One job as the status shows it."""

    id: int
    kind: str
    state: str
    attempts: int
    max_attempts: int
    created_at: datetime
    run_at: datetime
    finished_at: datetime | None
    locked_by: str
    last_error: str

    def as_json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Status:
    """Jobs per kind and state, and the jobs a person should look at."""

    counts: dict[str, dict[str, int]]
    #: The queued job recorded first (None: nothing is queued).
    oldest_queued: JobLine | None
    #: Queued jobs that failed at least once: each with the time of its next attempt.
    retrying: list[JobLine]
    #: Jobs given up (GiveUp, or every attempt failed), newest first.
    failed: list[JobLine]
    now: datetime

    def oldest_age(self) -> float | None:
        """Seconds since the oldest queued job was recorded: how far behind the workers are."""
        if self.oldest_queued is None:
            return None
        return max(0.0, (self.now - self.oldest_queued.created_at).total_seconds())

    def as_json(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "counts": self.counts,
                "oldest_queued": (dict(self.oldest_queued.as_json(), age_seconds=round(self.oldest_age() or 0, 3))
                                  if self.oldest_queued else None),
                "retrying": [j.as_json() for j in self.retrying], "failed": [j.as_json() for j in self.failed]}


def read_status(store: Store, listed: int = LISTED) -> Status:
    jobs = Job.__table__.c
    columns = (jobs.id, jobs.kind, jobs.state, jobs.attempts, jobs.max_attempts, jobs.created_at, jobs.run_at,
               jobs.finished_at, jobs.locked_by, jobs.last_error)
    now = utcnow()
    counts = queue.counts(store)
    with store.read() as s:
        oldest = s.execute(select(*columns).where(jobs.state == queue.QUEUED)
                           .order_by(jobs.created_at, jobs.id).limit(1)).first()
        retrying = s.execute(select(*columns).where(jobs.state == queue.QUEUED, jobs.attempts > 0)
                             .order_by(jobs.run_at, jobs.id).limit(listed)).all()
        failed = s.execute(select(*columns).where(jobs.state == queue.FAILED)
                           .order_by(jobs.finished_at.desc(), jobs.id.desc()).limit(listed)).all()
    return Status(counts=counts, oldest_queued=JobLine(*oldest) if oldest else None,
                  retrying=[JobLine(*row) for row in retrying], failed=[JobLine(*row) for row in failed], now=now)


def age(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 days 4 h``: how long, at a glance."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 3600:
        return f"{minutes} min"
    if seconds < 86400:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} day{'s' if days != 1 else ''} {hours % 24} h" if hours % 24 else f"{days} day{'s' if days != 1 else ''}"
