"""Nothing lost: a submission the database cannot take waits in an append-only spool file.

A visitor who is told "thanks" has a lead that is durable: committed to the database, or —
when the write fails with any SQLAlchemy error (SQLite locked past its busy timeout, disk full
or read-only, PostgreSQL down, tables missing) — written to the spool and fsync'd before the
answer. Only when the spool cannot be written either does the visitor get a 503 asking them
to try again.

The spool (``SPOOL_PATH``, default ``<instance>/spool.jsonl``) holds JSON lines, one object
per event, each carrying everything needed to replay it: a ``submission`` (every field of a
:class:`~capture.leads.submission.NewSubmission`, its ``uid`` and ``created_at``, and the consent words
themselves) or a ``download`` of a submission that was still spooled. A line is appended
with one ``write`` in append mode, flushed with ``fsync``, under an exclusive ``flock`` on
``<spool>.lock``, so the workers of one host can share the file. A write that fails halfway
(disk full) is cut back off, so the file never keeps half a line from a failure it reported.

Replaying (``leadgate spool replay``, or the background thread below) reads the lines in
order and stores each in its own transaction; ``record_submission`` is idempotent on the
uid, so a line replayed twice adds nothing. The spool file is never edited in place: once
the lines are committed, the lines still to keep (refused by the database, or not reached
because the database went away) and whatever was appended meanwhile are written to
``<spool>.tmp``, fsync'd and renamed over the spool, under the lock. A replay that dies
midway leaves the spool as it was, and the next replay finds its rows already stored. Lines
that are not valid JSON (a crash or power loss midway through a write) are moved to
``<spool>.corrupt`` for a person to read, and counted in every report. One replay runs at a
time (``<spool>.replay.lock``); appending never waits for a replay, only for its final
rename.

Retrying in the background: each worker process starts a daemon thread when it spools a
line (or, at its first request, finds the spool not empty), replays every
``SPOOL_RETRY_SECONDS`` and stops once the spool is empty. It starts lazily, in a request,
so never before gunicorn forks; it costs nothing while the database is healthy; and, unlike
a replay piggy-backed on the next successful write, it empties the spool even when no
visitor comes after the outage. Several threads (one per worker) are safe: a replay that
finds another one running skips its turn.

Download links sign the submission's uid (see :mod:`capture.web.links`), so a link works while
its submission is only in the spool: the file is served and the download is spooled too, to
be recorded after the submission.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from capture.db.models import utcnow
from capture.db.store import Store, get_store
from capture.leads.downloads import record_download
from capture.leads.submission import NewSubmission, record_submission
from capture.scoring.apply import Scoring, get_scoring
from capture.spool.file import Replay, SpoolError, SpoolFile, reason
from capture.spool.lines import download_line, submission_line

EXTENSION = "leadgate.spool"
#: The name of each process's replaying thread.
THREAD_NAME = "leadgate-spool-replay"

log = logging.getLogger(__name__)


class Spool:
    """The app's way to keep every lead: the database first, else the spool, replayed later."""

    def __init__(self, store: Store, path: str | os.PathLike[str], retry_seconds: float,
                 scoring: Callable[[], Scoring]):
        self.store = store
        #: The app's scoring, read when first needed (a post scores its lead as it is stored).
        self.scoring = scoring
        self.file = SpoolFile(path)
        self.retry_seconds = retry_seconds
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._checked_pid: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def save(self, data: NewSubmission) -> bool:
        """Store a submission, or spool it when the database cannot take it; False when
        spooled. SpoolError when neither could keep it."""
        try:
            record_submission(self.store, data, self.scoring())
            return True
        except SQLAlchemyError as e:
            why = reason(e)
        try:
            self.file.append(submission_line(data))
        except SpoolError as e:
            log.error("submission %s NOT kept: the database failed (%s) and %s", data.uid, why, e)
            raise
        log.warning("database could not take submission %s (%s): kept in the spool %s",
                    data.uid, why, self.file.path)
        self.retry()
        return False

    def record_download(self, submission_uid: uuid.UUID, resource_id: str, *, user_agent: str,
                        ip_prefix: str | None) -> bool:
        """Log a download; False when neither the database nor the spool knows the submission
        (the lead was erased). A database error for a submission not in the spool propagates."""
        visit = {"submission_uid": submission_uid, "resource_id": resource_id,
                 "user_agent": user_agent, "ip_prefix": ip_prefix}
        try:
            if record_download(self.store, **visit) is not None:
                return True
        except SQLAlchemyError:
            if not self.file.holds(submission_uid):
                raise
        else:
            if not self.file.holds(submission_uid):
                # A replay may have stored it between the two looks.
                return record_download(self.store, **visit) is not None
        try:
            self.file.append(download_line(at=utcnow(), **visit))
            self.retry()
        except SpoolError as e:
            log.warning("download of spooled submission %s not recorded: %s", submission_uid, e)
        return True

    def replay(self, *, wait: bool = True) -> Replay:
        report = self.file.replay(self.store, self.scoring(), wait=wait)
        if report.stored or report.downloads:
            log.info("replayed from the spool: %d submission(s), %d download(s)",
                     report.stored, report.downloads)
        if report.kept:
            log.warning("%d line(s) stay in the spool %s: %s", report.kept, self.file.path, report.error)
        return report

    def retry_if_pending(self) -> None:
        """Once per process, at its first request: pick up lines left by a previous run."""
        if self._checked_pid != os.getpid():
            self._checked_pid = os.getpid()
            if self.file.pending():
                self.retry()

    def retry(self) -> None:
        """Make sure this process has a thread replaying the spool (not when disabled)."""
        if self.retry_seconds <= 0:
            return
        with self._lock:
            # A thread object copied by a fork is not running in this process.
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._stop.clear()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME,
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """End the background thread (at shutdown, and between tests)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            try:
                self.replay(wait=False)
            except Exception:
                log.exception("replaying the spool %s failed", self.file.path)
            with self._lock:
                if not self.file.pending():
                    self._thread = None
                    return


def get_spool(app: Flask | None = None) -> Spool:
    return (app or current_app).extensions[EXTENSION]


def init_app(app: Flask) -> None:
    spool = Spool(get_store(app), app.config["SPOOL_PATH"], app.config["SPOOL_RETRY_SECONDS"],
                  lambda: get_scoring(app))
    app.extensions[EXTENSION] = spool
    app.before_request(spool.retry_if_pending)
