"""``rescore(everyone=True)`` at 100,000 and 1,000,000 leads, against a bare read-and-write-back.

    .venv/bin/python benchmarks/rescore_bench.py [--leads 1000000] [--checkpoints 100000]
                                                 [--rounds 2] [--database sqlite|postgresql]

Fills a throwaway database with SQL alone (benchmarks/list_bench.py's ``fill``: one to three
form posts a lead, two on average, so 2,000,000 at 1M), then at each checkpoint runs, each in
a child process of its own, in alternating order:

- **rescore**: ``capture.scoring.apply.rescore(store, scoring, everyone=True)`` with the
  shipped rules (content/scoring.yml): every lead's posts read, its score computed and
  written, promotions to MQL with their stage changes;
- **baseline**: the same batches (``apply.BATCH`` leads, one transaction each, through the
  same ``Store.writes``): the same lead columns and posts read, and a constant score written
  back to every lead with one executemany — the floor for "read every lead and write a score".

Each child reports its time and its peak RSS (``VmHWM``). Printed: leads/s of each, rescore
as a share of the baseline run beside it (median of the rounds), and the peak RSS growth from
the first checkpoint to the last. Targets: rescore ≥ 30% of the baseline; peak RSS flat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from list_bench import fill, new_database  # noqa: E402


def child_rescore(url: str) -> int:
    from capture.catalog import load_catalog
    from capture.db.store import Store
    from capture.scoring.apply import load_scoring, rescore

    store = Store(url)
    done = rescore(store, load_scoring(load_catalog(ROOT / "content")), everyone=True)
    store.dispose()
    return done.scored


def child_baseline(url: str) -> int:
    """rescore's reads, batches and transactions, with nothing computed: a constant written."""
    from sqlalchemy import bindparam, select, update

    from capture.db.models import Lead, Submission, utcnow
    from capture.db.store import Store
    from capture.scoring.apply import BATCH, LEAD_COLUMNS

    store = Store(url)
    now = utcnow()
    leads = Lead.__table__
    pick = (select(*LEAD_COLUMNS).where(Lead.scored_at < now, Lead.id > bindparam("after"))
            .order_by(Lead.id).limit(BATCH))
    posts = (select(Submission.lead_id, Submission.resource_id, Submission.created_at)
             .where(Submission.lead_id.between(bindparam("low"), bindparam("high"))))
    write = update(leads).where(leads.c.id == bindparam("lead_id"))
    constant = {"fit": 0, "engagement": 0, "score": 0, "score_reasons": "{}", "rules_version": "bench",
                "scored_at": now}
    after, done = 0, 0
    while True:
        with store.writes(direct=False) as tx:
            rows = tx.rows(pick, {"after": after})
            if not rows:
                break
            tx.rows(posts, {"low": rows[0]["id"], "high": rows[-1]["id"]})
            tx.run(write, [{"lead_id": row["id"], **constant} for row in rows])
        after = rows[-1]["id"]
        done += len(rows)
    store.dispose()
    return done


def peak_rss_mb() -> float:
    """This process's high-water RSS since exec (VmHWM), not the parent's pages before it."""
    status = Path("/proc/self/status").read_text()
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kilobytes) / 1024


def measure(kind: str, url: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, url], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    result = json.loads(out)
    result["rate"] = result["leads"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--checkpoints", default="100000",
                        help="comma-separated lead counts to measure at before the last (100000)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each per checkpoint (2)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", help="PostgreSQL server for the throwaway database")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url = args.child
        started, cpu = time.perf_counter(), time.process_time()
        leads = {"rescore": child_rescore, "baseline": child_baseline}[kind](url)
        print(json.dumps({"leads": leads, "seconds": time.perf_counter() - started,
                          "cpu": time.process_time() - cpu, "rss_mb": peak_rss_mb()}))
        return
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c} | {args.leads})
    if not (1 <= args.rounds <= 10 and 0 < checkpoints[0] and checkpoints[-1] <= 5_000_000):
        parser.error("keep it bounded: --rounds 1-10, up to 5,000,000 leads")

    table = []
    with ExitStack() as stack:
        url = new_database(args.database, stack, args.postgres_url)
        done = 0
        for target in checkpoints:
            started = time.perf_counter()
            fill(url, target, start=done)
            print(f"filled {target:,} leads in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            done = target
            runs: dict[str, list[dict[str, float]]] = {"baseline": [], "rescore": []}
            for round_ in range(1, args.rounds + 1):
                for kind in (runs if round_ % 2 else reversed(list(runs))):
                    result = measure(kind, url)
                    if result["leads"] != target:
                        raise SystemExit(f"{kind} did {result['leads']} leads, expected {target}")
                    runs[kind].append(result)
                    print(f"  {target:>9,} round {round_} {kind:8} {result['rate']:9,.0f} leads/s "
                          f"{result['rss_mb']:6.1f} MB", file=sys.stderr)
            table.append((target, runs))

    print(f"\n{args.database}: medians of {args.rounds} rounds (share: of the paired rounds); "
          "peak RSS: the largest seen")
    print(f"{'leads':>10} {'baseline leads/s':>17} {'rescore leads/s':>16} {'share':>6} "
          f"{'CPU share':>10} {'baseline MB':>12} {'rescore MB':>11}")
    summary = []
    for target, runs in table:
        base, rescored = runs["baseline"], runs["rescore"]
        share = statistics.median(r["rate"] / b["rate"] for r, b in zip(rescored, base))
        cpu_share = statistics.median(b["cpu"] / r["cpu"] for r, b in zip(rescored, base))
        peak = max(r["rss_mb"] for r in rescored)
        summary.append((share, peak))
        print(f"{target:>10,} {statistics.median(r['rate'] for r in base):>17,.0f} "
              f"{statistics.median(r['rate'] for r in rescored):>16,.0f} {share:>6.0%} {cpu_share:>10.0%} "
              f"{max(r['rss_mb'] for r in base):>12.1f} {peak:>11.1f}")
    growth = summary[-1][1] - summary[0][1]
    print(f"\nrescore peak RSS {table[0][0]:,} → {table[-1][0]:,} leads: {growth:+.1f} MB (target: flat); "
          f"lowest share of the baseline's leads/s: {min(s for s, _ in summary):.0%} (target ≥ 30%)")


if __name__ == "__main__":
    main()
