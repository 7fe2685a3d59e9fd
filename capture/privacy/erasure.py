"""The right to erasure (GDPR Art. 17): a person's data removed from every table, the spool
and the database files, in one transaction, while anonymous counts for reports stay.

The rule (docs/privacy.md): the lead's row stays as a tombstone — ``erased_at`` set, address
and names emptied, ``email_key`` ``erased:<id>`` — with what reports count and nothing that
names anyone: first and last seen, stage and the times it was reached, deal value, the
submissions' resource, UTM tags and time, stage history without free-text reasons (a
disqualification keeps its reason only when it is one of the fixed list). Consent events,
emails, the lead's jobs and the posts held as spam with the address are deleted; downloads lose
their network and browser. The ``erasures`` row is written first: while it names the lead, the
ledger's trigger (migration 0008) allows its consent events to be deleted. The address's keyed
hash goes on the suppression list (capture.privacy.suppression).

Then, outside the transaction, the spool is rewritten without the person's lines, and the
database files are made clean: on SQLite every write of the erasure runs with
``secure_delete`` (deleted bytes are zeroed, not left in free space), the search index is merged
(``optimize``: its old segments held the words) and the WAL is checkpointed and truncated (old
pages of the rows were there); on PostgreSQL the touched tables are vacuumed, so the dead row
versions go. What could not be cleaned is said, never hidden.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import and_, delete, false, func, insert, not_, or_, select, text, update
from sqlalchemy.orm import Session

from capture.catalog import get_catalog
from capture.db.models import (
    ConsentEvent,
    Download,
    Email,
    Erasure,
    ExportRecord,
    HeldPost,
    Job,
    Lead,
    StageChange,
    Submission,
    utcnow,
)
from capture.db.store import Store, get_store
from capture.fields import PROFILE_FIELDS
from capture.leads.merge import email_key
from capture.leads.submission import NewSubmission
from capture.privacy import suppression
from capture.spam import folder
from capture.spool import get_spool
from capture.spool.lines import CorruptLine, decode

log = logging.getLogger(__name__)

CHANNELS = ("cli", "workspace", "retention")
#: The submissions' columns that hold a person's data; resource, UTM tags, time and consent
#: versions stay (reports count them; the versions name texts, not people).
SUBMISSION_BLANKS: dict[str, Any] = {"email": "", **dict.fromkeys(PROFILE_FIELDS, ""), "referrer": "",
                                     "landing_page": "", "user_agent": "", "ip_prefix": None, "spam_reasons": ""}
#: Tables an erasure may leave dead row versions in (PostgreSQL vacuums them).
TOUCHED = ("leads", "submissions", "downloads", "stage_changes", "consent_events", "emails", "jobs",
           "held_posts", "export_audit", "consent_states")
#: How long truncating SQLite's WAL waits for readers to let go (SQLite's busy handler retries).
CHECKPOINT_WAIT_MS = 2000
CHECKPOINT_STEP_MS = 100
#: What replaces the address and the names in the export log's filters.
REDACTED = "[erased]"
#: Name words shorter than this stay in the export log (an initial names nobody).
NAME_MIN = 2


#: Whether a lead must stay after all, asked inside the erasing transaction (a retention purge
#: finds its person came back).
Keep = Callable[[Session, Lead], bool]


class _Kept(Exception):
    """``keep`` kept the lead: the transaction is rolled back."""


@dataclass(frozen=True)
class Erased:
    """What an erasure did; ``files`` is None when the database files are clean, else why not."""

    email: str
    lead_id: int | None
    held_posts: int
    spool_lines: int
    files: str | None

    @property
    def found(self) -> bool:
        return self.lead_id is not None or bool(self.held_posts or self.spool_lines)

    def describe(self) -> str:
        """What was done, in words, for the person who asked."""
        if not self.found:
            said = (f"Nothing was held about {self.email}; the address is on the suppression list now, so "
                    "older data (a spool line, an import) cannot bring it back.")
        else:
            parts = []
            if self.lead_id is not None:
                parts.append(f"lead {self.lead_id} is now an anonymous row (counts in reports stay)")
            if self.held_posts:
                parts.append(f"{self.held_posts} post(s) held as spam deleted")
            if self.spool_lines:
                parts.append(f"{self.spool_lines} line(s) removed from the spool")
            said = f"Erased {self.email}: {'; '.join(parts)}. The address is on the suppression list."
        return f"{said}\nDatabase files: {self.files or 'clean.'}"


def erase(app: Flask, email: str, *, channel: str, actor: str = "", at: datetime | None = None,
          clean: bool = True, keep: Keep | None = None) -> Erased:
    """Erase the person of this address everywhere (see the module's docstring). ``clean``
    false leaves the file clean-up to the caller (a purge cleans once, after many); ``keep``
    says, inside the transaction, that the lead must stay after all (then nothing is done)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown erasure channel {channel!r}")
    store = get_store(app)
    secret = suppression.secret_key(app)
    with app.app_context():
        reasons = get_catalog().settings.disqualification_reasons
    lead_id, uids, held = erase_rows(store, secret, email, channel=channel, actor=actor, at=at or utcnow(),
                                     fixed_reasons=tuple(reasons), keep=keep)
    if lead_id is None and keep is not None:
        return Erased(email, None, 0, 0, None)
    lines = get_spool(app).forget(email, uids)
    files = clean_files(store) if clean else None
    return Erased(email, lead_id, held, lines, files)


def erase_rows(store: Store, secret: str, email: str, *, channel: str, actor: str, at: datetime,
               fixed_reasons: tuple[str, ...], keep: Keep | None = None) -> tuple[int | None, set[uuid.UUID], int]:
    """The erasure's one transaction: (the lead's id or None, its submissions' uids, held posts
    deleted); with ``keep``, nothing at all when there is no lead or ``keep`` keeps it."""
    key = email_key(email)
    uids: set[uuid.UUID] = set()
    try:
        with store.write() as s:
            lead = s.scalars(select(Lead).where(Lead.email_key == key, Lead.erased_at.is_(None))
                             .with_for_update()).one_or_none()
            if keep is not None and (lead is None or keep(s, lead)):
                raise _Kept
            sqlite = store.dialect == "sqlite"
            if sqlite:
                s.execute(text("PRAGMA secure_delete=ON"))
            names = person_names(lead, folder.person_posts(s, email))
            if lead is not None:
                uids = set(s.scalars(select(Submission.uid).where(Submission.lead_id == lead.id)))
                _tombstone(s, lead, channel, actor, at, fixed_reasons)
            held = folder.delete_person(s, email)
            _redact_export_log(s, key, names)
            suppression.add(s, store.dialect, secret, email, at, channel)
            if sqlite:
                s.execute(text("PRAGMA secure_delete=OFF"))
    except _Kept:
        return None, uids, 0
    return (lead.id if lead is not None else None), uids, held


def _tombstone(s: Session, lead: Lead, channel: str, actor: str, at: datetime,
               fixed_reasons: tuple[str, ...]) -> None:
    """Every table's rows of one lead, emptied or deleted; the erasures row first."""
    s.execute(insert(Erasure).values(lead_id=lead.id, created_at=at, channel=channel, actor=actor))
    kept_reason = lead.disqualified_reason if lead.disqualified_reason in fixed_reasons else ""
    s.execute(update(Lead).where(Lead.id == lead.id).values(
        erased_at=at, email="", email_key=f"erased:{lead.id}", **dict.fromkeys(PROFILE_FIELDS, ""),
        score_reasons="", disqualified_reason=kept_reason, confirmed_at=None))
    s.execute(update(Submission).where(Submission.lead_id == lead.id).values(**SUBMISSION_BLANKS))
    s.execute(update(Download).where(Download.lead_id == lead.id).values(ip_prefix=None, user_agent=""))
    fixed = and_(StageChange.to_stage == "disqualified", StageChange.reason.in_(fixed_reasons)) \
        if fixed_reasons else false()
    s.execute(update(StageChange).where(StageChange.lead_id == lead.id, StageChange.reason != "", not_(fixed))
              .values(reason=""))
    # The ledger's trigger lets these go now that an erasures row names the lead, and takes the
    # lead's consent_states and marketing_choice with them (migration 0008).
    s.execute(delete(ConsentEvent).where(ConsentEvent.lead_id == lead.id))
    s.execute(delete(Email).where(Email.lead_id == lead.id))
    s.execute(delete(Job).where(Job.lead_id == lead.id))


def person_names(lead: Lead | None, held: list[HeldPost]) -> tuple[list[str], list[str]]:
    """What names the person in a staff search: (their companies that carry one of their names,
    their name words), from the lead and the posts held as spam, longest first.

    A name word shorter than NAME_MIN is left (an initial names nobody). A company is a
    business, not a person, and staff search for it for its other leads: it goes only when it
    holds one of the person's names ("Quillfeather Analytics"), where it identifies them.
    """
    given = [(lead.first_name, lead.last_name, lead.company)] if lead is not None else []
    for post in held:
        with contextlib.suppress(CorruptLine):
            data = decode(post.payload.encode("ascii"))
            if isinstance(data, NewSubmission):
                given.append((data.first_name, data.last_name, data.company))
    words = {word.casefold(): word for first, last, _ in given for word in f"{first} {last}".split()
             if len(word) >= NAME_MIN}
    companies = {company.strip() for _, _, company in given
                 if any(_whole(word).search(company) for word in words.values())}
    return sorted(companies, key=len, reverse=True), sorted(words.values(), key=len, reverse=True)


def _whole(words: str) -> re.Pattern[str]:
    """``words`` as whole words, any case (Unicode: "élodie" finds "Élodie")."""
    return re.compile(rf"(?<!\w){re.escape(words)}(?!\w)", re.IGNORECASE)


def _redact_export_log(s: Session, key: str, names: tuple[list[str], list[str]]) -> None:
    """The person out of the export log's filters (a staff search for their address, their
    company or their name), the rest of each record kept."""
    companies, words = names
    patterns = [re.compile(re.escape(key), re.IGNORECASE), *map(_whole, (*companies, *words))]
    # SQL narrows the records; the patterns decide (SQLite's lower() folds ASCII letters only).
    needles = {_ascii_lower(form) for text in (key, *companies, *words)
               for form in (text, text.lower(), text.upper(), text.capitalize())}
    found = s.execute(select(ExportRecord.id, ExportRecord.filters).where(
        or_(*(func.lower(ExportRecord.filters).contains(needle, autoescape=True) for needle in needles)))).all()
    for record_id, filters in found:
        redacted = filters
        for pattern in patterns:
            redacted = pattern.sub(REDACTED, redacted)
        if redacted != filters:
            s.execute(update(ExportRecord).where(ExportRecord.id == record_id).values(filters=redacted))


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def clean_files(store: Store) -> str | None:
    """Make the database files hold no trace of what was erased; None when done, else why not."""
    if store.dialect == "sqlite":
        return _clean_sqlite(store)
    return _vacuum(store)


def _clean_sqlite(store: Store) -> str | None:
    try:
        return _clean_sqlite_files(store)
    except Exception as e:  # noqa: BLE001 - the rows are erased; only the clean-up is late
        log.warning("erasure: cleaning the SQLite files failed: %s", e)
        return (f"cleaning the SQLite files failed ({type(e).__name__}: {e}): old copies of the erased rows "
                "may stay in the search index or the -wal file; run `leadgate privacy erase` again to retry.")


def _clean_sqlite_files(store: Store) -> str | None:
    pooled = store.engine.raw_connection()
    try:
        driver = pooled.driver_connection
        driver.execute("PRAGMA secure_delete=ON")
        try:
            driver.execute("BEGIN IMMEDIATE")
            driver.execute("INSERT INTO leads_search (leads_search) VALUES ('optimize')")
            driver.execute("COMMIT")
        finally:
            driver.execute("PRAGMA secure_delete=OFF")
        # A truncating checkpoint waits for readers through the busy handler, but answers busy at
        # once while another connection checkpoints (the service's own Checkpointer, every write):
        # tried again in short steps until CHECKPOINT_WAIT_MS is over.
        driver.execute(f"PRAGMA busy_timeout={CHECKPOINT_STEP_MS}")
        deadline = time.monotonic() + CHECKPOINT_WAIT_MS / 1000
        try:
            while True:
                busy, _, _ = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return None
                if time.monotonic() >= deadline:
                    break
                time.sleep(CHECKPOINT_STEP_MS / 1000)
        finally:
            driver.execute(f"PRAGMA busy_timeout={store.sqlite_busy_timeout_ms}")
    finally:
        pooled.close()
    problem = ("the SQLite WAL could not be emptied: other connections kept reading for "
               f"{CHECKPOINT_WAIT_MS / 1000:.0f} s. Old copies of the erased rows stay in "
               "the -wal file until the next checkpoint; run `leadgate privacy erase` again to retry.")
    log.warning("erasure: %s", problem)
    return problem


def _vacuum(store: Store) -> str | None:
    try:
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(f"VACUUM {', '.join(TOUCHED)}")
    except Exception as e:  # noqa: BLE001 - the rows are erased; only the clean-up is late
        log.warning("erasure: VACUUM failed: %s", e)
        return (f"VACUUM failed ({type(e).__name__}): dead copies of the erased rows stay in the tables' "
                "files until autovacuum reaches them")
    return None
