"""Real servers in child processes, for tests and benchmarks that talk HTTP to the service.

`LiveServer` runs `leadgate serve` (site build, then gunicorn) on a free loopback port with a
database of its own; `ChildServer` runs any command that serves ``/healthz``.
`postgres_database` makes a throwaway PostgreSQL database for one run.

Test modules import it as ``from live import LiveServer`` (pytest puts ``tests/`` on
``sys.path`` for its conftest), so fixtures stay in the modules that use them.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET_KEY = "live-server-test-secret-0123456789abcdef"
#: A PostgreSQL server the tests may create databases on; one database per run.
POSTGRES_URL = (os.environ.get("LEADGATE_TEST_DATABASE_URL")
                or "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChildServer:
    """A command serving HTTP on 127.0.0.1:port, its output in a log file; stopped on exit."""

    def __init__(self, argv: list[str], port: int, log_path: Path,
                 env: dict[str, str] | None = None, cwd: Path = ROOT, own_settings_only: bool = False):
        """``env`` is added to the test's environment; with ``own_settings_only`` the test's
        LEADGATE_* variables are left out, as in a user's shell that sets only these."""
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.cwd = cwd
        inherited = {k: v for k, v in os.environ.items() if not (own_settings_only and k.startswith("LEADGATE_"))}
        self.env = {**inherited, **(env or {})}
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        """Return once /healthz answers 200; raise with the server's log when it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args[0]} exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.process.args[0]} did not start:\n{self.log()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def __enter__(self) -> ChildServer:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LiveServer(ChildServer):
    """`leadgate serve` with its own database (a SQLite file in workdir unless a URL is given)
    and its own instance folder in workdir; ``settings`` are more LEADGATE_* variables."""

    def __init__(self, workdir: Path, database_url: str | None = None, workers: int = 2,
                 site_dir: Path | None = None, build: bool = True, code: Path | None = None,
                 settings: dict[str, str] | None = None):
        self.leadgate = str(BIN / "leadgate")
        self.database_url = database_url or f"sqlite:///{workdir / 'live.db'}"
        port = free_port()
        # An instance folder of its own: the spool there is replayed into this server's database
        # only, never into another server's that runs at the same time.
        # The address the tests reach it at: every link it builds starts there.
        env = {"LEADGATE_DATABASE_URL": self.database_url, "LEADGATE_SECRET_KEY": SECRET_KEY,
               "LEADGATE_BASE_URL": f"http://127.0.0.1:{port}/",
               "LEADGATE_INSTANCE_PATH": str(workdir / "instance"), **(settings or {})}
        if code is not None:
            # Another checkout's capture/ and content/: first on the command's path, and the
            # working directory, which gunicorn puts first on its workers' path.
            env["PYTHONPATH"] = str(code)
        argv = [self.leadgate, "serve", "--port", str(port), "--workers", str(workers),
                "--site-dir", str(site_dir or workdir / "site")]
        if not build:
            argv.append("--no-build")
        super().__init__(argv, port, workdir / "serve.log", env=env, cwd=code or ROOT)

    def export_rows(self) -> list[dict[str, str]]:
        """The leads as sales gets them: `leadgate export`, parsed."""
        out = subprocess.run([self.leadgate, "export"], env=self.env, cwd=self.cwd,
                             capture_output=True, text=True, check=True, timeout=60)
        return list(csv.DictReader(io.StringIO(out.stdout)))


class PostgresUnavailable(Exception):
    """No PostgreSQL server answered at the URL."""


@contextmanager
def postgres_database(prefix: str, server_url: str = POSTGRES_URL) -> Iterator[str]:
    """The URL of a new, empty database named ``<prefix>_<random>``, dropped afterwards."""
    import psycopg
    from sqlalchemy import make_url

    url = make_url(server_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(conninfo, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        raise PostgresUnavailable(f"no PostgreSQL at {url.render_as_string()}: {e}") from None
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
