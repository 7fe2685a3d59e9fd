"""Nothing lost: a submission the database cannot take waits in an append-only spool file.

A visitor who is told "thanks" has a lead that is durable: committed to the database, or —
when the write fails with any SQLAlchemy error (SQLite locked past its busy timeout, disk full
or read-only, PostgreSQL down, tables missing) — written to the spool and fsync'd before the
answer. Only when the spool cannot be written either does the visitor get a 503 asking them
to try again.

The spool (``SPOOL_PATH``, default ``<instance>/spool.jsonl``) holds JSON lines, one object
per event, each carrying everything needed to replay it: a ``submission`` (every field of a
:class:`~capture.store.NewSubmission`, its ``uid`` and ``created_at``, and the consent words
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

Download links sign the submission's uid (see :mod:`capture.links`), so a link works while
its submission is only in the spool: the file is served and the download is spooled too, to
be recorded after the submission.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from flask import Flask, current_app
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from capture.catalog import ConsentText
from capture.db.models import utcnow
from capture.db.store import Store, get_store
from capture.leads.downloads import has_download, has_submission, record_download
from capture.leads.submission import NewSubmission, record_submission

EXTENSION = "leadgate.spool"
FORMAT = 1
SUBMISSION = "submission"
DOWNLOAD = "download"

#: Errors that say the database cannot be reached or written at all: a replay stops at the
#: first one and keeps the rest for the next try. Other errors refuse one line only.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)

log = logging.getLogger(__name__)


class SpoolError(Exception):
    """The spool cannot be written either: nothing was kept, the visitor must try again."""


class CorruptLine(ValueError):
    """A spool line that is not a complete event: set aside, never replayed."""


# --- Lines ---------------------------------------------------------------------------------


def _encode(record: dict[str, Any]) -> bytes:
    # ASCII only, so a line never holds a raw newline or bytes a reader could mis-decode.
    text = json.dumps({"v": FORMAT, **record}, ensure_ascii=True, separators=(",", ":"))
    return text.encode() + b"\n"


def submission_line(data: NewSubmission) -> bytes:
    """A submission as one spool line: every field record_submission needs."""
    record = dataclasses.asdict(data)
    record.update(uid=str(data.uid), created_at=data.created_at.isoformat())
    return _encode({"kind": SUBMISSION, **record})


def download_line(submission_uid: uuid.UUID, resource_id: str, at: datetime, user_agent: str,
                  ip_prefix: str | None) -> bytes:
    return _encode({"kind": DOWNLOAD, "submission_uid": str(submission_uid),
                    "resource_id": resource_id, "created_at": at.isoformat(),
                    "user_agent": user_agent, "ip_prefix": ip_prefix})


@dataclass(frozen=True)
class SpooledDownload:
    """A download served while its submission was in the spool, to be recorded after it."""

    submission_uid: uuid.UUID
    resource_id: str
    created_at: datetime
    user_agent: str
    ip_prefix: str | None


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without a time zone: {text}")
    return moment


def decode(raw: bytes) -> NewSubmission | SpooledDownload:
    """The event on a spool line; CorruptLine when it is not one we wrote whole."""
    try:
        record = json.loads(raw)
        if not raw.endswith(b"\n") or record.pop("v") != FORMAT:
            raise ValueError("incomplete line or unknown format")
        kind = record.pop("kind")
        record["created_at"] = _aware(record["created_at"])
        if kind == SUBMISSION:
            return NewSubmission(**{
                **record, "uid": uuid.UUID(record["uid"]), "terms": ConsentText(**record["terms"]),
                "marketing": ConsentText(**record["marketing"])})
        if kind == DOWNLOAD:
            uid = uuid.UUID(record.pop("submission_uid"))
            return SpooledDownload(submission_uid=uid, **record)
        raise ValueError(f"unknown kind {kind!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CorruptLine(str(e)) from None


# --- The file ------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    """Make a file's creation, rename or removal itself survive a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_private(path: Path, flags: int) -> int:
    """Spool files hold personal data: readable by the service's user only."""
    return os.open(path, flags, 0o600)


