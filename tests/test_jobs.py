"""The jobs as an operator meets them: `leadgate worker --once` runs what is due and logs each
job, failures come back after their backoff and are given up after their last attempt,
`leadgate jobs status` shows all of it, `leadgate jobs retry` queues a failed job again, and
each day has one retention purge job however many workers look."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from capture.db.models import Job, utcnow
from capture.jobs import queue, schedule, worker
from capture.jobs.queue import GiveUp

RAN: list[dict[str, Any]] = []
PURGES: list[dict[str, Any]] = []


def ok(context: worker.JobContext, payload: dict[str, Any]) -> None:
    RAN.append(payload)


def purge(context: worker.JobContext, payload: dict[str, Any]) -> None:
    PURGES.append(payload)


def refused(context: worker.JobContext, payload: dict[str, Any]) -> None:
    raise ConnectionRefusedError("the SMTP server refused: 451 try later")


def long_one(context: worker.JobContext, payload: dict[str, Any]) -> None:
    """A job in steps, holding its lease between them; what extend_lease said each time."""
    RAN.append({"held": context.extend_lease()})
    with context.store.writes() as tx:  # another worker took it meanwhile
        tx.run(update(Job.__table__).values(locked_by="other-host:1"), {})
    RAN.append({"held": context.extend_lease()})


def hopeless(context: worker.JobContext, payload: dict[str, Any]) -> None:
    raise GiveUp("550 no such mailbox")


@pytest.fixture(autouse=True)
def test_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' kinds of job beside the real ones, each a function of this module."""
    RAN.clear()
    PURGES.clear()
    monkeypatch.setitem(worker.HANDLERS, "test_ok", f"{__name__}:ok")
    monkeypatch.setitem(worker.HANDLERS, "test_refused", f"{__name__}:refused")
    monkeypatch.setitem(worker.HANDLERS, "test_hopeless", f"{__name__}:hopeless")
    monkeypatch.setitem(worker.HANDLERS, "test_long", f"{__name__}:long_one")
    monkeypatch.setitem(worker.HANDLERS, "privacy_purge", f"{__name__}:purge")


@pytest.fixture
def app(make_app: Any) -> Any:
    """An app whose workers queue no daily purge, so what runs does not hang on the hour; the
    purge's own tests turn it on."""
    return make_app(RETENTION_PURGE=False)


def add(store: Any, kind: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> int:
    with store.writes() as tx:
        job_id = queue.enqueue(tx, store.dialect, kind, payload or {}, **kwargs)
    assert job_id is not None
    return job_id


def jobs(store: Any) -> dict[int, Any]:
    with store.read() as s:
        return {row.id: row for row in s.execute(select(Job.__table__))}


def later(monkeypatch: pytest.MonkeyPatch, delta: timedelta) -> None:
    """The queue's clock moved on by delta (a backoff passes without waiting for it)."""
    monkeypatch.setattr(queue, "utcnow", lambda: utcnow() + delta)


def one_error(result: Any, text: str) -> None:
    """A refusal as every command gives one: exit 1 and one `Error:` line naming the problem."""
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], result.output


def test_worker_once_runs_what_is_due_logs_each_job_and_leaves_the_rest(runner, store, caplog):
    first = add(store, "test_ok", {"n": 1})
    add(store, "test_ok", {"n": 2})
    add(store, "test_ok", {"n": 3}, at=utcnow() + timedelta(hours=1))
    caplog.set_level("INFO", "capture.jobs")
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "2 jobs run." in result.output
    assert RAN == [{"n": 1}, {"n": 2}]
    assert f"job {first} (test_ok) done in" in caplog.text
    assert sorted(j.state for j in jobs(store).values() if j.kind == "test_ok") == ["done", "done", "queued"]


