"""Emails per second a worker delivers, against the SMTP sink's own ceiling measured in the same run.

    .venv/bin/python benchmarks/jobs.py [--emails 10000] [--database sqlite|postgresql|both] [--rounds 1]
                                        [--workers 1]

An SMTP sink (aiosmtpd on 127.0.0.1, in a process of its own, whose handler only counts) takes
every message. Then, for each round and database:

- **ceiling**: a plain ``smtplib`` client sends N messages over one connection to the sink,
  each the size of the worker's (the first email rendered by capture.mail.delivery.build): the
  most this sink takes from one sender on this machine;
- **worker**: N emails recorded as a form post records them (an ``emails`` row and an ``email``
  job each, for leads and posts made by ``leadgate sample``'s write paths) on a new SQLite file
  or a throwaway PostgreSQL database, then one worker (``Worker.run_pending``, what
  ``leadgate worker --once`` runs) claims, renders, sends and marks each one; with
  ``--workers N``, N worker processes share them (each with its own SMTP connection).

Printed: a line per measure, then per database the medians of messages/s and of the worker's
share of the ceiling measured just before it. Needs aiosmtpd, and capture.mail.delivery (the
``email`` handler): without it the benchmark says so and stops before measuring anything.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import smtplib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from live import POSTGRES_URL, PostgresUnavailable, free_port, postgres_database  # noqa: E402

SECRET_KEY = "benchmark-secret-key-0123456789abcdef0123"


def sink(port: int, counted: Any, ready: Any) -> None:
    """The SMTP sink: accept every message and count it (runs in a process of its own)."""
    from aiosmtpd.controller import Controller

    class Count:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with counted.get_lock():
                counted.value += 1
            return "250 OK"

    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


@contextmanager
def running_sink() -> Iterator[tuple[int, Any]]:
    port = free_port()
    context = multiprocessing.get_context("fork")
    counted, ready = context.Value("l", 0), context.Event()
    process = context.Process(target=sink, args=(port, counted, ready), daemon=True)
    process.start()
    if not ready.wait(20):
        raise SystemExit("the SMTP sink did not start")
    try:
        yield port, counted
    finally:
        process.terminate()
        process.join(10)


def ceiling(port: int, message: Any, n: int) -> float:
    """Messages/s a plain smtplib client gets into the sink over one connection."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for _ in range(n):
            client.send_message(message)
    return n / (time.perf_counter() - started)


def make_app(database_url: str, port: int, folder: Path, *, migrated: bool = False) -> Any:
    from capture import create_app
    from capture.db import migrate

    if not migrated:
        migrate.upgrade(database_url)
    return create_app({
        "DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "BASE_URL": "http://127.0.0.1:8000/",
        "CONTENT_DIR": str(ROOT / "content"), "SITE_DIR": None, "SPOOL_PATH": str(folder / "spool.jsonl"),
        "SMTP_URL": f"smtp://127.0.0.1:{port}", "MAIL_FROM": "Leadgate <news@example.com>",
        "EMAIL_DELIVERY": True, "RETENTION_PURGE": False, "EMAILS_PER_ADDRESS_PER_DAY": 1_000_000,
    })


