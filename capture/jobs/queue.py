"""The jobs table as a queue: enqueue inside a write, claim, finish, retry with backoff.

The job row is the outbox: it is written in the same transaction as what makes it necessary
(a form post makes its emails' jobs), so a job exists exactly when that write was committed.
A worker claims one job at a time with a lease. On PostgreSQL the claim takes the oldest due
row ``FOR UPDATE SKIP LOCKED``, so workers on several hosts never take the same job; on SQLite
(one host) write transactions are serialised by ``BEGIN IMMEDIATE`` and the same UPDATE is safe.
A worker that dies leaves its job ``running`` until the lease ends; then another takes it:
delivery is at least once, and handlers make a repeat harmless (capture.mail keeps a sent mark
and the Message-ID chosen when the email was recorded). A job whose worker died during its last
allowed attempt is given up (:func:`give_up_lost`) rather than taken again, so a job that kills
its worker cannot take every worker down in turn. docs/deployment.md ("Jobs") says why this
table rather than a queue library.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import String, bindparam, case, cast, func, literal, null, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from capture.db.models import Job, utcnow
from capture.db.store import Store
from capture.db.writes import Writes

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATES = (QUEUED, RUNNING, DONE, FAILED)
#: Attempts before a job is given up (``failed``), unless the enqueue says otherwise.
MAX_ATTEMPTS = 8
#: Waits after the 1st, 2nd… failed attempt; the last repeats. About 13 hours over 8 attempts.
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(minutes=30),
           timedelta(hours=1), timedelta(hours=3), timedelta(hours=8))
ERROR_MAX = 2000


class GiveUp(Exception):
    """Raised by a handler when trying again cannot help (a recipient refused for good)."""


@dataclass(frozen=True)
class Claimed:
    """A job a worker holds until ``locked_until``."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    lead_id: int | None


def backoff(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failure."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def enqueue(tx: Writes, dialect: str, kind: str, payload: dict[str, Any], *, at: datetime | None = None,
            lead_id: int | None = None, dedupe_key: str | None = None,
            max_attempts: int | None = None) -> int | None:
    """Record a job in the caller's transaction; its id, or None when ``dedupe_key`` exists already.
    ``max_attempts`` defaults to the app's ``JOB_MAX_ATTEMPTS`` (:data:`MAX_ATTEMPTS` outside an app)."""
    if max_attempts is None:
        max_attempts = current_app.config["JOB_MAX_ATTEMPTS"] if has_app_context() else MAX_ATTEMPTS
    now = utcnow()
    row = {"kind": kind, "payload": json.dumps(payload, separators=(",", ":")), "lead_id": lead_id,
           "dedupe_key": dedupe_key, "state": QUEUED, "attempts": 0, "max_attempts": max_attempts,
           "created_at": now, "run_at": at or now, "locked_by": "", "last_error": ""}
    rows = tx.rows(_insert_statement(dialect, dedupe_key is not None), row)
    return rows[0]["id"] if rows else None


@functools.cache
def _insert_statement(dialect: str, dedupe: bool) -> Any:
    """The enqueue's INSERT, built once: the driver path (capture.db.writes) compiles a
    statement once per object, and a form post that owes an email runs this."""
    statement = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect](Job.__table__)
    if dedupe:
        statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
    return statement.returning(Job.__table__.c.id)


def _lost_or(otherwise: Any) -> Any:
    """The error a job taken again after its lease shows: which worker stopped during it."""
    jobs = Job.__table__.c
    lost = (literal("the worker ") + jobs.locked_by + literal(" stopped during attempt ")
            + cast(jobs.attempts, String) + literal(" (its lease ended)"))
    return case((jobs.state == RUNNING, lost), else_=otherwise)


@functools.lru_cache(maxsize=16)
def _claim_statement(kinds: tuple[str, ...] | None) -> Any:
    """The claim, built once per set of kinds and run on the driver's cursor (capture.db.writes).

    Two candidates, each served by the ``(state, run_at)`` index without a sort: a running job
    past its lease with an attempt left (a worker died; few rows), else the queued job due
    first (in the index's order: no tie-break on id, which would sort every due row on
    PostgreSQL). On PostgreSQL each is locked ``FOR UPDATE SKIP LOCKED``, so a worker passes
    over a row another is taking; SQLite ignores that clause and takes its write lock at BEGIN.
    """
    jobs = Job.__table__
    now = bindparam("now", type_=jobs.c.run_at.type)
    # The kinds as values in the statement: the driver's cursor takes no expanding IN (…).
    of_kinds = ([or_(*(jobs.c.kind == bindparam(f"kind_{i}", kind) for i, kind in enumerate(kinds)))]
                if kinds is not None else [])
    lost = (select(jobs.c.id).where(jobs.c.state == RUNNING, jobs.c.locked_until < now,
                                    jobs.c.attempts < jobs.c.max_attempts, *of_kinds)
            .order_by(jobs.c.state, jobs.c.run_at).limit(1).with_for_update(skip_locked=True))
    due = (select(jobs.c.id).where(jobs.c.state == QUEUED, jobs.c.run_at <= now, *of_kinds)
           .order_by(jobs.c.state, jobs.c.run_at).limit(1).with_for_update(skip_locked=True))
    return (update(jobs).where(jobs.c.id == func.coalesce(lost.scalar_subquery(), due.scalar_subquery()))
            .values(state=RUNNING, attempts=jobs.c.attempts + 1, locked_until=bindparam("until"),
                    locked_by=bindparam("worker"), last_error=_lost_or(jobs.c.last_error))
            .returning(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts,
                       jobs.c.lead_id))


