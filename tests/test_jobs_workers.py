"""Workers as separate processes, as they run in production: several share a queue and no job
runs twice; a worker killed mid-job leaves the job to another once its lease ends; the demo's
one-command start runs a worker beside the service and stops it with the service.

Each worker is ``python tests/jobs_worker.py`` (`leadgate worker` with the tests' kinds of job),
with a 2 s lease and a 50 ms poll so that the tests take seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from capture.db.models import Job
from capture.db.store import Store
from capture.jobs import queue
from conftest import SECRET_KEY
from live import BIN, ChildServer, free_port

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
LEASE = 2


def settings(database_url: str, content_dir: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LEADGATE_DATABASE_URL": database_url, "LEADGATE_SECRET_KEY": SECRET_KEY,
            "LEADGATE_BASE_URL": "http://127.0.0.1:9/", "LEADGATE_CONTENT_DIR": str(content_dir),
            "LEADGATE_INSTANCE_PATH": str(tmp_path / "instance"), "LEADGATE_JOB_LEASE_SECONDS": str(LEASE),
            "LEADGATE_WORKER_POLL_SECONDS": "0.05", "LEADGATE_RETENTION_PURGE": "false"}


@pytest.fixture
def start_worker(database_url: str, content_dir: Path, tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen]]:
    """Start worker processes (each logging to tmp_path/<name>.log); any left are killed after."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")
        process = subprocess.Popen([sys.executable, str(TESTS / "jobs_worker.py")], stdout=log, stderr=log,
                                   env=settings(database_url, content_dir, tmp_path), cwd=tmp_path)
        log.close()
        started.append(process)
        wait_for(lambda: "started" in (tmp_path / f"{name}.log").read_text(), f"worker {name} to start",
                 lambda: (tmp_path / f"{name}.log").read_text())
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def wait_for(condition: Callable[[], bool], what: str, log: Callable[[], str] = lambda: "",
             timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}:\n{log()}")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, as a service manager stops it: the worker finishes and exits 0."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def done(store: Store) -> int:
    with store.read() as s:
        return s.execute(select(func.count()).where(Job.state == queue.DONE)).scalar_one()


def enqueue_records(store: Store, n: int, file: Path, sleep: float = 0) -> None:
    with store.writes() as tx:
        for i in range(n):
            queue.enqueue(tx, store.dialect, "test_record", {"n": i, "file": str(file), "sleep": sleep})


def runs(file: Path) -> list[tuple[int, str]]:
    return [(int(n), who) for n, who in (line.split() for line in file.read_text().splitlines())]


@pytest.mark.parametrize("database_kind, workers", [("postgresql", 3), ("sqlite", 2)], indirect=["database_kind"])
def test_workers_in_several_processes_run_each_job_exactly_once(store, start_worker, tmp_path, workers):
    processes = [start_worker(f"w{i}") for i in range(workers)]
    file = tmp_path / "runs.txt"
    enqueue_records(store, 300, file, sleep=0.005)
    wait_for(lambda: done(store) == 300, "300 jobs done", lambda: file.read_text() if file.exists() else "")
    for process in processes:
        stop(process)
    ran = runs(file)
    counted = Counter(n for n, _ in ran)
    assert sorted(counted) == list(range(300)) and set(counted.values()) == {1}, counted.most_common(3)
    assert len({who for _, who in ran}) >= 2, "one worker did all the work: nothing was shared"
    with store.read() as s:
        assert s.execute(select(func.max(Job.attempts))).scalar_one() == 1


def job_in_hand(store: Store, tmp_path: Path, log: str) -> tuple[int, Path, Path]:
    """A job started by a worker and held mid-way until the returned hold file is deleted;
    its id, the hold file and the file it records its run in."""
    file, started, hold = tmp_path / "runs.txt", tmp_path / "started.txt", tmp_path / "hold"
    hold.touch()
    with store.writes() as tx:
        job_id = queue.enqueue(tx, store.dialect, "test_sleep",
                               {"n": 1, "file": str(file), "started": str(started), "hold": str(hold)})
    wait_for(started.exists, "the job to start", lambda: (tmp_path / log).read_text())
    assert job_id is not None
    return job_id, hold, file


