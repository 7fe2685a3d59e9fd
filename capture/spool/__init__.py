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

Posts held as spam (``data.spam.held``, capture.spam.verdict) take the same road to another
table: :meth:`Spool.save` puts them in the spam folder (capture.spam.folder), and when the
database fails they are spooled like any submission (the verdict is in the line) and the replay
puts them back in the folder, never in the leads. Their download link serves the file, as the
visitor's own eyes expect, but nothing is recorded: nothing of spam reaches the leads' data.

Purging the spam folder also lives here, in each process's background work, because this is
the one mechanism every way of serving shares: like the replay thread it starts in a request
(never before a fork), so it runs under gunicorn, the development server and the tests alike,
where the score refresher (capture.scoring.apply) runs only in gunicorn's workers; and it is
the spool that already owns "posts on their way to a table" in every process. A thread per
process wakes :data:`PURGE_FIRST_SECONDS` after the process's first request, then every
:data:`PURGE_EVERY_SECONDS` (a day), and deletes posts held more than SPAM_KEEP_DAYS days ago.
A purge is one DELETE by age: several processes purging at once, or a `leadgate spam purge`
beside them, each remove what is there and nothing twice.

Erased people (capture.privacy): a replay drops a submission made before its person's erasure
(capture.privacy.suppression), and an erasure rewrites the spool without the person's lines
(:meth:`Spool.forget`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from capture.db.models import utcnow
from capture.db.store import Store, get_store
from capture.leads.downloads import record_download
from capture.leads.submission import NewSubmission, record_submission
from capture.mail.outbox import MailSettings, get_mail_settings
from capture.scoring.apply import Scoring, get_scoring
from capture.spam import folder
from capture.spool.file import Replay, SpoolError, SpoolFile, reason
from capture.spool.lines import download_line, of_person, submission_line

EXTENSION = "leadgate.spool"
#: The name of each process's replaying thread.
THREAD_NAME = "leadgate-spool-replay"
#: The name of each process's thread that purges the spam folder.
PURGE_THREAD_NAME = "leadgate-spam-purge"
#: Seconds from a process's first request to its first purge of the spam folder: a starting
#: worker serves visitors first.
PURGE_FIRST_SECONDS = 600.0
#: Seconds between purges of the spam folder, in each process: about once a day.
PURGE_EVERY_SECONDS = 24 * 3600.0
#: Seconds before trying again a purge that failed (the database was down).
PURGE_RETRY_SECONDS = 3600.0

log = logging.getLogger(__name__)


class Spool:
    """The app's way to keep every lead: the database first, else the spool, replayed later."""

    def __init__(self, store: Store, path: str | os.PathLike[str], retry_seconds: float,
                 scoring: Callable[[], Scoring], spam_keep_days: int = 30,
                 secret: Callable[[], str] | None = None, *, mail: MailSettings | None = None):
        self.store = store
        #: The key of the suppression list (capture.privacy.suppression), read when first needed.
        self.secret = secret
        #: Posts held as spam longer than this many days are purged.
        self.spam_keep_days = spam_keep_days
        #: The app's scoring, read when first needed (a post scores its lead as it is stored).
        self.scoring = scoring
        #: The emails a stored post owes (capture.mail.outbox), also when a replay stores it.
        self.mail = mail
        self.file = SpoolFile(path)
        self.retry_seconds = retry_seconds
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._checked_pid: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._purger: threading.Thread | None = None
        self._pid_of_purger: int | None = None
        self._stop_purging = threading.Event()

    def save(self, data: NewSubmission) -> bool:
        """Store a submission (a post held as spam: in the spam folder), or spool it when the
        database cannot take it; False when spooled. SpoolError when neither could keep it."""
        try:
            if data.spam.held:
                folder.hold(self.store, data)
            else:
                record_submission(self.store, data, self.scoring(), mail=self.mail)
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
        (the lead was erased). A post held as spam is known, and nothing is logged for it.
        A database error for a submission not in the spool propagates."""
        visit = {"submission_uid": submission_uid, "resource_id": resource_id,
                 "user_agent": user_agent, "ip_prefix": ip_prefix}
        try:
            if self._recorded_or_held(visit):
                return True
        except SQLAlchemyError:
            spooled = self.file.find(submission_uid)
            if spooled is None:
                raise
        else:
            spooled = self.file.find(submission_uid)
            if spooled is None:
                # A replay may have stored it between the two looks.
                return self._recorded_or_held(visit)
        if spooled.spam.held:
            return True
        try:
            self.file.append(download_line(at=utcnow(), **visit))
            self.retry()
        except SpoolError as e:
            log.warning("download of spooled submission %s not recorded: %s", submission_uid, e)
        return True

    def _recorded_or_held(self, visit: dict[str, Any]) -> bool:
        """Record a download of a stored submission; True without recording for a post held
        in the spam folder; False when the database knows neither."""
        return (record_download(self.store, **visit) is not None
                or folder.is_held(self.store, visit["submission_uid"]))

    def is_suppressed(self, data: NewSubmission) -> bool:
        """Whether the person of a spooled post was erased after it was made: then it is dropped.
        KeyUnknown when the list is not empty and this process does not have its key."""
        from capture.privacy import suppression

        if self.secret is None:
            return False
        secret = suppression.known_key(self.store, self.secret)
        if secret is None:
            return False
        return suppression.is_suppressed(self.store, secret, data.email, data.created_at)

    def forget(self, email: str, submission_uids: set[uuid.UUID]) -> int:
        """Remove a person's lines from the spool (erasure): their submissions, and downloads of
        those or of ``submission_uids`` (their stored ones); how many lines went."""
        from capture.leads.merge import email_key

        key = email_key(email)
        # An unreadable line goes when it holds the key, as typed or as JSON escapes it.
        return self.file.remove(of_person(email, submission_uids),
                                (key.encode(), json.dumps(key).strip('"').encode()))

    def replay(self, *, wait: bool = True) -> Replay:
        report = self.file.replay(self.store, self.scoring(), wait=wait, suppressed=self.is_suppressed,
                                  mail=self.mail)
        if report.stored or report.downloads or report.held:
            log.info("replayed from the spool: %d submission(s), %d download(s), %d post(s) held as spam",
                     report.stored, report.downloads, report.held)
        if report.suppressed:
            log.info("%d spooled submission(s) of people erased since were dropped", report.suppressed)
        if report.kept:
            log.warning("%d line(s) stay in the spool %s: %s", report.kept, self.file.path, report.error)
        return report

    def tend(self) -> None:
        """Once per process, at its first request: pick up lines left by a previous run, and
        start purging the spam folder."""
        if self._checked_pid != os.getpid():
            self._checked_pid = os.getpid()
            if self.file.pending():
                self.retry()
            self.start_purging()

    def start_purging(self) -> None:
        """Make sure this process has its thread purging the spam folder once a day."""
        with self._lock:
            if self._purger is None or not self._purger.is_alive() or self._pid_of_purger != os.getpid():
                self._stop_purging.clear()
                self._pid_of_purger = os.getpid()
                self._purger = threading.Thread(target=self._purge_daily, name=PURGE_THREAD_NAME,
                                                daemon=True)
                self._purger.start()

    def purge_spam(self) -> int:
        """Remove the posts held longer than SPAM_KEEP_DAYS; how many."""
        purged = folder.purge(self.store, self.spam_keep_days)
        if purged:
            log.info("purged %d post(s) held as spam more than %d days ago", purged, self.spam_keep_days)
        return purged

    def _purge_daily(self) -> None:
        wait = PURGE_FIRST_SECONDS
        while not self._stop_purging.wait(wait):
            try:
                self.purge_spam()
                wait = PURGE_EVERY_SECONDS
            except SQLAlchemyError as e:
                log.warning("purging the spam folder failed (%s); trying again in %d s",
                            reason(e), PURGE_RETRY_SECONDS)
                wait = PURGE_RETRY_SECONDS
            except Exception:
                log.exception("purging the spam folder failed")
                wait = PURGE_RETRY_SECONDS

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
        """End the background threads (at shutdown, and between tests)."""
        self._stop.set()
        self._stop_purging.set()
        for thread in (self._thread, self._purger):
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
    from capture.privacy.suppression import secret_key

    spool = Spool(get_store(app), app.config["SPOOL_PATH"], app.config["SPOOL_RETRY_SECONDS"],
                  lambda: get_scoring(app), app.config["SPAM_KEEP_DAYS"], lambda: secret_key(app),
                  mail=get_mail_settings(app))
    app.extensions[EXTENSION] = spool
    app.before_request(spool.tend)
