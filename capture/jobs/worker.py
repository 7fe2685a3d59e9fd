"""The worker: takes due jobs one at a time and runs each kind's handler.

A handler is ``handler(context, payload)``; returning means done, raising means the attempt
failed (tried again after a backoff, :class:`~capture.jobs.queue.GiveUp` to stop at once).
Handlers are named here, one line each, and imported when first needed, so the capture
service never imports what only a worker runs. ``leadgate worker`` runs :meth:`Worker.run`;
``leadgate serve --demo`` runs one beside the service. Each worker also queues the day's
periodic jobs (capture.jobs.schedule) and gives up jobs lost on their last attempt.

Tests and plugins add a kind by adding a line to :data:`HANDLERS` before the worker starts
(tests/jobs_worker.py does so in worker processes of its own).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask import Flask

from capture.db.models import utcnow
from capture.db.store import Store, get_store
from capture.jobs import queue, schedule

log = logging.getLogger(__name__)

#: Each kind of job and the function that runs it ("module:function").
HANDLERS: dict[str, str] = {
    "email": "capture.mail.delivery:deliver",
    "privacy_purge": "capture.privacy.retention:scheduled_purge",
}

Handler = Callable[["JobContext", dict[str, Any]], None]

#: Seconds between two looks for jobs lost on their last attempt (at most once per lease too).
SWEEP_SECONDS = 60


@dataclass
class JobContext:
    """What a handler may use: the app, its store, and things kept open between jobs (an SMTP
    connection), closed when the worker goes idle or stops."""

    app: Flask
    store: Store
    worker: str
    kept: dict[str, Any] = field(default_factory=dict)
    #: The job running now, and how long a claim holds it.
    job: queue.Claimed | None = None
    lease: timedelta = timedelta(seconds=300)

    def extend_lease(self) -> bool:
        """For a job that may outlast its lease (a purge of many leads): call it between steps
        to hold the job ``JOB_LEASE_SECONDS`` more. False when another worker took it meanwhile
        (this one was too slow): stop, and leave the work to that one."""
        return self.job is not None and queue.extend(self.store, self.job, self.worker, self.lease)

    def close(self) -> None:
        for thing in self.kept.values():
            try:
                getattr(thing, "close", lambda: None)()
            except Exception:  # closing a broken connection: nothing left to do with it
                log.debug("closing %r failed", thing, exc_info=True)
        self.kept.clear()


def handler(kind: str) -> Handler:
    module, _, name = HANDLERS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def worker_name() -> str:
    """Host and process: what ``locked_by`` shows for a running job."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Runs due jobs until stopped; several may run at once, on one host or many (PostgreSQL)."""

    def __init__(self, app: Flask, name: str | None = None):
        self.app = app
        self.name = name or worker_name()
        self.store = get_store(app)
        self.lease = timedelta(seconds=app.config["JOB_LEASE_SECONDS"])
        self.poll = app.config["WORKER_POLL_SECONDS"]
        self.context = JobContext(app, self.store, self.name, lease=self.lease)
        self.stopping = threading.Event()
        self.scheduled: date | None = None
        self.swept_at = -float("inf")

    def run_one(self) -> bool:
        """Claim and run one due job; whether there was one."""
        job = queue.claim(self.store, self.name, self.lease, tuple(HANDLERS))
        if job is None:
            return False
        started = time.perf_counter()
        self.context.job = job
        try:
            with self.app.app_context():
                handler(job.kind)(self.context, job.payload)
        except queue.GiveUp as e:
            queue.failed(self.store, job, self.name, str(e) or type(e).__name__, give_up=True)
            # The log names the error's type only: an SMTP error's text carries the recipient's
            # address, which erasure can take from the jobs table but not from a log.
            log.warning("job %s (%s) given up at attempt %s: %s (the error is in `leadgate jobs status`)",
                        job.id, job.kind, job.attempts, type(e).__name__)
        except Exception as e:
            state = queue.failed(self.store, job, self.name, f"{type(e).__name__}: {e}")
            then = "given up" if state == queue.FAILED else f"tried again in {queue.backoff(job.attempts)}"
            log.warning("job %s (%s) attempt %s/%s failed, %s: %s", job.id, job.kind, job.attempts,
                        job.max_attempts, then, type(e).__name__)
            self.context.close()  # a connection that failed is not reused
        else:
            queue.finish(self.store, job, self.name)
            log.info("job %s (%s) done in %.0f ms (attempt %s)", job.id, job.kind,
                     (time.perf_counter() - started) * 1000, job.attempts)
        finally:
            self.context.job = None
        return True

    def queue_periodic(self) -> None:
        """Queue today's periodic jobs, once a day per worker (the dedupe key makes it once a
        day for all of them)."""
        today = utcnow().date()
        if self.scheduled != today:
            with self.app.app_context():
                added = schedule.enqueue_today(self.store, self.app.config, utcnow())
            for job_id in added:
                log.info("job %s queued: today's periodic job", job_id)
            self.scheduled = today

    def sweep(self) -> None:
        """Give up the jobs whose worker died on their last attempt, now and then."""
        every = min(SWEEP_SECONDS, self.lease.total_seconds())
        if time.monotonic() - self.swept_at >= every:
            for_good = queue.give_up_lost(self.store)
            if for_good:
                log.warning("%s job(s) given up: their worker stopped during the last attempt", for_good)
            self.swept_at = time.monotonic()

    def run_pending(self) -> int:
        """Run jobs until none is due; how many ran (``leadgate worker --once``, tests)."""
        ran = 0
        try:
            while not self.stopping.is_set() and self.run_one():
                ran += 1
        finally:
            self.context.close()
        return ran

    def run(self) -> None:
        """Run jobs until :meth:`stop`; between jobs, wait ``WORKER_POLL_SECONDS`` when idle."""
        log.info("worker %s started (lease %s s, poll %s s)", self.name, self.lease.total_seconds(), self.poll)
        while not self.stopping.is_set():
            try:
                self.queue_periodic()
                self.sweep()
                self.run_pending()
            except Exception:  # the database is away: try again after the poll
                log.exception("worker %s could not take a job", self.name)
            self.stopping.wait(self.poll)
        log.info("worker %s stopped", self.name)

    def stop(self) -> None:
        self.stopping.set()
