"""The report by utm_source at 100,000 and 1,000,000 leads, against a bare GROUP BY.

    .venv/bin/python benchmarks/report_bench.py [--leads 1000000] [--checkpoints 100000]
                                                [--rounds 3] [--database sqlite|postgresql]

Fills a throwaway database (SQLite file, or a PostgreSQL database of its own on
live.POSTGRES_URL) directly with SQL — leads with two form posts each (so 2,000,000 submissions
at a million), about one in six of them MQLs and fewer further down the funnel, deal values, a
spread of first-seen times over a year, eight sources — then, at each checkpoint, times in
this process, round after round:

- **baseline**: ``SELECT s.utm_source, l.stage, count(*) FROM leads l JOIN submissions s ON
  s.id = l.first_submission_id GROUP BY 1, 2`` — the stage counts by first-touch source, read
  to the end: the floor for "group the leads by source".
- **report**: ``capture.analytics.measures.report(store, range, "utm_source")`` over a range
  holding every lead — the counts, the fit histogram, the duration histograms, the spend,
  and the medians read from them — as `leadgate report --by utm_source` runs it.

The table shows medians of the rounds and the report's speed as a share of the baseline's
(baseline time / report time) in the same round. Target: at least 30 %.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from sqlalchemy import create_engine, text  # noqa: E402

from capture.analytics.measures import DayRange, report  # noqa: E402
from capture.db.models import metadata  # noqa: E402
from capture.db.store import Store  # noqa: E402

T0 = datetime(2025, 12, 1, tzinfo=UTC)
SOURCES = (("newsletter", "email", "monthly"), ("linkedin", "paid-social", "abm"), ("google", "cpc", "brand"),
           ("google", "cpc", "generic"), ("partner", "webinar", "q4"), ("twitter", "social", ""),
           ("bing", "cpc", "brand"), ("", "", ""))
RESOURCES = ("leads-vs-prospects", "lead-scoring-sales-trusts", "mql-hand-off-checklist")
BATCH = 50_000
BASELINE = ("SELECT s.utm_source, l.stage, count(*) FROM leads l "
            "JOIN submissions s ON s.id = l.first_submission_id GROUP BY s.utm_source, l.stage")
LEAD_COLUMNS = ("id", "email", "email_key", "first_seen", "last_seen", "first_submission_id",
                "last_submission_id", "fit", "engagement", "score", "stage", "mql_at", "sql_at",
                "prospect_at", "customer_at", "deal_value", "deal_currency")
POST_COLUMNS = ("id", "uid", "lead_id", "resource_id", "created_at", "email", "utm_source", "utm_medium",
                "utm_campaign", "terms_accepted", "terms_version", "terms_sha256", "marketing_opt_in",
                "marketing_version", "marketing_sha256")


def rows(start: int, stop: int, rng: random.Random, dialect: str):
    """Leads start..stop-1 (ids from 1) and their two posts each, as tuples in column order."""
    def when(moment: datetime | None):
        if moment is None or dialect != "sqlite":
            return moment
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    leads, posts = [], []
    for n in range(start, stop):
        lead_id, first_post = n + 1, 2 * n + 1
        seen = T0 + timedelta(seconds=rng.randrange(365 * 86400))
        again = seen + timedelta(days=rng.uniform(1, 20))
        fit = rng.randrange(0, 101)
        roll = rng.random()
        mql = sql = prospect = customer = None
        stage, deal, currency = "lead", None, ""
        if roll < 0.17:
            mql, stage = seen + timedelta(hours=rng.randrange(0, 400)), "mql"
            if roll < 0.07:
                sql, stage = mql + timedelta(hours=rng.randrange(1, 300)), "sql"
            if roll < 0.035:
                prospect, stage = sql + timedelta(hours=rng.randrange(1, 300)), "prospect"
            if roll < 0.012:
                customer, stage = prospect + timedelta(hours=rng.randrange(24, 900)), "customer"
                deal, currency = rng.randrange(1000, 90000), "EUR" if roll < 0.011 else "USD"
            elif roll > 0.15:
                stage = "recycled" if roll > 0.16 else "disqualified"
        email = f"lead{n}@bench.example"
        leads.append((lead_id, email, email, when(seen), when(again), first_post, first_post + 1, fit, 20,
                      fit // 2 + 10, stage, when(mql), when(sql), when(prospect), when(customer), deal, currency))
        for k, at in ((0, seen), (1, again)):
            source, medium, campaign = SOURCES[(n * 7 + k * 3) % len(SOURCES)] if k else SOURCES[n % len(SOURCES)]
            posts.append((first_post + k, str(uuid.UUID(int=first_post + k)), lead_id, RESOURCES[(n + k) % 3],
                          when(at), email, source, medium, campaign, True, "terms-1", "a" * 64, False,
                          "marketing-1", "b" * 64))
    return leads, posts


def fill(url: str, start: int, stop: int, rng: random.Random) -> None:
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    if dialect == "sqlite":
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        connection.execute("PRAGMA synchronous=OFF")
        for low in range(start, stop, BATCH):
            leads, posts = rows(low, min(low + BATCH, stop), rng, dialect)
            connection.executemany(f"INSERT INTO leads ({', '.join(LEAD_COLUMNS)}) VALUES "
                                   f"({', '.join('?' * len(LEAD_COLUMNS))})", leads)
            connection.executemany(f"INSERT INTO submissions ({', '.join(POST_COLUMNS)}) VALUES "
                                   f"({', '.join('?' * len(POST_COLUMNS))})", posts)
            connection.commit()
        connection.execute("ANALYZE")
        connection.commit()
        connection.close()
        return
    import psycopg
    from sqlalchemy import make_url

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection:
        # Leads and posts point at each other: the foreign keys are checked by no trigger here.
        connection.execute("SET session_replication_role = replica")
        for low in range(start, stop, BATCH):
            leads, posts = rows(low, min(low + BATCH, stop), rng, dialect)
            with connection.cursor() as cursor:
                with cursor.copy(f"COPY leads ({', '.join(LEAD_COLUMNS)}) FROM STDIN") as copy:
                    for row in leads:
                        copy.write_row(row)
                with cursor.copy(f"COPY submissions ({', '.join(POST_COLUMNS)}) FROM STDIN") as copy:
                    for row in posts:
                        copy.write_row(row)
            connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE leads")
        connection.execute("VACUUM ANALYZE submissions")


def time_baseline(store: Store) -> float:
    started = time.perf_counter()
    with store.engine.connect() as connection:
        groups = connection.execute(text(BASELINE)).all()
    assert groups
    return time.perf_counter() - started


def time_report(store: Store, range_: DayRange, leads: int) -> float:
    started = time.perf_counter()
    figures = report(store, range_, "utm_source")
    elapsed = time.perf_counter() - started
    if figures.total.leads != leads:
        raise SystemExit(f"the report counted {figures.total.leads} leads, expected {leads}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--checkpoints", default="100000", help="lead counts to measure at before the last")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", help="PostgreSQL server (default: live.POSTGRES_URL)")
    args = parser.parse_args()
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c} | {args.leads})
    if not (1 <= args.rounds <= 10 and 0 < checkpoints[0] and checkpoints[-1] <= 5_000_000):
        parser.error("keep it bounded: --rounds 1-10, up to 5,000,000 leads")
    rng = random.Random(1)
    range_ = DayRange(date(2025, 11, 30), date(2026, 12, 31))
    with ExitStack() as stack:
        if args.database == "sqlite":
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="leadgate-report-bench-"))
            url = f"sqlite:///{Path(tmp) / 'leads.db'}"
        else:
            from live import POSTGRES_URL, postgres_database

            url = stack.enter_context(postgres_database("leadgate_report_bench", args.postgres_url or POSTGRES_URL))
        engine = create_engine(url)
        metadata.create_all(engine)
        engine.dispose()
        done, table = 0, []
        for target in checkpoints:
            started = time.perf_counter()
            fill(url, done, target, rng)
            print(f"filled {target:,} leads ({2 * target:,} form posts) in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)
            done = target
            store = Store(url)
            time_baseline(store), time_report(store, range_, target)  # warm the cache
            runs = []
            for round_ in range(1, args.rounds + 1):
                base = time_baseline(store)
                made = time_report(store, range_, target)
                runs.append((base, made))
                print(f"  {target:>9,} round {round_}: baseline {base:6.2f} s, report {made:6.2f} s, "
                      f"share {base / made:5.0%}", file=sys.stderr)
            store.dispose()
            table.append((target, runs))
    print(f"\n{args.database}; medians of {args.rounds} rounds (share: baseline time / report time, per round)")
    print(f"{'leads':>10} {'baseline s':>11} {'report s':>9} {'share':>6}")
    for target, runs in table:
        print(f"{target:>10,} {statistics.median(b for b, _ in runs):>11.2f} "
              f"{statistics.median(r for _, r in runs):>9.2f} {statistics.median(b / r for b, r in runs):>6.0%}")
    lowest = min(statistics.median(b / r for b, r in runs) for _, runs in table)
    print(f"\nlowest share: {lowest:.0%} (target ≥ 30%)")


if __name__ == "__main__":
    main()