def test_a_failure_is_retried_after_its_backoff_then_given_up_as_status_shows(runner, store, monkeypatch):
    job_id = add(store, "test_refused", max_attempts=3)
    assert runner.invoke(args=["worker", "--once"]).exit_code == 0
    row = jobs(store)[job_id]
    assert (row.state, row.attempts) == ("queued", 1)
    assert timedelta(seconds=25) < row.run_at - utcnow() <= queue.BACKOFF[0]
    status = runner.invoke(args=["jobs", "status"]).output
    assert "Waiting to be tried again (1):" in status
    assert f"{row.run_at:%Y-%m-%d %H:%M:%S}" in status and "1/3" in status
    assert "ConnectionRefusedError: the SMTP server refused: 451 try later" in status
    # Not due before the backoff has passed: nothing runs.
    assert "0 jobs run." in runner.invoke(args=["worker", "--once"]).output
    later(monkeypatch, queue.BACKOFF[0] + timedelta(seconds=1))
    assert "1 job run." in runner.invoke(args=["worker", "--once"]).output
    row = jobs(store)[job_id]
    assert (row.state, row.attempts) == ("queued", 2)
    assert row.run_at - queue.utcnow() > queue.BACKOFF[1] - timedelta(seconds=5)
    later(monkeypatch, queue.BACKOFF[0] + queue.BACKOFF[1] + timedelta(seconds=2))
    runner.invoke(args=["worker", "--once"])
    row = jobs(store)[job_id]
    assert (row.state, row.attempts) == ("failed", 3)
    status = runner.invoke(args=["jobs", "status"]).output
    assert "Failed (1)" in status and "3/3" in status and "451 try later" in status
    data = json.loads(runner.invoke(args=["jobs", "status", "--json"]).output)
    assert data["counts"]["test_refused"] == {"queued": 0, "running": 0, "done": 0, "failed": 1}
    [failed] = data["failed"]
    assert (failed["id"], failed["attempts"], failed["max_attempts"]) == (job_id, 3, 3)
    assert failed["last_error"] == "ConnectionRefusedError: the SMTP server refused: 451 try later"
    assert data["retrying"] == [] and data["oldest_queued"] is None


def test_give_up_fails_at_once(runner, store):
    job_id = add(store, "test_hopeless")
    runner.invoke(args=["worker", "--once"])
    row = jobs(store)[job_id]
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, "550 no such mailbox")
    assert row.finished_at is not None
    [failed] = json.loads(runner.invoke(args=["jobs", "status", "--json"]).output)["failed"]
    assert failed["attempts"] == 1 and failed["last_error"] == "550 no such mailbox"


def test_status_counts_per_kind_and_state_and_the_oldest_queued_job(runner, store):
    assert runner.invoke(args=["jobs", "status"]).output == "No jobs yet.\n"
    done = add(store, "test_ok")
    runner.invoke(args=["worker", "--once"])
    waiting = add(store, "test_ok", at=utcnow() + timedelta(minutes=5))
    with store.writes() as tx:  # recorded 2 hours ago
        tx.run(update(Job.__table__).where(Job.__table__.c.id == waiting)
               .values(created_at=utcnow() - timedelta(hours=2, minutes=1)), {})
    add(store, "email")
    status = runner.invoke(args=["jobs", "status"]).output
    lines = status.splitlines()
    assert lines[0].split() == ["kind", "queued", "running", "done", "failed"]
    assert lines[2].split() == ["email", "1", "0", "0", "0"]
    assert lines[3].split() == ["test_ok", "1", "0", "1", "0"]
    assert f"Oldest queued job: {waiting} (test_ok), recorded 2 h 1 min ago, next attempt " in status
    data = json.loads(runner.invoke(args=["jobs", "status", "--json"]).output)
    assert data["oldest_queued"]["id"] == waiting and 7200 < data["oldest_queued"]["age_seconds"] < 7300
    assert data["counts"]["test_ok"]["done"] == 1 and done != waiting


def test_retry_queues_a_failed_job_again_with_fresh_attempts(runner, store):
    first, second = add(store, "test_hopeless"), add(store, "test_hopeless")
    done = add(store, "test_ok")
    runner.invoke(args=["worker", "--once"])
    result = runner.invoke(args=["jobs", "retry", str(first)])
    assert (result.exit_code, result.output) == (0, f"Job {first} queued again.\n")
    row = jobs(store)[first]
    assert (row.state, row.attempts, row.finished_at) == ("queued", 0, None)
    assert row.run_at <= utcnow()
    runner.invoke(args=["worker", "--once"])
    assert runner.invoke(args=["jobs", "retry", "--all-failed"]).output == (
        f"2 failed jobs queued again: {first}, {second}.\n")
    assert runner.invoke(args=["jobs", "retry", "--all-failed"]).output == "0 failed jobs queued again.\n"
    one_error(runner.invoke(args=["jobs", "retry", str(done)]),
              f"job {done} is done, not failed: only a failed job is queued again.")


