"""Whether a change makes form posts faster: versions of the service in interleaved wrk rounds.

    .venv/bin/python benchmarks/compare.py [--rounds 12] [--duration 4] [--database sqlite|postgresql]
                                           REV [REV ...]

Each REV is a git revision (a commit, branch or tag) or WORKTREE (the working tree's tracked
files as they are now). Each version is exported to a folder of its own (git archive) and served
from there by `leadgate serve` on a new SQLite file (with --database postgresql, a throwaway
PostgreSQL database of its own on live.POSTGRES_URL), 2 sync workers, beside the baseline of
benchmarks/run.py. Every round drives the baseline, then each version (in reverse order every
other round), with wrk for --duration seconds: whatever the machine is doing at that moment
weighs on all of them, which separate runs of run.py cannot promise (on a shared VM the same
code moved from 32% to 39% of the baseline between runs). Printed: every round, then per
version the medians of req/s, p99, CPU per request and of its share of the round's baseline.

A version must be served from its own folder: gunicorn puts its working directory first on
its workers' sys.path, so PYTHONPATH alone would still run this checkout's code.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from run import (
    POSTGRES_URL,
    ROOT,
    ChildServer,
    LiveServer,
    PostgresUnavailable,
    Result,
    benchmark_app,
    postgres_database,
    wrk,
)

from capture.catalog import load_catalog

WORKTREE = "WORKTREE"


def export(revision: str, folder: Path) -> str:
    """The tree of a revision (or of the working tree) in folder; its commit, for the table."""
    if revision == WORKTREE:
        # A commit object of the working tree's changes, not stored on any branch.
        commit = subprocess.run(["git", "stash", "create"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip() or "HEAD"
    else:
        commit = revision
    commit = subprocess.run(["git", "rev-parse", "--short", f"{commit}^{{commit}}"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.strip()
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="+", metavar="REV",
                        help=f"git revisions to compare, or {WORKTREE}")
    parser.add_argument("--rounds", type=int, default=12, help="rounds (12)")
    parser.add_argument("--duration", type=float, default=4, help="seconds per wrk run (4)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="where each version stores its posts (sqlite)")
    parser.add_argument("--postgres-url", default=POSTGRES_URL,
                        help=f"PostgreSQL server for --database postgresql ({POSTGRES_URL})")
    args = parser.parse_args()
    if not (1 <= args.duration <= 60 and 1 <= args.rounds <= 50 and 1 <= args.connections <= 256
            and len(args.revisions) <= 6):
        parser.error("keep it bounded: --duration 1-60, --rounds 1-50, --connections 1-256, "
                     "at most 6 revisions")

    catalog = load_catalog(ROOT / "content")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadgate-compare-")))
        servers: dict[str, ChildServer] = {"baseline": stack.enter_context(
            benchmark_app("baseline_app:create_app()", tmp / "baseline.log"))}
        for n, revision in enumerate(args.revisions, 1):
            code = tmp / f"code{n}"
            name = f"{n}:{export(revision, code)}"
            workdir = tmp / f"run{n}"
            workdir.mkdir()
            url = None
            if args.database == "postgresql":
                try:
                    url = stack.enter_context(postgres_database("leadgate_compare", args.postgres_url))
                except PostgresUnavailable as e:
                    raise SystemExit(str(e)) from None
            # Older revisions ignore the setting; newer ones would refuse wrk's flood of posts.
            servers[name] = stack.enter_context(LiveServer(workdir, url, code=code,
                                                           settings={"LEADGATE_RATE_LIMIT": "off"}))
            print(f"{name} is {revision}, served from {code}", file=sys.stderr)
        for server in servers.values():
            wrk(server, catalog, 2, args.connections)  # warm-up

        versions = list(servers)[1:]
        results: dict[str, list[Result]] = {name: [] for name in servers}
        for round_ in range(1, args.rounds + 1):
            for name in ["baseline", *(versions if round_ % 2 else reversed(versions))]:
                result = wrk(servers[name], catalog, args.duration, args.connections)
                results[name].append(result)
                print(f"  round {round_:2} {name:12} {result.rate:7.0f} req/s  p99 "
                      f"{result.p99_ms:5.1f} ms  {result.cpu_ms:5.2f} CPU ms/request", file=sys.stderr)

    baseline = results["baseline"]
    print(f"\n{'version':12} {'req/s':>7} {'p99 ms':>7} {'CPU ms/req':>11} {'of baseline':>12}")
    for name, runs in results.items():
        share = statistics.median(r.rate / b.rate for r, b in zip(runs, baseline))
        print(f"{name:12} {statistics.median(r.rate for r in runs):7.0f} "
              f"{statistics.median(r.p99_ms for r in runs):7.1f} "
              f"{statistics.median(r.cpu_ms for r in runs):11.2f} {share:11.1%}")


if __name__ == "__main__":
    main()