@pytest.mark.parametrize("database_kind", ["sqlite", "postgresql"], indirect=True)
def test_a_job_whose_worker_was_killed_is_taken_again_after_its_lease(store, start_worker, tmp_path):
    first = start_worker("first")
    job_id, hold, file = job_in_hand(store, tmp_path, "first.log")
    first.kill()  # SIGKILL: nothing is cleaned up
    first.wait()
    killed_at = time.monotonic()
    hold.unlink()
    second = start_worker("second")
    wait_for(file.exists, "the job to run again", lambda: (tmp_path / "second.log").read_text())
    assert time.monotonic() - killed_at >= LEASE - 0.5, "taken again before its lease ended"
    stop(second)
    [(n, who)] = runs(file)
    assert who == f"{os.uname().nodename}:{second.pid}"
    with store.read() as s:
        state, attempts = s.execute(select(Job.state, Job.attempts).where(Job.id == job_id)).one()
    assert (state, attempts) == ("done", 2)


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_finishes_the_job_in_hand_then_exits(store, start_worker, tmp_path, signum):
    worker = start_worker("worker")
    job_id, hold, file = job_in_hand(store, tmp_path, "worker.log")
    # Due while the first is in hand: left for another worker once this one was told to stop.
    enqueue_records(store, 1, file)
    worker.send_signal(signum)
    time.sleep(0.5)
    assert worker.poll() is None, "stopped before the job in hand was done"
    hold.unlink()
    assert worker.wait(timeout=30) == 0
    log = (tmp_path / "worker.log").read_text()
    assert f"{signal.Signals(signum).name}: stopping after the job in hand" in log
    assert f"job {job_id} (test_sleep) done" in log
    # The job in hand finished; the next one was left for another worker.
    assert [n for n, _ in runs(file)] == [1]
    with store.read() as s:
        states = dict(s.execute(select(Job.id, Job.state)).all())
    assert states[job_id] == "done" and sorted(states.values()) == ["done", "queued"]


@pytest.fixture
def test_kinds_everywhere(tmp_path: Path) -> dict[str, str]:
    """The tests' kinds in every Python process started with this environment (the demo's
    worker is started by `leadgate serve`, not by the test): a sitecustomize module adds them."""
    folder = tmp_path / "pythonpath"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n"
        "from capture.jobs.worker import HANDLERS\nfrom jobs_worker import KINDS\nHANDLERS.update(KINDS)\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH", "")]))}


def children(pid: int) -> list[tuple[int, str]]:
    """The processes whose parent is pid, with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append((int(entry.name), cmdline))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_the_demo_runs_a_worker_beside_the_service_and_stops_it_with_it(tmp_path, test_kinds_everywhere):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>Home</title>")
    port = free_port()
    database_url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {"LEADGATE_DATABASE_URL": database_url, "LEADGATE_INSTANCE_PATH": str(tmp_path / "instance"),
           "LEADGATE_WORKER_POLL_SECONDS": "0.1", "LEADGATE_RETENTION_PURGE": "false", **test_kinds_everywhere}
    env.pop("LEADGATE_SECRET_KEY", None)
    server = ChildServer([str(BIN / "leadgate"), "serve", "--demo", "--port", str(port), "--workers", "1",
                          "--no-build", "--site-dir", str(site)], port, tmp_path / "serve.log", env=env)
    with server:
        wait_for(lambda: any("worker" in cmd for _, cmd in children(server.process.pid)),
                 "the demo's worker process", server.log)
        [(worker_pid, _)] = [(pid, cmd) for pid, cmd in children(server.process.pid) if " worker " in cmd]
        store = Store(database_url)
        try:
            file = tmp_path / "runs.txt"
            enqueue_records(store, 1, file)
            wait_for(lambda: done(store) == 1, "the demo's worker to run a queued job", server.log)
            assert runs(file) == [(0, f"{os.uname().nodename}:{worker_pid}")]
        finally:
            store.dispose()
    # Stopped with the service (SIGTERM to gunicorn's master, as a service manager does).
    wait_for(lambda: not Path(f"/proc/{worker_pid}").exists() or is_zombie(worker_pid),
             "the worker to stop with the service", server.log, timeout=10)
    assert "job 1 (test_record) done" in server.log()


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
