"""Export speed and memory at 100,000 and 1,000,000 leads, against a bare SELECT → csv.writer.

    .venv/bin/python benchmarks/export_bench.py [--leads 1000000] [--checkpoints 100000] [--rounds 3]

Fills a throwaway SQLite file (SQLAlchemy Core executemany in large transactions) with leads
as the service stores them — one to three form posts each, a consent event per box per post,
downloads for half of them, text that needs quoting or neutralising here and there — then, at
each checkpoint, exports every lead to /dev/null in a child process, twice over:

- **export**: the real path, ``capture.leads.export.write_export`` with the default columns
  (store query with its joins and subqueries, per-cell conversion and neutralising);
- **baseline**: one hand-written SELECT of as many columns (the lead, its first and latest
  form post by primary key; the latest post's resource and marketing box standing in for the
  resources list and the consent-event lookup) through the sqlite3 module straight into
  ``csv.writer.writerows`` — the floor for "rows out of SQLite into a CSV file".

Each child reports its own peak RSS (``VmHWM`` from /proc) and times itself, so interpreter
start-up does not count in rows/s. On a shared machine the wall-clock share moves with the
neighbours' load; the CPU share (CPU seconds of the baseline over the export's) moves less. The table shows the
median of the rounds, and export as a share of the baseline run just before it.
Targets: export ≥ 50 % of the baseline's rows/s; peak RSS at the last checkpoint within
20 MB of the first.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert  # noqa: E402

from capture.db.models import (  # noqa: E402
    ConsentEvent,
    ConsentTextRow,
    Download,
    Lead,
    Submission,
    metadata,
)

BATCH = 20_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)
RESOURCES = ("leads-vs-prospects", "lead-scoring-sales-trusts", "mql-hand-off-checklist")
SOURCES = (("newsletter", "email", "autumn"), ("linkedin", "social", "q4"), ("google", "cpc", "brand"),
           ("", "", ""))
COMPANIES = ("Acme Analytics", 'Globex, "The" Corp', "Initech\nLabs", "=HYPERLINK(1)", "Ünïcödé 🚀",
             "שלום בע״מ", "Umbrella", "-minus Ltd")
TERMS = ("a" * 64, "terms", "terms-2026-11")
MARKETING = ("b" * 64, "marketing", "marketing-2026-11")

BASELINE_SQL = """
SELECT l.email, l.first_name, l.last_name, l.company, l.job_title, l.company_size, l.industry,
       f.utm_source, f.utm_medium, f.utm_campaign, f.referrer, f.landing_page,
       s.utm_source, s.utm_medium, s.utm_campaign, s.referrer, s.landing_page,
       s.resource_id, s.terms_version, s.marketing_opt_in, s.created_at, l.first_seen, l.last_seen
FROM leads AS l
LEFT JOIN submissions AS f ON f.id = l.first_submission_id
LEFT JOIN submissions AS s ON s.id = l.last_submission_id
ORDER BY l.id
"""


def fill(url: str, start: int, stop: int, first_submission: int) -> int:
    """Leads start..stop-1 with their posts, consent events and downloads; returns next post id."""
    engine = create_engine(url)
    sub_id = first_submission
    with engine.begin() as conn:
        # Leads point at posts inserted after them: fine with SQLite's foreign keys off (the
        # default of a plain connection), as every reference exists once the batch is in.
        conn.exec_driver_sql("PRAGMA synchronous=OFF")
        for low in range(start, stop, BATCH):
            high = min(low + BATCH, stop)
            leads, posts, events, downloads = [], [], [], []
            for n in range(low, high):
                seen = T0 + timedelta(seconds=30 * n)
                company = COMPANIES[n % len(COMPANIES)]
                visits = 1 + n % 3
                ids = range(sub_id, sub_id + visits)
                leads.append({"id": n + 1, "email": f"lead{n}@example.com", "email_key": f"lead{n}@example.com",
                              "first_name": "Ann", "last_name": f"Lee{n % 97}", "company": company,
                              "job_title": "Head of Growth", "company_size": "51-200",
                              "industry": "Software", "first_seen": seen,
                              "last_seen": seen + timedelta(days=visits - 1),
                              "first_submission_id": ids[0], "last_submission_id": ids[-1]})
                for visit, post in enumerate(ids):
                    at = seen + timedelta(days=visit)
                    source, medium, campaign = SOURCES[(n + visit) % len(SOURCES)]
                    opt_in = (n + visit) % 2 == 0
                    posts.append({
                        "id": post, "uid": uuid.UUID(int=post), "lead_id": n + 1,
                        "resource_id": RESOURCES[(n + visit) % len(RESOURCES)], "created_at": at,
                        "email": f"lead{n}@example.com", "first_name": "Ann", "last_name": f"Lee{n % 97}",
                        "company": company, "job_title": "Head of Growth", "company_size": "51-200",
                        "industry": "Software", "utm_source": source, "utm_medium": medium,
                        "utm_campaign": campaign, "utm_term": "", "utm_content": "",
                        "referrer": "https://news.example.org/issue-12" if source else "",
                        "landing_page": f"https://site.example.com/resources/{RESOURCES[0]}/?utm_source={source}",
                        "user_agent": "Mozilla/5.0", "ip_prefix": "203.0.113.0/24",
                        "terms_accepted": True, "terms_version": TERMS[2], "terms_sha256": TERMS[0],
                        "marketing_opt_in": opt_in, "marketing_version": MARKETING[2],
                        "marketing_sha256": MARKETING[0]})
                    for sha, kind, version in (TERMS, MARKETING):
                        events.append({"lead_id": n + 1, "submission_id": post, "kind": kind,
                                       "granted": kind == "terms" or opt_in, "version": version,
                                       "sha256": sha, "created_at": at, "ip_prefix": "203.0.113.0/24"})
                if n % 2 == 0:
                    downloads.append({"lead_id": n + 1, "submission_id": ids[0], "resource_id": RESOURCES[0],
                                      "created_at": seen + timedelta(minutes=1), "user_agent": "Mozilla/5.0",
                                      "ip_prefix": "203.0.113.0/24"})
                sub_id += visits
            conn.execute(insert(Lead), leads)
            conn.execute(insert(Submission), posts)
            conn.execute(insert(ConsentEvent), events)
            conn.execute(insert(Download), downloads)
    engine.dispose()
    return sub_id


def create(url: str) -> None:
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(ConsentTextRow), [
            {"sha256": sha, "kind": kind, "version": version, "text": f"{kind} text", "first_seen": T0}
            for sha, kind, version in (TERMS, MARKETING)])
    engine.dispose()


# --- The measured children -----------------------------------------------------------------

def child_export(url: str) -> int:
    from capture.db.store import Store
    from capture.leads.export import write_export

    store = Store(url)
    with open(os.devnull, "wb") as out:
        rows = write_export(store, out)
    store.dispose()
    return rows


def child_baseline(url: str) -> int:
    import sqlite3

    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    cursor = connection.execute(BASELINE_SQL)
    with open(os.devnull, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([d[0] for d in cursor.description])
        rows = 0
        while batch := cursor.fetchmany(1000):
            writer.writerows(batch)
            rows += len(batch)
    connection.close()
    return rows


def peak_rss_mb() -> float:
    """This process's high-water RSS since exec (VmHWM). Not ru_maxrss: on Linux that also
    counts the parent's pages the child had between fork and exec."""
    status = Path("/proc/self/status").read_text()
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kilobytes) / 1024


