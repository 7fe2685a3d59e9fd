"""A `leadgate worker` process with the tests' own kinds of job, for tests that run workers in
processes of their own (tests/test_jobs_workers.py):

    python tests/jobs_worker.py [worker options]

The kinds are added to capture.jobs.worker.HANDLERS before the command starts, the way the
module says to add one; in the tests' own process, monkeypatching HANDLERS does the same.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

#: The tests' kinds, whose handlers are the functions below.
KINDS = {"test_record": "jobs_worker:record", "test_sleep": "jobs_worker:sleep_then_record"}


def record(context: Any, payload: dict[str, Any]) -> None:
    """Append "<n> <worker>" to the payload's file: one line per run of the job, O_APPEND so
    several processes' lines never mix."""
    time.sleep(payload.get("sleep", 0))
    line = f"{payload['n']} {context.worker}\n".encode()
    fd = os.open(payload["file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def sleep_then_record(context: Any, payload: dict[str, Any]) -> None:
    """Say it started (the payload's ``started`` file), wait while the ``hold`` file is there
    (a minute at most), then record: a job to kill mid-way."""
    Path(payload["started"]).write_text(context.worker)
    deadline = time.monotonic() + 60
    while Path(payload["hold"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    record(context, payload)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from capture.cli import main
    from capture.jobs.worker import HANDLERS

    HANDLERS.update(KINDS)
    main(["worker", *sys.argv[1:]])
