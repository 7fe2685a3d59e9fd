"""Storage limitation (GDPR Art. 5(1)(e)): leads without activity for longer than
``retention_months`` (content/leadgate.yml) are erased, by ``leadgate privacy purge`` and by
the worker's daily ``privacy_purge`` job (scheduled while RETENTION_PURGE is true).

Activity is the person's own or the team's work on them: the latest of their last form post
(stored, held in the spam folder or waiting in the spool), a download, a consent event (a
withdrawal, a confirmation) and a stage move. Each lead is erased as ``leadgate privacy erase``
would (capture.privacy.erasure, channel ``retention``), checked again inside its transaction so
a person who came back meanwhile is kept; the files are cleaned once, after the last.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from capture.catalog import get_catalog
from capture.db.models import ConsentEvent, Download, HeldPost, Lead, StageChange, utcnow
from capture.db.store import Store, get_store
from capture.privacy import erasure
from capture.spam import folder
from capture.spool import get_spool

log = logging.getLogger(__name__)

#: The tables whose rows count as a lead's activity, by their time column.
ACTIVITY = ((Download, Download.created_at), (ConsentEvent, ConsentEvent.created_at),
            (StageChange, StageChange.created_at))


@dataclass(frozen=True)
class Purge:
    """A purge: the leads it erased (or would, in a dry run), and the cut-off it used."""

    months: int
    cutoff: datetime
    lead_ids: list[int]
    dry_run: bool
    #: None when the database files are clean afterwards, else why not (capture.privacy.erasure).
    files: str | None = None

    def describe(self) -> str:
        """Counts and lead numbers; never addresses (the output may be logged or mailed)."""
        count = len(self.lead_ids)
        leads = f"{count} lead{'s' if count != 1 else ''}"
        ago = f"without activity since {self.cutoff:%Y-%m-%d} ({self.months} months)"
        if not count:
            return f"No lead is {ago}: nothing to erase."
        numbers = ", ".join(map(str, self.lead_ids))
        if self.dry_run:
            return f"Would erase {leads} {ago} (--dry-run: nothing erased): {numbers}."
        said = f"Erased {leads} {ago}: {numbers}."
        return f"{said}\nDatabase files: {self.files or 'clean.'}"


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (the month's last day when shorter)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _quiet_since(lead_id: Any, key: Any, cutoff: datetime) -> list[Any]:
    """Conditions: nothing of the lead happened at or after the cut-off, and no post of theirs
    waits in the spam folder since then (SQLite's lower() folds ASCII only: for other addresses
    :func:`still_inactive` looks again)."""
    return [*(~exists().where(table.lead_id == lead_id, column >= cutoff) for table, column in ACTIVITY),
            ~exists().where(func.lower(HeldPost.email) == key, HeldPost.created_at >= cutoff)]


def inactive(store: Store, cutoff: datetime, spooled: set[str]) -> list[int]:
    """The leads (not erased) whose latest activity is before ``cutoff``, by number; ``spooled``
    as in :func:`still_inactive`."""
    with store.read() as s:
        return list(s.scalars(select(Lead.id).where(Lead.erased_at.is_(None), Lead.last_seen < cutoff,
                                                    Lead.email_key.not_in(spooled),
                                                    *_quiet_since(Lead.id, Lead.email_key, cutoff))
                              .order_by(Lead.id)))


def still_inactive(session: Session, lead: Lead, cutoff: datetime, spooled: set[str]) -> bool:
    """Checked again inside the erasing transaction: a person who came back is kept, whether
    their new post was stored, held as spam or waits in the spool (``spooled``: the addresses,
    as email keys, of the spool's posts since the cut-off)."""
    return (lead.last_seen < cutoff and lead.email_key not in spooled
            and bool(session.scalar(select(and_(*_quiet_since(lead.id, lead.email_key, cutoff)))))
            and not any(post.created_at >= cutoff for post in folder.person_posts(session, lead.email)))


def purge(app: Flask, *, now: datetime | None = None, dry_run: bool = False,
          months: int | None = None, step: Callable[[], bool] | None = None) -> Purge:
    """Erase the leads inactive for longer than ``months`` (retention_months by default).
    ``step``, asked before each lead, stops the purge when it answers False (the worker's job
    was taken over by another worker, which does the rest)."""
    with app.app_context():
        months = months or get_catalog().settings.retention_months
    cutoff = months_before(now or utcnow(), months)
    store = get_store(app)
    spool = get_spool(app).file
    candidates = inactive(store, cutoff, spool.posted_since(cutoff))
    if dry_run:
        return Purge(months, cutoff, candidates, True)
    erased = []
    for lead_id in candidates:
        if step is not None and not step():
            log.warning("retention purge stopped after %d lead(s): another worker took the job over",
                        len(erased))
            break
        with store.read() as s:
            email = s.scalar(select(Lead.email).where(Lead.id == lead_id, Lead.erased_at.is_(None)))
        if email is None:
            continue
        done = erasure.erase(app, email, channel="retention", actor="retention purge", clean=False,
                             keep=lambda session, lead: not still_inactive(session, lead, cutoff,
                                                                           spool.posted_since(cutoff)))
        if done.lead_id is not None:
            erased.append(done.lead_id)
    files = erasure.clean_files(store) if erased else None
    return Purge(months, cutoff, erased, False, files)


def scheduled_purge(context: Any, payload: dict[str, Any]) -> None:
    """The worker's ``privacy_purge`` job: the purge, unless RETENTION_PURGE was turned off."""
    if not context.app.config["RETENTION_PURGE"]:
        log.info("retention purge skipped: LEADGATE_RETENTION_PURGE is false")
        return
    done = purge(context.app, step=context.extend_lease)
    log.info("retention purge: %d lead(s) erased (cut-off %s)", len(done.lead_ids), done.cutoff.date())
    if done.files:
        log.warning("retention purge: %s", done.files)