@contextmanager
def _flock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on a lock file, shared by every process and thread; False if busy."""
    fd = _open_private(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@dataclass
class Replay:
    """What one replay did; ``kept`` lines stay in the spool for the next one."""

    stored: int = 0
    already_stored: int = 0
    downloads: int = 0
    kept: int = 0
    corrupt: int = 0
    busy: bool = False
    error: str | None = None

    def describe(self, spool: SpoolFile) -> str:
        if self.busy:
            return "Another replay of the spool is running; try again when it has finished."
        lines = [f"Stored {self.stored} submission(s) and {self.downloads} download(s) from "
                 f"{spool.path}; {self.already_stored} submission(s) were already stored."]
        if self.kept:
            reason = f": {self.error}" if self.error else ""
            lines.append(f"{self.kept} line(s) stay in the spool, the database did not take them{reason}.")
        if self.corrupt:
            lines.append(f"{self.corrupt} unreadable line(s) set aside in {spool.corrupt_path}.")
        return "\n".join(lines)


@dataclass
class SpoolStatus:
    submissions: int = 0
    downloads: int = 0
    unreadable: int = 0
    oldest: datetime | None = None
    set_aside: int = 0

    def describe(self, spool: SpoolFile) -> str:
        if not (self.submissions or self.downloads or self.unreadable):
            lines = [f"The spool {spool.path} is empty: every lead is in the database."]
        else:
            oldest = f", the oldest from {self.oldest.isoformat()}" if self.oldest else ""
            lines = [f"The spool {spool.path} holds {self.submissions} submission(s) and "
                     f"{self.downloads} download(s) waiting for the database{oldest}. "
                     "Run `leadgate spool replay` to store them."]
            if self.unreadable:
                lines.append(f"{self.unreadable} line(s) are unreadable; "
                             "a replay will set them aside.")
        if self.set_aside:
            lines.append(f"{self.set_aside} unreadable line(s) were set aside in "
                         f"{spool.corrupt_path}: read them and re-enter what you can by hand.")
        return "\n".join(lines)


class SpoolFile:
    """The spool on disk: appending, looking up, and replaying into a store."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.lock_path = self._beside("lock")
        self.replay_lock_path = self._beside("replay.lock")
        self.corrupt_path = self._beside("corrupt")
        self.tmp_path = self._beside("tmp")

    def _beside(self, suffix: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{suffix}")

    def append(self, line: bytes) -> None:
        """Append one line durably (written whole, fsync'd) or raise SpoolError."""
        try:
            with _flock(self.lock_path):
                fd = _open_private(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
                try:
                    size = os.fstat(fd).st_size
                    # After a crash midway through a line, start on a line of our own.
                    data = line if size == 0 or os.pread(fd, 1, size - 1) == b"\n" else b"\n" + line
                    try:
                        if os.write(fd, data) != len(data):
                            raise OSError(errno.ENOSPC, "short write")
                        os.fsync(fd)
                    except OSError:
                        with suppress(OSError):
                            os.ftruncate(fd, size)
                        raise
                finally:
                    os.close(fd)
                if size == 0:
                    _fsync_dir(self.path.parent)
        except OSError as e:
            raise SpoolError(f"cannot write to the spool {self.path}: {e}") from e

    def pending(self) -> bool:
        """Whether the spool has anything in it (a stat, cheap enough for every check)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _lines(self) -> Iterator[bytes]:
        try:
            with open(self.path, "rb") as f:
                yield from f
        except FileNotFoundError:
            return

    def holds(self, submission_uid: uuid.UUID) -> bool:
        """Whether a submission is waiting in the spool (read without the lock: the spool
        is only ever appended to or replaced whole)."""
        needle = str(submission_uid).encode()
        for raw in self._lines():
            if needle in raw:
                with suppress(CorruptLine):
                    event = decode(raw)
                    if isinstance(event, NewSubmission) and event.uid == submission_uid:
                        return True
        return False

    def status(self) -> SpoolStatus:
        status = SpoolStatus()
        for raw in self._lines():
            try:
                event = decode(raw)
            except CorruptLine:
                status.unreadable += 1
                continue
            if isinstance(event, NewSubmission):
                status.submissions += 1
                if status.oldest is None or event.created_at < status.oldest:
                    status.oldest = event.created_at
            else:
                status.downloads += 1
        with suppress(FileNotFoundError), open(self.corrupt_path, "rb") as f:
            status.set_aside = sum(1 for _ in f)
        return status

    def replay(self, store: Store, *, wait: bool = True) -> Replay:
        """Store every spooled event; drop a line only once its row is committed."""
        try:
            with _flock(self.replay_lock_path, wait=wait) as mine:
                if not mine:
                    return Replay(busy=True)
                with _flock(self.lock_path):
                    try:
                        f = open(self.path, "rb")
                    except FileNotFoundError:
                        return Replay()
                    size = os.fstat(f.fileno()).st_size
                with f:
                    return self._replay_from(f, size, store)
        except OSError as e:
            raise SpoolError(f"cannot replay the spool {self.path}: {e}") from e

    def _replay_from(self, f: IO[bytes], size: int, store: Store) -> Replay:
        report = Replay()
        kept: list[bytes] = []
        corrupt: list[bytes] = []
        waiting: set[uuid.UUID] = set()
        done = 0
        while done < size:
            raw = f.readline()
            if not raw:
                break
            try:
                event = decode(raw)
            except CorruptLine:
                corrupt.append(raw if raw.endswith(b"\n") else raw + b"\n")
                done = f.tell()
                continue
            try:
                if isinstance(event, NewSubmission):
                    self._ingest_submission(store, event, report)
                elif not self._ingest_download(store, event, waiting, report):
                    kept.append(raw)
            except UNAVAILABLE as e:
                report.error = _reason(e)
                break
            except SQLAlchemyError as e:
                report.error = _reason(e)
                kept.append(raw)
                if isinstance(event, NewSubmission):
                    waiting.add(event.uid)
            done = f.tell()
        report.corrupt = len(corrupt)
        if corrupt:
            self._set_aside(corrupt)
        if done or kept or corrupt:
            report.kept = len(kept) + self._rewrite(f, done, kept)
        else:
            f.seek(0)
            report.kept = sum(1 for _ in f)
        return report

    @staticmethod
    def _ingest_submission(store: Store, data: NewSubmission, report: Replay) -> None:
        if has_submission(store, data.uid):
            report.already_stored += 1
            return
        record_submission(store, data)
        report.stored += 1

    @staticmethod
    def _ingest_download(store: Store, event: SpooledDownload, waiting: set[uuid.UUID],
                         report: Replay) -> bool:
        """True when the line is done with: recorded, or its submission is gone for good.

        Only one replay runs at a time, so looking before recording cannot race another replay.
        """
        if has_download(store, event.submission_uid, event.created_at):
            return True
        recorded = record_download(store, 
            submission_uid=event.submission_uid, resource_id=event.resource_id,
            user_agent=event.user_agent, ip_prefix=event.ip_prefix, at=event.created_at)
        if recorded is not None:
            report.downloads += 1
            return True
        if event.submission_uid in waiting:
            return False
        log.info("spooled download of submission %s dropped: the submission is not stored",
                 event.submission_uid)
        return True

    def _set_aside(self, lines: list[bytes]) -> None:
        fd = _open_private(self.corrupt_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        log.warning("%d unreadable line(s) of the spool set aside in %s", len(lines), self.corrupt_path)

    def _rewrite(self, f: IO[bytes], done: int, kept: list[bytes]) -> int:
        """Replace the spool by the kept lines and everything from ``done`` on (lines not
        reached, and lines appended during the replay); the number of those lines."""
        with _flock(self.lock_path):
            f.seek(done)
            fd = _open_private(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            with open(fd, "wb") as tmp:
                tmp.writelines(kept)
                shutil.copyfileobj(f, tmp)
                tmp.flush()
                os.fsync(tmp.fileno())
                empty = tmp.tell() == 0
            f.seek(done)
            rest = sum(1 for _ in f)
            if empty:
                os.unlink(self.tmp_path)
                self.path.unlink()
            else:
                os.replace(self.tmp_path, self.path)
            _fsync_dir(self.path.parent)
        return rest


def _reason(e: SQLAlchemyError) -> str:
    """The database's own words, without the statement and its parameters (personal data)."""
    orig = getattr(e, "orig", None)
    return f"{type(e).__name__}: {orig if orig is not None else e}".strip()


# --- The service ---------------------------------------------------------------------------


class Spool:
    """The app's way to keep every lead: the database first, else the spool, replayed later."""

    def __init__(self, store: Store, path: str | os.PathLike[str], retry_seconds: float):
        self.store = store
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
            record_submission(self.store, data)
            return True
        except SQLAlchemyError as e:
            reason = _reason(e)
        try:
            self.file.append(submission_line(data))
        except SpoolError as e:
            log.error("submission %s NOT kept: the database failed (%s) and %s", data.uid, reason, e)
            raise
        log.warning("database could not take submission %s (%s): kept in the spool %s",
                    data.uid, reason, self.file.path)
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
        report = self.file.replay(self.store, wait=wait)
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
                self._thread = threading.Thread(target=self._run, name="leadgate-spool-replay",
                                                daemon=True)
                self._thread.start()

    @property
    def retrying(self) -> bool:
        """Whether this process has a thread replaying the spool."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

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
    spool = Spool(get_store(app), app.config["SPOOL_PATH"], app.config["SPOOL_RETRY_SECONDS"])
    app.extensions[EXTENSION] = spool
    app.before_request(spool.retry_if_pending)
