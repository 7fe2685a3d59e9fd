"""Form posts per second: the capture service against a bare Flask form handler, with wrk.

    .venv/bin/python benchmarks/run.py [--duration 10] [--rounds 3] [--database sqlite|postgresql|both]
                                       [--workers 2] [--ladder] [--email]

Starts, on 127.0.0.1, the baseline (benchmarks/baseline_app.py) and the real service
(`leadgate serve`) on each database, all with the gunicorn settings of capture/gunicorn_conf.py
(2 sync workers unless --workers says otherwise). All rounds of SQLite run first, then all of
PostgreSQL; each round drives the baseline, then the service, with wrk (benchmarks/submit.lua:
plain form posts, three new visitors in four, one returning) at 16 connections. A table per
database shows medians over its rounds: requests per second, latency, the CPU time the server's
processes spent per request (from /proc, so Linux only), and the service's throughput as a
share of the baseline's in the same round, so that load from other work on the machine
cancels out as far as it can. ``--email`` adds, per database, the service with email delivery
and double opt-in on: each post also records its emails and their jobs (the outbox), which a
worker sends later; no worker runs during the rounds, so the row shows what delivery costs a
form post (benchmarks/jobs.py measures the sending). PostgreSQL runs on a throwaway database on live.POSTGRES_URL
(or --postgres-url).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
# One way to start the service for the tests and for this benchmark: tests/live.py.
sys.path.insert(0, str(HERE.parent / "tests"))

from live import (  # noqa: E402
    POSTGRES_URL,
    ROOT,
    ChildServer,
    LiveServer,
    PostgresUnavailable,
    free_port,
    postgres_database,
)
from sqlalchemy import create_engine, text  # noqa: E402

import ladder_app  # noqa: E402

from capture.catalog import Catalog, load_catalog  # noqa: E402

#: Fields every post carries besides email, resource and terms hash (optional ones blank).
COMMON_FIELDS = {
    "first_name": "Bench", "last_name": "Mark", "company": "Throughput Ltd",
    "job_title": "Analyst", "company_size": "", "industry": "", "terms": "accepted",
    "utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "benchmark",
    "utm_term": "", "utm_content": "", "referrer": "https://news.example.org/issue-12",
}


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float
    errors: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        """CPU time of the server (master and workers) per request answered."""
        return self.cpu_seconds / self.requests * 1000


def cpu_seconds(pid: int) -> float:
    """User and system CPU time used so far by a process and its children (gunicorn's workers)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # Fields after the command name: state, ppid, … utime and stime are 12th and 13th.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    ticks = sum(t for p, (parent, t) in stats.items() if p == pid or parent == pid)
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(server: ChildServer, catalog: Catalog, duration: float, connections: int) -> Result:
    """One wrk run of submit.lua against a server; fails loudly when any answer was not 2xx/3xx."""
    url = server.url
    common = urlencode({**COMMON_FIELDS, "marketing_sha256": catalog.settings.marketing.sha256,
                        "landing_page": f"{url}/"})
    pairs = [f"{r.id}={r.terms.sha256}" for r in catalog]
    command = ["wrk", "--threads", "1", "--connections", str(connections),
               "--duration", f"{duration:g}s", "--timeout", "10s", "--script",
               str(HERE / "submit.lua"), url, "--", url, uuid.uuid4().hex[:8], common, *pairs]
    cpu_before = cpu_seconds(server.process.pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         timeout=duration + 60).stdout
    cpu = cpu_seconds(server.process.pid) - cpu_before
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    errors = {k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    if errors.get("status") or errors.get("timeout"):
        raise SystemExit(f"{url}: wrk saw failed requests {errors}:\n{out}")
    return Result(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000,
                  data["p99_us"] / 1000, cpu, errors)


def benchmark_app(app: str, log_path: Path, workers: int = 2,
                  env: dict[str, str] | None = None) -> ChildServer:
    """A Flask app of benchmarks/ (e.g. the baseline) under the service's gunicorn settings."""
    port = free_port()
    return ChildServer(
        [sys.executable, "-m", "gunicorn", "-c", "python:capture.gunicorn_conf",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--pythonpath", str(HERE), app],
        port, log_path, env=env)


#: Email delivery and double opt-in on, with room for every post: a returning visitor of
#: submit.lua posts more often than EMAILS_PER_ADDRESS_PER_DAY allows. Nothing listens at the
#: SMTP address: no worker runs, the emails wait in the outbox.
EMAIL_SETTINGS = {
    "LEADGATE_SMTP_URL": "smtp://127.0.0.1:9", "LEADGATE_MAIL_FROM": "Bench <bench@example.com>",
    "LEADGATE_EMAIL_DELIVERY": "true", "LEADGATE_DOUBLE_OPT_IN": "true",
    "LEADGATE_EMAILS_PER_ADDRESS_PER_DAY": "1000000",
}


def count(database_url: str, query: str) -> int:
    """One count from a server's database, after its rounds."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar_one()
    finally:
        engine.dispose()


def emails_recorded(database_url: str) -> int:
    """The delivery emails the posts recorded (one per stored post)."""
    return count(database_url, "SELECT count(*) FROM emails WHERE kind = 'delivery'")


def stored_submissions(database_url: str) -> int:
    return count(database_url, "SELECT count(*) FROM submissions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server; medians shown (3)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of each server (2)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--ladder", action="store_true",
                        help="also measure the baseline + WTForms, and + one SQLite insert")
    parser.add_argument("--email", action="store_true",
                        help="also measure the service with email delivery and double opt-in on")
    parser.add_argument("--postgres-url", default=POSTGRES_URL,
                        help=f"server to create the throwaway database on ({POSTGRES_URL})")
    args = parser.parse_args()
    if not (1 <= args.duration <= 120 and 1 <= args.rounds <= 10 and 1 <= args.connections <= 256
            and 1 <= args.workers <= 16):
        parser.error("keep it bounded: --duration 1-120, --rounds 1-10, --connections 1-256, "
                     "--workers 1-16")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    catalog = load_catalog(ROOT / "content")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadgate-bench-")))

        def gunicorn(app: str, log: str, env: dict[str, str] | None = None) -> ChildServer:
            return stack.enter_context(benchmark_app(app, tmp / log, args.workers, env))

        servers: dict[str, tuple[ChildServer, str | None]] = {
            "baseline": (gunicorn("baseline_app:create_app()", "baseline.log"), None)}
        if args.ladder:
            ladder_app.create_database(str(tmp / "ladder.db"))
            for step in ("wtforms", "insert"):
                servers[f"+{step}"] = (gunicorn("ladder_app:create_app()", f"ladder-{step}.log", {
                    "LADDER_STEP": step, "LADDER_DATABASE": str(tmp / "ladder.db")}), None)
        for database in ("sqlite", "postgresql"):
            if args.database not in (database, "both"):
                continue
            url = None
            if database == "postgresql":
                try:
                    url = stack.enter_context(postgres_database("leadgate_bench", args.postgres_url))
                except PostgresUnavailable as e:
                    raise SystemExit(f"{e}\n(use --database sqlite to skip PostgreSQL)") from None
            workdir = tmp / database
            workdir.mkdir()
            # wrk posts from one address: the form's rate limits would refuse nearly all of it.
            server = stack.enter_context(LiveServer(workdir, url, workers=args.workers,
                                                    settings={"LEADGATE_RATE_LIMIT": "off"}))
            servers[database] = (server, server.database_url)
            if args.email:
                url_email = None
                if database == "postgresql":
                    url_email = stack.enter_context(postgres_database("leadgate_bench", args.postgres_url))
                (tmp / f"{database}-email").mkdir()
                server = stack.enter_context(LiveServer(tmp / f"{database}-email", url_email,
                                                        workers=args.workers, settings={
                    "LEADGATE_RATE_LIMIT": "off", **EMAIL_SETTINGS}))
                servers[f"{database}+email"] = (server, server.database_url)

        print(f"wrk: {args.connections} connections, {args.duration:g} s a run, "
              f"{args.rounds} round(s); {args.workers} sync gunicorn workers each", file=sys.stderr)
        for name, (server, _) in servers.items():
            wrk(server, catalog, 2, args.connections)  # warm-up: imports, connections
        # All rounds of one database, then all of the next: PostgreSQL's own work after its
        # runs (WAL writes, autovacuum) must not land in the SQLite rounds. Each round drives
        # the baseline (and the ladder, with the first database) right before the service.
        ladder = [name for name in servers if name.startswith("+")]
        groups = [(database, ["baseline", *(ladder if not i else ()), database,
                              *([f"{database}+email"] if args.email else [])])
                  for i, database in enumerate(d for d in ("sqlite", "postgresql") if d in servers)]
        results: dict[str, dict[str, list[Result]]] = {}
        for database, names in groups:
            results[database] = {name: [] for name in names}
            for round_ in range(1, args.rounds + 1):
                for name in names:
                    result = wrk(servers[name][0], catalog, args.duration, args.connections)
                    results[database][name].append(result)
                    print(f"  {database} round {round_} {name:12} {result.rate:7.0f} req/s  p50 "
                          f"{result.p50_ms:5.1f} ms  p99 {result.p99_ms:5.1f} ms  "
                          f"{result.cpu_ms:5.2f} CPU ms/request", file=sys.stderr)
        for database, _ in groups:
            answered = sum(r.requests for r in results[database][database])
            stored = stored_submissions(servers[database][1])
            if stored < answered:
                raise SystemExit(f"{database}: {answered} posts answered but {stored} stored")
            if args.email:
                answered = sum(r.requests for r in results[database][f"{database}+email"])
                owed = emails_recorded(servers[f"{database}+email"][1])
                if owed < answered:
                    raise SystemExit(f"{database}+email: {answered} posts answered but {owed} emails recorded")

    for database, runs_by_name in results.items():
        baseline = runs_by_name["baseline"]
        print(f"\n{database + ' rounds':20} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'CPU ms/req':>11} {'of baseline':>12}")
        for name, runs in runs_by_name.items():
            share = statistics.median(r.rate / b.rate for r, b in zip(runs, baseline))
            label = "service/" + name if name in (database, f"{database}+email") else name
            print(f"{label:20} {statistics.median(r.rate for r in runs):7.0f} "
                  f"{statistics.median(r.p50_ms for r in runs):7.1f} "
                  f"{statistics.median(r.p99_ms for r in runs):7.1f} "
                  f"{statistics.median(r.cpu_ms for r in runs):11.2f} {share:11.0%}")
        if f"{database}+email" in runs_by_name:
            ratio = statistics.median(e.rate / o.rate for e, o in zip(runs_by_name[f"{database}+email"],
                                                                     runs_by_name[database]))
            print(f"email delivery on / off, same rounds: {ratio:.0%} of the req/s")


if __name__ == "__main__":
    main()
