"""Jobs that run every day: one line each in :data:`PERIODIC`, queued by whichever worker looks first.

There is no scheduler process to keep alive and no second clock: each worker, when it starts and
then when the day changes, enqueues today's job of each line with the dedupe key
``<kind>:<date>``, so however many workers look, the day has one such job; it runs at or after
the line's time, retried like any job. A day no worker ran is not made up for later: the next
day's job does the same work (a purge erases everything past the retention period, whenever).
Later issues add lines here (webhook retries, other retention jobs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from capture.db.store import Store
from capture.jobs import queue


@dataclass(frozen=True)
class Daily:
    """A job of ``kind`` once a day at ``at`` (UTC), while the setting ``switch`` is true."""

    kind: str
    at: time
    switch: str | None = None

    def key(self, day: date) -> str:
        return f"{self.kind}:{day.isoformat()}"

    def due_at(self, day: date) -> datetime:
        return datetime.combine(day, self.at, UTC)


#: Every periodic job. The handler of each kind is in capture.jobs.worker.HANDLERS.
PERIODIC: tuple[Daily, ...] = (
    # Erase the leads past retention_months (capture.privacy.retention), at night.
    Daily("privacy_purge", time(3, 0), switch="RETENTION_PURGE"),
)


def enqueue_today(store: Store, config: Mapping[str, Any], now: datetime,
                  periodic: tuple[Daily, ...] = PERIODIC) -> list[int]:
    """Queue today's job of each periodic line that is switched on (once per day, however many
    workers ask); the ids of the jobs this call added."""
    day = now.astimezone(UTC).date()
    lines = [line for line in periodic if line.switch is None or config[line.switch]]
    if not lines:
        return []
    added = []
    with store.writes(direct=False) as tx:
        for line in lines:
            job_id = queue.enqueue(tx, store.dialect, line.kind, {"day": day.isoformat()},
                                   at=line.due_at(day), dedupe_key=line.key(day))
            if job_id is not None:
                added.append(job_id)
    return added