def claim(store: Store, worker: str, lease: timedelta, kinds: tuple[str, ...] | None = None) -> Claimed | None:
    """Take the oldest due job (queued and due, or running past its lease) for ``lease``."""
    now = utcnow()
    with store.writes() as tx:
        _quick_commit(tx, store.dialect)
        rows = tx.rows(_claim_statement(kinds), {"now": now, "until": now + lease, "worker": worker[:100]})
    if not rows:
        return None
    row = rows[0]
    return Claimed(id=row["id"], kind=row["kind"], payload=json.loads(row["payload"]),
                   attempts=row["attempts"], max_attempts=row["max_attempts"], lead_id=row["lead_id"])


def give_up_lost(store: Store) -> int:
    """Give up the jobs whose worker died during their last allowed attempt; how many."""
    jobs = Job.__table__
    now = utcnow()
    with store.writes(direct=False) as tx:
        rows = tx.rows(update(jobs).where(jobs.c.state == RUNNING, jobs.c.locked_until < bindparam("now"),
                                          jobs.c.attempts >= jobs.c.max_attempts)
                       .values(state=FAILED, finished_at=bindparam("now"), locked_until=None,
                               last_error=_lost_or(jobs.c.last_error))
                       .returning(jobs.c.id), {"now": now})
    return len(rows)


#: PostgreSQL's ``SET LOCAL synchronous_commit = off``, as a SELECT the driver's cursor runs.
_ASYNC_COMMIT = select(func.set_config("synchronous_commit", "off", True))


def _quick_commit(tx: Writes, dialect: str) -> None:
    """Let PostgreSQL commit this transaction without waiting for its WAL to reach the disk
    (3 ms a commit on our test machine, docs/performance.md). Safe for a claim or a finish
    only: a server crash may forget the last fraction of a second of them, and then a job is
    queued or running again and runs again, which at-least-once delivery allows (an email
    keeps its own sent mark, written with a normal commit). Not for a job's enqueue, which is
    part of the write that needs it."""
    if dialect == "postgresql":
        tx.run(_ASYNC_COMMIT, {})


_jobs = Job.__table__
#: The job's row while this worker still holds it (another may have taken it after the lease).
_HELD = update(_jobs).where(_jobs.c.id == bindparam("job_id"), _jobs.c.state == RUNNING,
                            _jobs.c.locked_by == bindparam("worker"))
_FINISH = _HELD.values(state=DONE, finished_at=bindparam("now"), locked_until=null(), last_error="")
_AGAIN = _HELD.values(state=QUEUED, run_at=bindparam("run_at"), locked_until=null(), last_error=bindparam("error"))
_GIVE_UP = _HELD.values(state=FAILED, finished_at=bindparam("now"), locked_until=null(),
                        last_error=bindparam("error"))


_EXTEND = _HELD.values(locked_until=bindparam("until")).returning(_jobs.c.id)


def extend(store: Store, job: Claimed, worker: str, lease: timedelta) -> bool:
    """Hold the job for ``lease`` more from now (a long job between two steps); whether this
    worker still held it (False: its lease had ended and another worker took it)."""
    with store.writes() as tx:
        _quick_commit(tx, store.dialect)
        return bool(tx.rows(_EXTEND, {"job_id": job.id, "worker": worker[:100], "until": utcnow() + lease}))


def finish(store: Store, job: Claimed, worker: str) -> None:
    """The job is done: it never runs again."""
    with store.writes() as tx:
        _quick_commit(tx, store.dialect)
        tx.run(_FINISH, {"job_id": job.id, "worker": worker[:100], "now": utcnow()})


def failed(store: Store, job: Claimed, worker: str, error: str, *, give_up: bool = False) -> str:
    """The attempt failed: queue the job again after its backoff, or give it up. The new state."""
    now = utcnow()
    held = {"job_id": job.id, "worker": worker[:100], "error": error[:ERROR_MAX]}
    with store.writes() as tx:
        _quick_commit(tx, store.dialect)
        if give_up or job.attempts >= job.max_attempts:
            tx.run(_GIVE_UP, {**held, "now": now})
            return FAILED
        tx.run(_AGAIN, {**held, "run_at": now + backoff(job.attempts)})
    return QUEUED


def counts(store: Store) -> dict[str, dict[str, int]]:
    """Jobs per kind and state: ``{"email": {"queued": 3, "done": 120, …}, …}``."""
    jobs = Job.__table__.c
    with store.read() as s:
        rows = s.execute(select(jobs.kind, jobs.state, func.count()).group_by(jobs.kind, jobs.state)).all()
    result: dict[str, dict[str, int]] = {}
    for kind, state, n in rows:
        result.setdefault(kind, dict.fromkeys(STATES, 0))[state] = n
    return result


class NotFailed(Exception):
    """A job asked to be retried that is not failed (or does not exist); the message says which."""


def retry(store: Store, job_id: int) -> None:
    """Queue a failed job again, due now, with its attempts counted afresh."""
    jobs = Job.__table__
    with store.writes(direct=False) as tx:
        rows = tx.rows(_retried(jobs.c.id == job_id), {"now": utcnow()})
        if not rows:
            found = tx.rows(select(jobs.c.state).where(jobs.c.id == job_id), {})
            if not found:
                raise NotFailed(f"there is no job {job_id}.")
            raise NotFailed(f"job {job_id} is {found[0]['state']}, not failed: only a failed job is queued again.")


def retry_failed(store: Store) -> list[int]:
    """Queue every failed job again; their ids."""
    with store.writes(direct=False) as tx:
        return sorted(row["id"] for row in tx.rows(_retried(), {"now": utcnow()}))


def _retried(*where: Any) -> Any:
    jobs = Job.__table__
    return (update(jobs).where(jobs.c.state == FAILED, *where)
            .values(state=QUEUED, attempts=0, run_at=bindparam("now"), finished_at=None, locked_by="")
            .returning(jobs.c.id))