@pytest.mark.parametrize("args, message", [
    ([], "name one failed job's ID, or pass --all-failed (not both)."),
    (["7", "--all-failed"], "name one failed job's ID, or pass --all-failed (not both)."),
    (["999"], "there is no job 999."),
    (["seven"], "ID is a job's number, as `leadgate jobs status` shows it; 'seven' is not one."),
])
def test_retry_mistakes_get_one_error_line(runner, args, message):
    one_error(runner.invoke(args=["jobs", "retry", *args]), message)


def test_one_purge_job_a_day_however_many_workers_look(make_app, monkeypatch):
    app = make_app(RETENTION_PURGE=True)
    store = worker.get_store(app)
    for _ in range(3):
        w = worker.Worker(app)
        w.queue_periodic()
        w.queue_periodic()
    today = utcnow().date()
    [purge] = [j for j in jobs(store).values() if j.kind == "privacy_purge"]
    assert purge.dedupe_key == f"privacy_purge:{today.isoformat()}"
    assert json.loads(purge.payload) == {"day": today.isoformat()}
    assert purge.run_at == datetime.combine(today, time(3, 0), UTC)
    # Run at or after 03:00 UTC, by the handler of its kind.
    later(monkeypatch, datetime.combine(today, time(3, 0), UTC) - utcnow())
    assert worker.Worker(app).run_pending() == 1 and PURGES == [{"day": today.isoformat()}]
    # The next day, one more.
    tomorrow = utcnow() + timedelta(days=1)
    assert len(schedule.enqueue_today(store, app.config, tomorrow)) == 1
    assert len(schedule.enqueue_today(store, app.config, tomorrow)) == 0


def test_no_purge_job_when_retention_purge_is_off(make_app):
    app = make_app(RETENTION_PURGE=False)
    worker.Worker(app).queue_periodic()
    assert jobs(worker.get_store(app)) == {}


def test_a_job_lost_on_its_last_attempt_is_given_up_not_taken_again(app, store, monkeypatch):
    job_id = add(store, "test_ok", max_attempts=1)
    lost = queue.claim(store, "gone-host:1", timedelta(seconds=30))
    assert lost is not None and lost.id == job_id
    later(monkeypatch, timedelta(seconds=31))
    w = worker.Worker(app)
    assert w.run_pending() == 0
    w.sweep()
    row = jobs(store)[job_id]
    assert row.state == "failed"
    assert row.last_error == "the worker gone-host:1 stopped during attempt 1 (its lease ended)"
    assert RAN == []


def test_a_job_whose_lease_ended_is_taken_again_and_says_why(app, store, monkeypatch):
    job_id = add(store, "test_ok", {"n": 1})
    queue.claim(store, "gone-host:1", timedelta(seconds=30))
    assert worker.Worker(app).run_pending() == 0  # still leased
    later(monkeypatch, timedelta(seconds=31))
    assert worker.Worker(app).run_pending() == 1
    row = jobs(store)[job_id]
    assert (row.state, row.attempts) == ("done", 2) and RAN == [{"n": 1}]


def test_max_attempts_comes_from_the_setting(make_app):
    app = make_app(JOB_MAX_ATTEMPTS=2)
    store = worker.get_store(app)
    with app.app_context():
        job_id = add(store, "test_ok")
    assert jobs(store)[job_id].max_attempts == 2


def test_a_long_job_holds_its_lease_until_another_worker_took_it(app, store, monkeypatch):
    job_id = add(store, "test_long")
    w = worker.Worker(app)
    before = utcnow()
    assert w.run_pending() == 1
    assert RAN == [{"held": True}, {"held": False}]
    row = jobs(store)[job_id]
    # Its finish found the job no longer its own: it stays with the worker that took it.
    assert (row.state, row.locked_by) == ("running", "other-host:1")
    assert row.locked_until >= before + w.lease
