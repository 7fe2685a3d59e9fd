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
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from flask import Flask

log = logging.getLogger(__name__)

HEARTBEAT = "leadgate.export_heartbeat"
#: Seconds a refused export is told to wait: about what a million-lead export takes.
RETRY_AFTER_SECONDS = 30
#: Blocks (of 1,000 leads) made ahead of the socket: enough to keep both threads busy,
#: few enough that memory stays flat.
AHEAD = 4
#: Seconds between the maker's looks at whether the reader has gone.
POLL_SECONDS = 0.1
#: Seconds the end of a response waits for its maker to stop (it stops after the block it is
#: making, or once the query gives its first rows).
STOP_WAIT_SECONDS = 10


class Slot:
    """One export's right to stream: a lock file held open until its holders are done.

    Two hold it while an export streams: the response, until the server closes it (the
    worker is free again), and the thread making the rows, until it ends (the database and
    the core are free again). The slot is let go when both are done.
    """

    def __init__(self, fd: int, path: Path):
        self.fd: int | None = fd
        self.path = path
        self._holders = 1
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            self._holders += 1

    def release(self) -> None:
        """One holder is done; the last lets the next export have the slot. From any thread."""
        with self._lock:
            self._holders -= 1
            if self._holders > 0:
                return
            fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops its flock

    def __del__(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


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
    server's ``close()`` at the end, early or not, stops the maker and waits for it. The slot
    is let go once the response is closed and the maker, if it started, has ended. A stream
    dropped without ``close()`` (never by a WSGI server, but a test client may) is closed when
    it is garbage collected: the maker holds no reference to it.
    """

    def __init__(self, app: Flask, blocks: Iterable[bytes], slot: Slot, niceness: int):
        self.app = app
        #: Handed to the maker in a list it empties, so that it drops the last reference.
        self.blocks: list[Iterable[bytes]] = [blocks]
        self.slot = slot
        self.niceness = niceness
        self.heartbeat: Callable[[], None] = app.extensions.get(HEARTBEAT) or (lambda: None)
        self.handoff: queue.Queue[object] = queue.Queue(maxsize=AHEAD)
        self.stop = threading.Event()
        #: The maker thread, once started.
        self.maker: list[threading.Thread] = []
        self._start = threading.Lock()
        self._close = weakref.finalize(self, _abandon, self.stop, self.maker, slot)

    def __iter__(self) -> Iterator[bytes]:
        with self._start:
            if self.maker or self.stop.is_set():
                raise RuntimeError("an export is streamed once")
            self.slot.hold()  # released by the maker as it ends
            self.maker.append(threading.Thread(target=_make, name="leadgate-export", daemon=True, args=(
                self.app, self.blocks, self.handoff, self.stop, self.slot, self.niceness)))
            self.maker[0].start()
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
            self._close()


def _abandon(stop: threading.Event, maker: list[threading.Thread], slot: Slot) -> None:
    """The reader is done: stop the maker and wait for it, and let go of the response's hold
    on the slot. Waiting costs at most the block being made; after it, nothing of the export
    is left running (no database connection in use when the app shuts down)."""
    stop.set()
    if maker and maker[0] is not threading.current_thread():
        maker[0].join(STOP_WAIT_SECONDS)
        if maker[0].is_alive():
            log.warning("an export's rows were still being made %s s after its reader left",
                        STOP_WAIT_SECONDS)
    slot.release()


def _make(app: Flask, holder: list[Iterable[bytes]], handoff: queue.Queue[object], stop: threading.Event,
          slot: Slot, niceness: int) -> None:
    """The maker thread: lower priority, then blocks into the queue until done or stopped."""
    try:
        lower_priority(niceness)
        with app.app_context():
            last = _made(holder.pop(), handoff, stop)
            if last is not None:
                _hand_over(last, handoff, stop)
    finally:
        slot.release()


def _made(blocks: Iterable[bytes], handoff: queue.Queue[object], stop: threading.Event) -> object:
    """Every block handed over, then DONE; the error that stopped them; None when stopped."""
    try:
        for block in blocks:
            if not _hand_over(block, handoff, stop):
                return None
    except Exception as e:
        log.exception("export failed after it started streaming")
        return e
    finally:
        # The rows' generator, and its database connection, end here, in this thread.
        del blocks
    return DONE


def _hand_over(item: object, handoff: queue.Queue[object], stop: threading.Event) -> bool:
    """Queue one item for the reader; False once the reader has gone."""
    while not stop.is_set():
        try:
            handoff.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False
