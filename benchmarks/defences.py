"""What the public form's defences cost, and how fast a flood is refused.

    .venv/bin/python benchmarks/defences.py [--duration 8] [--rounds 3] [--connections 16]
                                            [--database sqlite|postgresql]

Three `leadgate serve` services on 127.0.0.1 (2 sync gunicorn workers each, a database each),
driven by wrk with benchmarks/defended.lua (one new visitor per post):

- **off**: `LEADGATE_RATE_LIMIT=off`, posts without a form token, as a page without its script
  sends them (the honeypot and the verdict still run: they cannot be turned off);
- **on**: limits on in Redis (`RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379`, limits too high
  to refuse anyone, so that every post pays for its checks and is stored), every post with a
  signed form token of its own, minted by this script with the services' key, old enough to
  pass the time trap; each token's one use is recorded in Redis;
- **flood**: the same Redis limits at 1 post an hour per address: one address posting as fast
  as wrk can, so all posts but the first are refused (429).

Rounds alternate off/on (on/off every other round). Printed: every run, then medians of req/s,
p99 and the on/off ratio per round (the issue asks for at least 80%), and the flood's refusals a
second (at least 2,000), with the rows of the flood's database before and after (nothing
written) and, on PostgreSQL, its committed transactions.
"""

from __future__ import annotations

import argparse
import json
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

from run import (
    COMMON_FIELDS,
    POSTGRES_URL,
    ROOT,
    ChildServer,
    LiveServer,
    PostgresUnavailable,
    postgres_database,
)
from sqlalchemy import create_engine, text

from capture.catalog import Catalog, load_catalog
from capture.spam.token import FormTokens

HERE = Path(__file__).resolve().parent
REDIS_URL = "redis://127.0.0.1:6379"
SECRET_KEY = "live-server-test-secret-0123456789abcdef"  # tests/live.py's, which LiveServer sets
#: Tokens minted per second of a run: more than the service answers, so none is used twice.
TOKENS_PER_SECOND = 4000


@dataclass
class Run:
    requests: int
    seconds: float
    p99_ms: float
    statuses: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def mint_tokens(path: Path, count: int) -> Path:
    """Form tokens as GET /form-token issues them, already 10 s old (past FORM_MIN_SECONDS)."""
    tokens = FormTokens(SECRET_KEY, min_seconds=3, max_age=4 * 3600)
    path.write_text("".join(tokens.issue(shown_before=10) + "\n" for _ in range(count)))
    return path


def wrk(server: ChildServer, catalog: Catalog, duration: float, connections: int,
        tokens: Path | None) -> Run:
    common = urlencode({**COMMON_FIELDS, "marketing_sha256": catalog.settings.marketing.sha256,
                        "landing_page": f"{server.url}/"})
    pairs = [f"{r.id}={r.terms.sha256}" for r in catalog]
    command = ["wrk", "--threads", "1", "--connections", str(connections), "--duration",
               f"{duration:g}s", "--timeout", "10s", "--script", str(HERE / "defended.lua"),
               server.url, "--", server.url, uuid.uuid4().hex[:10], common,
               str(tokens) if tokens else "-", *pairs]
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         timeout=duration + 60).stdout
    data = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT ")).removeprefix("RESULT "))
    if data["timeout"] or data["connect"]:
        raise SystemExit(f"{server.url}: wrk saw failed connections:\n{out}")
    return Run(data["requests"], data["duration_us"] / 1e6, data["p99_us"] / 1000, data["statuses"])