def record_emails(app: Any, n: int) -> None:
    """N delivery emails and their jobs, for posts of leads made by ``leadgate sample``'s code."""
    from email.utils import make_msgid

    from sqlalchemy import func, insert, select, update

    from capture.analytics.sample import make_sample
    from capture.catalog import get_catalog
    from capture.db.models import Email, Job, Lead, Submission, utcnow
    from capture.db.store import get_store
    from capture.jobs import queue
    from capture.scoring.apply import get_scoring

    store = get_store(app)
    with app.app_context():
        while True:
            with store.read() as s:
                posts = s.execute(select(func.count()).select_from(Submission)).scalar_one()
            if posts >= n:
                break
            make_sample(store, get_catalog(), get_scoring(), count=max(100, (n - posts) // 2))
        with store.read() as s:
            rows = s.execute(select(Submission.id, Submission.lead_id, Submission.resource_id, Lead.email)
                             .join(Lead, Lead.id == Submission.lead_id).order_by(Submission.id).limit(n)).all()
        now = utcnow()
        with store.writes(direct=False) as tx:
            for submission_id, lead_id, resource_id, address in rows:
                [email] = tx.rows(insert(Email.__table__).returning(Email.__table__.c.id), {
                    "lead_id": lead_id, "submission_id": submission_id, "kind": "delivery",
                    "to_address": address, "resource_id": resource_id, "message_id": make_msgid(domain="example.com"),
                    "subject": "", "created_at": now, "sent_at": None, "job_id": None})
                job_id = queue.enqueue(tx, store.dialect, "email", {"email_id": email["id"]}, lead_id=lead_id)
                tx.run(update(Email.__table__).where(Email.__table__.c.id == email["id"]).values(job_id=job_id), {})
        with store.read() as s:
            assert s.execute(select(func.count()).select_from(Job).where(Job.state == "queued")).scalar_one() == n


def first_message(app: Any) -> Any:
    """The first recorded email as the worker would send it: the ceiling sends copies of it."""
    from sqlalchemy import select

    from capture.db.models import Email
    from capture.db.store import get_store
    from capture.mail import delivery

    with app.app_context(), get_store(app).read() as s:
        row = s.execute(delivery._LOAD.where(Email.id == s.execute(select(Email.id).limit(1)).scalar_one())
                        ).mappings().one()
        return delivery.build(row)


def worker_process(database_url: str, port: int, folder: str, ready: Any, ran: Any, go: Any) -> None:
    """A worker in a process of its own, with its own app: it starts when every one is ready."""
    from capture.jobs.worker import Worker

    app = make_app(database_url, port, Path(folder), migrated=True)
    with ready.get_lock():
        ready.value += 1
    go.wait()
    done = Worker(app).run_pending()
    with ran.get_lock():
        ran.value += done


def deliver_all(app: Any, counted: Any, n: int, workers: int, port: int, folder: Path) -> float:
    """Messages/s the workers deliver, all N checked as received and marked sent."""
    from sqlalchemy import func, select

    from capture.db.models import Email
    from capture.db.store import get_store

    before = counted.value
    context = multiprocessing.get_context("spawn")
    ready, ran, go = context.Value("l", 0), context.Value("l", 0), context.Event()
    processes = [context.Process(target=worker_process,
                                 args=(get_store(app).url, port, str(folder), ready, ran, go))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    while ready.value < workers:  # imports and apps made before the clock starts
        time.sleep(0.05)
    started = time.perf_counter()
    go.set()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    with get_store(app).read() as s:
        sent = s.execute(select(func.count()).select_from(Email).where(Email.sent_at.is_not(None))).scalar_one()
    if ran.value != n or sent != n or counted.value - before != n:
        raise SystemExit(f"the workers ran {ran.value} jobs, marked {sent} sent, the sink got {counted.value - before}; "
                         f"expected {n} each")
    return n / seconds


@contextmanager
def database(kind: str, folder: Path, postgres_url: str) -> Iterator[str]:
    if kind == "sqlite":
        path = folder / f"jobs-{time.monotonic_ns()}.db"
        yield f"sqlite:///{path}"
        return
    with postgres_database("leadgate_jobs_bench", postgres_url) as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=10_000, help="emails per measure (10000)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both",
                        help="where the jobs are queued (both)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of ceiling + worker per database (1)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the emails (1)")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help=f"PostgreSQL server ({POSTGRES_URL})")
    args = parser.parse_args()
    if not (1 <= args.emails <= 200_000 and 1 <= args.rounds <= 10 and 1 <= args.workers <= 16):
        parser.error("keep it bounded: --emails 1-200000, --rounds 1-10, --workers 1-16")
    if importlib.util.find_spec("aiosmtpd") is None:
        raise SystemExit("benchmarks/jobs.py needs aiosmtpd (pip install aiosmtpd, or the test extra).")
    if importlib.util.find_spec("capture.mail.delivery") is None:
        print("Skipped: capture.mail.delivery (the `email` jobs' handler) is not in this tree yet, so no "
              "worker can send an email. Run this again once the mail delivery is merged.")
        return
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="leadgate-jobs-bench-") as tmp, running_sink() as (port, counted):
        folder = Path(tmp)
        for round_no in range(1, args.rounds + 1):
            for kind in kinds:
                try:
                    with database(kind, folder, args.postgres_url) as url:
                        app = make_app(url, port, folder)
                        record_emails(app, args.emails)
                        message = first_message(app)
                        top = ceiling(port, message, args.emails)
                        rate = deliver_all(app, counted, args.emails, args.workers, port, folder)
                        from capture.db.store import get_store

                        get_store(app).dispose()
                except PostgresUnavailable as e:
                    print(f"{kind}: skipped ({e})")
                    continue
                results[kind].append((rate, rate / top))
                print(f"round {round_no} {kind:10} ceiling {top:8.0f} msg/s   {args.workers} worker(s) {rate:7.0f} msg/s   "
                      f"{rate / top:6.1%} of the ceiling   ({args.emails} messages of {len(bytes(message))} bytes)")
    print(f"\n{'database':10} {'worker msg/s':>12} {'share of ceiling':>17}   "
          f"(medians of {args.rounds} round(s), {args.workers} worker process(es))")
    for kind, measured in results.items():
        if measured:
            print(f"{kind:10} {statistics.median(r for r, _ in measured):12.0f} "
                  f"{statistics.median(s for _, s in measured):17.1%}")


if __name__ == "__main__":
    main()