def measure(kind: str, url: str) -> dict[str, float]:
    """Run one export in a child; its rows, seconds, rows/s and peak RSS (MB)."""
    out = subprocess.run([sys.executable, __file__, "--child", kind, url], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    result = json.loads(out)
    result["rate"] = result["rows"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--checkpoints", default="100000", help="comma-separated lead counts to measure "
                        "at before the last (100000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each export per checkpoint (3)")
    parser.add_argument("--keep", type=Path, help="keep the database at this path (default: a temp file)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url = args.child
        started, cpu = time.perf_counter(), time.process_time()
        rows = {"export": child_export, "baseline": child_baseline}[kind](url)
        print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started,
                          "cpu": time.process_time() - cpu, "rss_mb": peak_rss_mb()}))
        return
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c} | {args.leads})
    if not (1 <= args.rounds <= 10 and 0 < checkpoints[0] and checkpoints[-1] <= 5_000_000):
        parser.error("keep it bounded: --rounds 1-10, up to 5,000,000 leads")

    with tempfile.TemporaryDirectory(prefix="leadgate-export-bench-") as tmp:
        path = args.keep or Path(tmp) / "leads.db"
        if path.exists():
            raise SystemExit(f"{path} exists: give a new file")
        url = f"sqlite:///{path}"
        create(url)
        done, next_post, table = 0, 1, []
        for target in checkpoints:
            started = time.perf_counter()
            next_post = fill(url, done, target, next_post)
            print(f"filled {target:,} leads ({next_post - 1:,} form posts) in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
            done = target
            runs: dict[str, list[dict[str, float]]] = {"baseline": [], "export": []}
            measure("export", url)  # warm the page cache so the first round is not penalised
            for round_ in range(1, args.rounds + 1):
                for kind in runs:
                    result = measure(kind, url)
                    if result["rows"] != target:
                        raise SystemExit(f"{kind} wrote {result['rows']} rows, expected {target}")
                    runs[kind].append(result)
                    print(f"  {target:>9,} round {round_} {kind:8} {result['rate']:9,.0f} rows/s "
                          f"{result['rss_mb']:6.1f} MB", file=sys.stderr)
            table.append((target, runs))
        size = path.stat().st_size / 2**20

    print(f"\nSQLite file: {size:,.0f} MB; medians of {args.rounds} rounds (share: of the paired "
          "rounds); peak RSS: the largest seen")
    print(f"{'leads':>10} {'baseline rows/s':>16} {'export rows/s':>14} {'share':>6} {'CPU share':>10} "
          f"{'baseline MB':>12} {'export MB':>10}")
    summary = []
    for target, runs in table:
        base, export = runs["baseline"], runs["export"]
        share = statistics.median(e["rate"] / b["rate"] for e, b in zip(export, base))
        cpu_share = statistics.median(b["cpu"] / e["cpu"] for e, b in zip(export, base))
        peak = max(r["rss_mb"] for r in export)
        summary.append((share, peak))
        print(f"{target:>10,} {statistics.median(r['rate'] for r in base):>16,.0f} "
              f"{statistics.median(r['rate'] for r in export):>14,.0f} {share:>6.0%} {cpu_share:>10.0%} "
              f"{max(r['rss_mb'] for r in base):>12.1f} {peak:>10.1f}")
    growth = summary[-1][1] - summary[0][1]
    print(f"\nexport peak RSS {table[0][0]:,} → {table[-1][0]:,} leads: {growth:+.1f} MB (target ≤ +20 MB); "
          f"lowest share of the baseline's rows/s: {min(s for s, _ in summary):.0%} (target ≥ 50%)")


if __name__ == "__main__":
    main()
