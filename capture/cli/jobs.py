"""`leadgate worker` and `leadgate jobs status|retry`: the background jobs from a terminal
(capture.jobs; ``/workspace/jobs`` shows the same status)."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import ScriptInfo

from capture.cli.command import close_app, command, enter_app, group, option

#: Seconds between two looks at whether the process that started this worker is still there.
PARENT_CHECK_SECONDS = 0.5


@command(needs_app=False)
@option("--once", is_flag=True, help="Run the jobs due now, then exit (from cron, or to drain the queue).")
@option("--with-parent", "parent", type=int, hidden=True, metavar="PID",
        help="Stop, finishing the job in hand, when process PID is no longer this one's parent "
             "(`leadgate serve --demo` starts its worker so).")
@click.pass_context
def worker(ctx: click.Context, once: bool, parent: int | None) -> None:
    """Run the background jobs (emails, the daily retention purge) until stopped with Ctrl+C or
    SIGTERM; the job in hand is finished first. Run one or more on any host that reaches the
    database; each job runs once (at least once after a crash)."""
    from capture.jobs.worker import Worker

    app = worker_app(ctx)
    runner = Worker(app)
    with job_log(), stop_on_signals(runner.stop):
        if once:
            runner.queue_periodic()
            runner.sweep()
            ran = runner.run_pending()
            click.echo(f"{ran} job{'s' if ran != 1 else ''} run.", err=True)
            return
        if parent is not None:
            threading.Thread(target=watch_parent, args=(parent, runner.stop), daemon=True,
                             name="leadgate-worker-parent").start()
        runner.run()


def worker_app(ctx: click.Context) -> Flask:
    """The app of a worker: the service's own settings, secret key included (a worker signs the
    links its emails carry), unlike other commands (capture.cli.command.create_command_app)."""
    if current_app or ctx.find_object(ScriptInfo) is not None:
        return enter_app(ctx)
    from capture import create_app

    app = create_app()
    ctx.call_on_close(functools.partial(close_app, app))
    ctx.with_resource(app.app_context())
    return app


@contextmanager
def job_log() -> Iterator[None]:
    """Each job's line on standard error while the worker runs (unless logging is set up already)."""
    logger = logging.getLogger("capture.jobs")
    if logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def stop_on_signals(stop: Any) -> Iterator[None]:
    """SIGTERM or Ctrl+C: finish the job in hand, then exit; a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        click.echo(f"{signal.Signals(signum).name}: stopping after the job in hand "
                   "(send it again to stop at once).", err=True)
        signal.signal(signum, previous[signum] if signum == signal.SIGINT else signal.SIG_DFL)
        stop()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before)


def watch_parent(parent: int, stop: Any) -> None:
    """Stop the worker when its parent is gone: `leadgate serve --demo`'s worker ends with it."""
    stopped = threading.Event()
    while not stopped.wait(PARENT_CHECK_SECONDS):
        if os.getppid() != parent:
            stop()
            return


@group()
def jobs() -> None:
    """The background jobs: what is queued, running, done or failed, and failed ones retried."""


@jobs.command("status")
@option("--json", "as_json", is_flag=True, help="One JSON object: counts, the oldest queued job, "
                                                "jobs waiting to be retried and failed jobs.")
def jobs_status(as_json: bool) -> None:
    """Jobs per kind and state, the age of the oldest queued job, the jobs waiting for another
    attempt (and when), and the failed jobs with their attempts and last error."""
    from capture.analytics.formats import write_table
    from capture.db.store import get_store
    from capture.jobs.queue import STATES
    from capture.jobs.status import age, read_status

    status = read_status(get_store())
    if as_json:
        click.echo(json.dumps(status.as_json(), ensure_ascii=False))
        return
    if not status.counts:
        click.echo("No jobs yet.")
        return
    write_table(sys.stdout, ["kind", *STATES],
                [[kind, *(str(n[state]) for state in STATES)] for kind, n in sorted(status.counts.items())],
                [False, True, True, True, True])
    oldest = status.oldest_queued
    if oldest is None:
        click.echo("\nNothing is queued.")
    else:
        due = "due now" if oldest.run_at <= status.now else f"next attempt {when(oldest.run_at)}"
        click.echo(f"\nOldest queued job: {oldest.id} ({oldest.kind}), recorded {age(status.oldest_age() or 0)} "
                   f"ago, {due}.")
    if status.retrying:
        click.echo(f"\nWaiting to be tried again ({len(status.retrying)}):")
        write_table(sys.stdout, ["id", "kind", "attempts", "next attempt (UTC)", "last error"],
                    [[str(j.id), j.kind, f"{j.attempts}/{j.max_attempts}", when(j.run_at), one_line(j.last_error)]
                     for j in status.retrying], [True, False, True, False, False])
    if status.failed:
        click.echo(f"\nFailed ({len(status.failed)}), retry with `leadgate jobs retry ID` or `--all-failed`:")
        write_table(sys.stdout, ["id", "kind", "attempts", "failed at (UTC)", "last error"],
                    [[str(j.id), j.kind, f"{j.attempts}/{j.max_attempts}",
                      when(j.finished_at) if j.finished_at else "", one_line(j.last_error)] for j in status.failed],
                    [True, False, True, False, False])


def when(at: Any) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def one_line(error: str, limit: int = 120) -> str:
    text = " ".join(error.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@jobs.command("retry")
@click.argument("job_id", required=False, metavar="ID")
@option("--all-failed", is_flag=True, help="Queue every failed job again.")
def jobs_retry(job_id: str | None, all_failed: bool) -> None:
    """Queue the failed job ID again (the number `leadgate jobs status` shows), due now with its
    attempts counted afresh; or every failed job with --all-failed."""
    from capture.db.store import get_store
    from capture.jobs import queue

    if (job_id is None) == (not all_failed):
        raise click.ClickException("name one failed job's ID, or pass --all-failed (not both).")
    if all_failed:
        ids = queue.retry_failed(get_store())
        click.echo(f"{len(ids)} failed job{'s' if len(ids) != 1 else ''} queued again"
                   + (f": {', '.join(map(str, ids))}." if ids else "."))
        return
    assert job_id is not None
    if not job_id.isdigit():
        raise click.ClickException(f"ID is a job's number, as `leadgate jobs status` shows it; '{job_id}' is not one.")
    try:
        queue.retry(get_store(), int(job_id))
    except queue.NotFailed as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Job {job_id} queued again.")
