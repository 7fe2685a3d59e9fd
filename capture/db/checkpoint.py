"""The service's own copy of the SQLite WAL into the database file, off the request path."""

from __future__ import annotations

import logging
import os
import threading

from sqlalchemy import Engine

#: Seconds from a write to the checkpoint of the SQLite WAL.
SQLITE_CHECKPOINT_SECONDS = 0.02

log = logging.getLogger(__name__)


class Checkpointer(threading.Thread):
    """Copies the SQLite WAL into the database file, off the request path: 20 ms after a
    write, in small steps.

    Left to SQLite, the commit that takes the WAL past 1,000 pages does the copy itself, and
    every hundredth visitor would wait for a copy and an fsync; copying from the request
    thread blocks the worker through the copy's fsyncs (docs/performance.md measures both).
    A PASSIVE checkpoint neither waits for nor blocks writers and readers. An idle service
    does not wake up for it.
    """

    def __init__(self, engine: Engine, seconds: float = SQLITE_CHECKPOINT_SECONDS):
        super().__init__(name="leadgate-sqlite-checkpoint", daemon=True)
        self.pid = os.getpid()
        self.engine = engine
        self.seconds = seconds
        self.stopped = threading.Event()
        self.written = threading.Event()

    def nudge(self) -> None:
        """A write was committed: checkpoint within ``seconds``."""
        self.written.set()

    def run(self) -> None:
        failing = False
        while True:
            self.written.wait()
            if self.stopped.wait(self.seconds):  # let the writes of the next moments gather
                return
            self.written.clear()
            if self.stopped.is_set():  # a stop() between the wait and the clear: its wake-up is gone
                return
            try:
                pooled = self.engine.raw_connection()
                try:
                    pooled.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    pooled.close()
            except Exception as e:  # noqa: BLE001 - the next round, or SQLite itself, catches up
                if not failing:
                    log.warning("SQLite checkpoints fail (tried again after the next write): %s", e)
                failing = True
            else:
                if failing:
                    log.info("SQLite checkpoints work again")
                failing = False

    def stop(self) -> None:
        self.stopped.set()
        self.written.set()
        self.join(timeout=5)

