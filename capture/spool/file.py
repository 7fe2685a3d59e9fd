"""The spool file: appended under a lock and fsync'd, replayed in order, never edited in place.

How it keeps every line, and how a replay rewrites it, is told in capture.spool.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from capture.db.store import Store
from capture.scoring.apply import Scoring
from capture.leads.downloads import has_download, has_submission, record_download
from capture.leads.merge import email_key
from capture.leads.submission import NewSubmission, record_submission
from capture.mail.outbox import MailSettings
from capture.spam import folder
from capture.spool.lines import CorruptLine, SpooledDownload, decode

#: Errors that say the database cannot be reached or written at all: a replay stops at the
#: first one and keeps the rest for the next try. Other errors refuse one line only.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)

log = logging.getLogger("capture.spool")


#: Whether a spooled submission's person was erased after it was made (capture.privacy.suppression).
Suppressed = Callable[[NewSubmission], bool]


class SpoolError(Exception):
    """The spool cannot be written either: nothing was kept, the visitor must try again."""


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
    #: Posts held as spam, put (back) in the spam folder.
    held: int = 0
    downloads: int = 0
    #: Submissions of people erased after they were made (capture.privacy.suppression): dropped.
    suppressed: int = 0
    kept: int = 0
    corrupt: int = 0
    busy: bool = False
    error: str | None = None

    def describe(self, spool: SpoolFile) -> str:
        if self.busy:
            return "Another replay of the spool is running; try again when it has finished."
        lines = [f"Stored {self.stored} submission(s) and {self.downloads} download(s) from "
                 f"{spool.path}; {self.already_stored} submission(s) were already stored."]
        if self.held:
            lines.append(f"{self.held} post(s) held as spam went to the spam folder, not to the leads.")
        if self.suppressed:
            lines.append(f"{self.suppressed} submission(s) of people erased since they were made were "
                         "dropped, not stored (the suppression list).")
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
    #: Submissions of people erased since they were made: a replay drops them.
    suppressed: int = 0

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
            if self.suppressed:
                lines.append(f"{self.suppressed} submission(s) are of people erased since they were "
                             "made: a replay drops them, it does not store them.")
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

    def raw_lines(self) -> Iterator[bytes]:
        """The spool's lines as written, read without the lock (the spool is only ever appended
        to or replaced whole)."""
        return self._lines()

    def _lines(self) -> Iterator[bytes]:
        try:
            with open(self.path, "rb") as f:
                yield from f
        except FileNotFoundError:
            return

    def find(self, submission_uid: uuid.UUID) -> NewSubmission | None:
        """The submission of this uid waiting in the spool, if it is there (read without the
        lock: the spool is only ever appended to or replaced whole)."""
        needle = str(submission_uid).encode()
        for raw in self._lines():
            if needle in raw:
                with suppress(CorruptLine):
                    event = decode(raw)
                    if isinstance(event, NewSubmission) and event.uid == submission_uid:
                        return event
        return None

    def holds(self, submission_uid: uuid.UUID) -> bool:
        """Whether a submission is waiting in the spool."""
        return self.find(submission_uid) is not None

    def posted_since(self, moment: datetime) -> set[str]:
        """The addresses (email keys) of the submissions waiting here made at or after
        ``moment``: people active then, whom a retention purge must keep (read without the lock)."""
        if not self.pending():
            return set()
        posted = set()
        for raw in self._lines():
            with suppress(CorruptLine):
                event = decode(raw)
                if isinstance(event, NewSubmission) and event.created_at >= moment:
                    posted.add(email_key(event.email))
        return posted

    def status(self, suppressed: Suppressed | None = None) -> SpoolStatus:
        """What waits; with ``suppressed``, how many submissions a replay would drop."""
        status = SpoolStatus()
        for raw in self._lines():
            try:
                event = decode(raw)
            except CorruptLine:
                status.unreadable += 1
                continue
            if isinstance(event, NewSubmission):
                status.submissions += 1
                if suppressed is not None and suppressed(event):
                    status.suppressed += 1
                if status.oldest is None or event.created_at < status.oldest:
                    status.oldest = event.created_at
            else:
                status.downloads += 1
        with suppress(FileNotFoundError), open(self.corrupt_path, "rb") as f:
            status.set_aside = sum(1 for _ in f)
        return status

    def replay(self, store: Store, scoring: Scoring, *, wait: bool = True,
               suppressed: Suppressed | None = None, mail: MailSettings | None = None) -> Replay:
        """Store every spooled event; drop a line only once its row is committed, or when
        ``suppressed`` says its person was erased after it was made."""
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
                    return self._replay_from(f, size, store, scoring, suppressed, mail)
        except OSError as e:
            raise SpoolError(f"cannot replay the spool {self.path}: {e}") from e

    def _replay_from(self, f: IO[bytes], size: int, store: Store, scoring: Scoring,
                     suppressed: Suppressed | None, mail: MailSettings | None) -> Replay:
        report = Replay()
        kept: list[bytes] = []
        corrupt: list[bytes] = []
        waiting: set[uuid.UUID] = set()
        dropped: set[uuid.UUID] = set()
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
                if isinstance(event, NewSubmission) and suppressed is not None and suppressed(event):
                    report.suppressed += 1
                    dropped.add(event.uid)
                elif isinstance(event, NewSubmission):
                    self._ingest_submission(store, scoring, event, report, mail)
                elif event.submission_uid in dropped:
                    pass  # a download of a dropped submission goes with it
                elif not self._ingest_download(store, event, waiting, report):
                    kept.append(raw)
            except UNAVAILABLE as e:
                report.error = reason(e)
                break
            except SQLAlchemyError as e:
                report.error = reason(e)
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
    def _ingest_submission(store: Store, scoring: Scoring, data: NewSubmission, report: Replay,
                           mail: MailSettings | None) -> None:
        if data.spam.held:
            if folder.hold(store, data):
                report.held += 1
            else:
                report.already_stored += 1
            return
        if has_submission(store, data.uid):
            report.already_stored += 1
            return
        # Replays are rare and keep no visitor waiting: SQLAlchemy's own execution serves.
        record_submission(store, data, scoring, direct=False, mail=mail)
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

    def remove(self, person: Callable[[NewSubmission | SpooledDownload], bool], needles: tuple[bytes, ...]) -> int:
        """Rewrite the spool without a person's lines (erasure), as a replay rewrites it: a new
        file fsync'd and renamed over the old, under both locks, so no replay or append runs
        meanwhile. ``person`` picks their events; an unreadable line, here or set aside, goes
        when it holds one of ``needles`` (their address, lower-case). How many lines went."""
        try:
            with _flock(self.replay_lock_path), _flock(self.lock_path):
                return sum(self._without(path, person, needles) for path in (self.path, self.corrupt_path))
        except OSError as e:
            raise SpoolError(f"cannot rewrite the spool {self.path}: {e}") from e

    def _without(self, path: Path, person: Callable[[NewSubmission | SpooledDownload], bool],
                 needles: tuple[bytes, ...]) -> int:
        try:
            with open(path, "rb") as f:
                lines = f.readlines()
        except FileNotFoundError:
            return 0
        kept = []
        for raw in lines:
            try:
                gone = person(decode(raw))
            except CorruptLine:
                gone = any(needle in raw.lower() for needle in needles)
            if not gone:
                kept.append(raw)
        if len(kept) == len(lines):
            return 0
        fd = _open_private(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with open(fd, "wb") as tmp:
            tmp.writelines(kept)
            tmp.flush()
            os.fsync(tmp.fileno())
        if kept:
            os.replace(self.tmp_path, path)
        else:
            os.unlink(self.tmp_path)
            path.unlink()
        _fsync_dir(path.parent)
        return len(lines) - len(kept)

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


def reason(e: SQLAlchemyError) -> str:
    """The database's own words, without the statement and its parameters (personal data)."""
    orig = getattr(e, "orig", None)
    return f"{type(e).__name__}: {orig if orig is not None else e}".strip()
