"""Exports kept apart from visitors: a few slots per host, and rows made at a lower CPU priority.

A sync gunicorn worker serves one request at a time, and a full export holds its worker for
the whole stream while making rows as fast as a core allows. Two of them used to take both
workers and both cores, and form posts waited in the listen queue until one finished. So:

- **Slots.** At most ``EXPORT_SLOTS`` exports stream at once on a host, and gunicorn runs that
  many workers on top of the visitors' (capture/gunicorn_conf.py): however many exports run,
  the visitors' workers are free. A slot is a lock file in the instance folder,
  ``export-slot-<n>.lock``, taken with ``flock``: shared by the workers of one host, and let
  go by the kernel when a worker dies, so a crash cannot leak one. The export that finds
  every slot taken is refused at once (503 with ``Retry-After``), before a byte is streamed.
- **Priority.** The rows are made in a thread of their own whose nice value is raised by
  ``EXPORT_NICENESS`` (Linux keeps a nice value per thread), and the worker's own thread
  only passes the blocks on. An unprivileged process can raise a nice value but never lower
  it again, so the value belongs to a thread that ends with the export: the worker serves
  its next request at its usual priority.
- **Heartbeat.** gunicorn ends a worker that has not reported for its ``timeout`` (30 s),
  and a sync worker does not report while it streams. Each block passed on reports, so an
  export that makes progress runs as long as it needs, and one that is stuck is still ended.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from flask import Flask, current_app

log = logging.getLogger(__name__)

HEARTBEAT = "leadgate.export_heartbeat"
#: Seconds a refused export is told to wait: about what a million-lead export takes.
RETRY_AFTER_SECONDS = 30
#: Blocks (of 1,000 leads) made ahead of the socket: enough to keep both threads busy,
#: few enough that memory stays flat.
AHEAD = 4
#: Seconds between the maker's looks at whether the reader has gone.
POLL_SECONDS = 0.1


class Slot:
    """One export's right to stream: a lock file held open until :meth:`release`."""

    def __init__(self, fd: int, path: Path):
        self.fd: int | None = fd
        self.path = path
        self._lock = threading.Lock()

    def release(self) -> None:
        """Let the next export have the slot; safe to call more than once, from any thread."""
        with self._lock:
            fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops its flock


def take_slot(folder: str | os.PathLike[str], slots: int) -> Slot | None:
    """A free slot of ``slots`` in ``folder``, or None when every one is taken."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, slots + 1):
        path = folder / f"export-slot-{n}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # flock, not fcntl's record locks: those belong to the process, so two threads
            # of one worker would both "hold" the same slot.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        return Slot(fd, path)
    return None


def set_heartbeat(app: Flask, notify: Callable[[], None]) -> None:
    """Tell exports how to report progress to gunicorn (the worker's ``notify``)."""
    app.extensions[HEARTBEAT] = notify


def lower_priority(niceness: int) -> None:
    """Raise the calling thread's nice value by ``niceness`` (Linux: per thread; elsewhere nothing)."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))
    except OSError as e:
        log.warning("export at the visitors' priority: cannot change the nice value (%s)", e)


class _Done:
    """The maker's last word after the last block."""


DONE = _Done()


class SlotStream:
    """An export's blocks, made by a lower-priority thread while it holds ``slot``.

    Given to the Response as its body: iterating hands the blocks over in order (an error
    while making them is raised here, so the stream ends cut short as before), and the
    server's ``close()`` at the end, early or not, stops the maker. The slot is let go once
    nothing more is read from the database: by ``close()`` when the maker never started,
    else by the maker as it ends.
    """

    def __init__(self, app: Flask, blocks: Iterable[bytes], slot: Slot, niceness: int):
        self.app = app
        self.blocks: Iterable[bytes] | None = blocks
        self.slot = slot
        self.niceness = niceness
        self.heartbeat: Callable[[], None] = app.extensions.get(HEARTBEAT) or (lambda: None)
        self.handoff: queue.Queue[object] = queue.Queue(maxsize=AHEAD)
        self.stop = threading.Event()
        self.maker: threading.Thread | None = None
        self._start = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        with self._start:
            if self.maker is not None or self.stop.is_set():
                raise RuntimeError("an export is streamed once")
            self.maker = threading.Thread(target=self._make, name="leadgate-export", daemon=True)
            self.maker.start()
        while True:
            item = self.handoff.get()
            if item is DONE:
                return
            if isinstance(item, BaseException):
                raise item
            self.heartbeat()
            yield item  # type: ignore[misc]

    def close(self) -> None:
        with self._start:
            self.stop.set()
            if self.maker is None:
                self.blocks = None
                self.slot.release()

    def _make(self) -> None:
        """The maker thread: lower priority, then blocks into the queue until done or stopped."""
        try:
            lower_priority(self.niceness)
            with self.app.app_context():
                last = self._made()
                if last is not None:
                    self._hand_over(last)
        finally:
            self.slot.release()

    def _made(self) -> object:
        """Every block handed over, then DONE; the error that stopped them; None when stopped."""
        blocks, self.blocks = self.blocks, None
        try:
            for block in blocks or ():
                if not self._hand_over(block):
                    return None
        except Exception as e:
            log.exception("export failed after it started streaming")
            return e
        finally:
            # The rows' generator, and its database connection, end here, in this thread.
            del blocks
        return DONE

    def _hand_over(self, item: object) -> bool:
        """Queue one item for the reader; False once the reader has gone."""
        while not self.stop.is_set():
            try:
                self.handoff.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False


def export_settings() -> tuple[int, int, str]:
    """The current app's slot count, niceness and the folder of the slot files."""
    config = current_app.config
    return config["EXPORT_SLOTS"], config["EXPORT_NICENESS"], current_app.instance_path