def counts(database_url: str) -> dict[str, int]:
    """Rows of the tables a post could write, and PostgreSQL's committed transactions."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            found = {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                     for table in ("leads", "submissions", "held_posts")}
            if engine.dialect.name == "postgresql":
                found["commits"] = conn.execute(text(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")).scalar_one()
        return found
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run (8)")
    parser.add_argument("--rounds", type=int, default=3, help="off/on rounds; medians shown (3)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    args = parser.parse_args()
    if not (1 <= args.duration <= 60 and 1 <= args.rounds <= 10 and 1 <= args.connections <= 256):
        parser.error("keep it bounded: --duration 1-60, --rounds 1-10, --connections 1-256")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    catalog = load_catalog(ROOT / "content")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    high = "1000000/minute"
    settings = {
        "off": {"LEADGATE_RATE_LIMIT": "off"},
        "on": {"LEADGATE_RATE_LIMIT": high, "LEADGATE_RATE_LIMIT_NETWORK": high,
               "LEADGATE_RATE_LIMIT_EMAIL": high, "LEADGATE_RATELIMIT_STORAGE_URI": REDIS_URL,
               "LEADGATE_RATELIMIT_KEY_PREFIX": f"{prefix}-on"},
        "flood": {"LEADGATE_RATE_LIMIT": "1/hour", "LEADGATE_RATELIMIT_STORAGE_URI": REDIS_URL,
                  "LEADGATE_RATELIMIT_KEY_PREFIX": f"{prefix}-flood"},
    }
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadgate-defences-")))
        servers: dict[str, LiveServer] = {}
        for name, extra in settings.items():
            url = None
            if args.database == "postgresql":
                try:
                    url = stack.enter_context(postgres_database("leadgate_bench", args.postgres_url))
                except PostgresUnavailable as e:
                    raise SystemExit(str(e)) from None
            (tmp / name).mkdir()
            servers[name] = stack.enter_context(LiveServer(
                tmp / name, url, settings={**extra, "LEADGATE_SCORE_REFRESH_SECONDS": "0"}))

        tokens_per_run = int(TOKENS_PER_SECOND * args.duration)
        batches = iter(range(10_000))

        def tokens() -> Path:
            return mint_tokens(tmp / f"tokens-{next(batches)}.txt", tokens_per_run)

        print(f"wrk: {args.connections} connections, {args.duration:g} s a run, {args.rounds} "
              f"round(s), {args.database}; 2 sync gunicorn workers each", file=sys.stderr)
        for name in ("off", "on"):  # warm-up: imports, connections
            wrk(servers[name], catalog, 2, args.connections, tokens() if name == "on" else None)
        runs: dict[str, list[Run]] = {"off": [], "on": []}
        for round_ in range(args.rounds):
            for name in (("off", "on") if round_ % 2 == 0 else ("on", "off")):
                run = wrk(servers[name], catalog, args.duration, args.connections,
                          tokens() if name == "on" else None)
                runs[name].append(run)
                print(f"  round {round_ + 1} {name:5} {run.rate:7.0f} req/s  p99 {run.p99_ms:6.1f} ms  "
                      f"{run.statuses}", file=sys.stderr)
        for name in ("off", "on"):
            stored = counts(servers[name].database_url)
            answered = sum(r.statuses.get("303", 0) for r in runs[name])
            if stored["held_posts"] or stored["submissions"] < answered:
                raise SystemExit(f"{name}: {answered} posts answered, {stored} stored: "
                                 "every post should be stored as a lead")

        before = counts(servers["flood"].database_url)
        flood = wrk(servers["flood"], catalog, args.duration, args.connections, None)
        after = counts(servers["flood"].database_url)

    ratios = [on.rate / off.rate for on, off in zip(runs["on"], runs["off"])]
    print(f"\n{'':6} {'req/s':>7} {'p99 ms':>7}")
    for name in ("off", "on"):
        print(f"{name:6} {statistics.median(r.rate for r in runs[name]):7.0f} "
              f"{statistics.median(r.p99_ms for r in runs[name]):7.1f}")
    print(f"defences on / off: median {statistics.median(ratios):.0%} "
          f"(rounds: {', '.join(f'{r:.0%}' for r in ratios)}); goal at least 80%")
    refused = flood.statuses.get("429", 0)
    print(f"flood from one address: {refused / flood.seconds:,.0f} refusals/s "
          f"({refused} of {flood.requests} answered 429, {flood.statuses}); goal at least 2,000/s")
    print(f"flood's database before {before}, after {after}")


if __name__ == "__main__":
    main()
