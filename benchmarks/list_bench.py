"""The lead list at 1,000,000 leads: page 500 against page 1, and every filter against none.

    .venv/bin/python benchmarks/list_bench.py [--leads 1000000] [--rounds 5]
                                              [--database sqlite|postgresql|both]

Builds a database at the newest schema (``capture.db.migrate``, so with every index, search
table and trigger the service has) and fills it with SQL alone — ``INSERT … SELECT`` over a
series of numbers, a transaction per 100,000 leads — never through the form post: leads with
one to three form posts each (2 per lead on average: 2,000,000 at 1M), a marketing choice
each, scores, stages and MQL dates spread over the range. Then, in interleaved rounds, what
the workspace does for one list page (capture.leads.queries): ``count_leads`` (the total above
the list) and ``list_leads`` (its first 50 rows), sorted by score:

- **baseline**: no filter;
- **page 500**: no filter, the 500th page by keyset (the cursor of row 24,950);
- **every filter of LeadFilter alone**, with values that match many leads and values that
  match few or none (an unknown utm_campaign, a resource type nobody requested, the oldest
  two days, a name nobody has, an empty stage, the score extremes, the oldest MQL dates).

Printed per database: the median of the rounds in ms and as a multiple of the baseline's
median. Targets: page 500 within 2× of page 1 (page 1 = the list alone, without its count),
every filter within 5× of the baseline (page and count); a search under three characters
has no index to use (trigrams) and is shown without a target. On a shared machine the figures move
with the neighbours' load; the multiples move less, as every case runs in every round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import create_engine, text  # noqa: E402

from capture.catalog import Catalog, load_catalog  # noqa: E402
from capture.db import migrate  # noqa: E402

CHUNK = 100_000
TERMS_SHA, MARKETING_SHA = "a" * 64, "b" * 64
#: Requested resources; the tip-sheet (mql-hand-off-checklist) is never requested.
REQUESTED = ("telling-leads-from-prospects", "lead-scoring-sales-trusts", "retired-report")
REASONS = ('{"version":"bench","at":"2026-02-05T00:00:00+00:00","fit":[["industry Software",25],'
           '["job title \\"head\\"",30]],"engagement":[["ebook telling-leads-from-prospects",12.5]]}')


def _case(expression: str, values: tuple[str, ...]) -> str:
    whens = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
    return f"(CASE {expression} {whens} END)"


def _sql(dialect: str) -> dict[str, Callable[..., str]]:
    """The few expressions SQLite and PostgreSQL spell differently."""
    if dialect == "sqlite":
        return {
            "series": lambda: ("(WITH RECURSIVE r(n) AS (SELECT :low UNION ALL SELECT n + 1 FROM r "
                               "WHERE n + 1 < :high) SELECT n FROM r) AS s"),
            # SQLAlchemy's SQLite DATETIME text, naive UTC to the microsecond.
            "at": lambda seconds: (f"(strftime('%Y-%m-%d %H:%M:%S', '2025-01-01', '+' || ({seconds}) "
                                   "|| ' seconds') || '.000000')"),
            "uuid": lambda number: f"printf('%032x', {number})",
        }
    return {
        "series": lambda: "generate_series(CAST(:low AS integer), CAST(:high AS integer) - 1) AS s(n)",
        "at": lambda seconds: f"(TIMESTAMPTZ '2025-01-01 00:00:00+00' + ({seconds}) * INTERVAL '1 second')",
        "uuid": lambda number: f"CAST(lpad(to_hex({number}), 32, '0') AS uuid)",
    }


def fill(url: str, leads: int, *, start: int = 0, progress: Callable[[int], None] | None = None) -> None:
    """Leads ``start``…``leads``−1 (ids from 1), their form posts (ids 3n+1…3n+1+n%3) and
    marketing choices; the consent texts with the first.

    Lead n was first seen 30 s after lead n−1 from 2025-01-01 and came back n % 3 times, a day
    apart; sources, campaigns and resources cycle through short lists, scores spread over 0–100.
    """
    engine = create_engine(url)
    dialect = engine.dialect.name
    sql = _sql(dialect)
    first_seen = sql["at"]("s.n * 30")
    score = "((s.n * 37) % 101 + (s.n * 53) % 101) / 2"
    stage = (f"(CASE WHEN {score} >= 60 THEN {_case('s.n % 50', ('customer', 'sql', 'disqualified'))} "
             "ELSE NULL END)")
    leads_sql = f"""
        INSERT INTO leads (id, email, email_key, first_name, last_name, company, job_title,
                           company_size, industry, first_seen, last_seen, first_submission_id,
                           last_submission_id, fit, engagement, score, score_reasons, rules_version,
                           scored_at, stage, mql_at, marketing_choice)
        SELECT s.n + 1, 'Lead' || s.n || '@example' || (s.n % 1000) || '.com',
               'lead' || s.n || '@example' || (s.n % 1000) || '.com',
               {_case('s.n % 6', ('Ann', 'Bob', 'Chloé', 'Dev', 'Émilie', 'Femi'))},
               'Lee' || (s.n % 997), 'Company ' || (s.n % 5000),
               {_case('s.n % 5', ('Head of Growth', 'Marketing Manager', 'Intern', 'CTO', 'Analyst'))},
               {_case('s.n % 6', ('1-10', '11-50', '51-200', '201-1000', '1001-5000', '5000+'))},
               {_case('s.n % 4', ('Software', 'Healthcare', 'Education', 'Other'))},
               {first_seen}, {sql["at"]("s.n * 30 + (s.n % 3) * 86400")},
               3 * s.n + 1, 3 * s.n + 1 + s.n % 3,
               (s.n * 37) % 101, (s.n * 53) % 101, {score}, '{REASONS}', 'bench',
               {sql["at"]("400 * 86400")},
               COALESCE({stage}, CASE WHEN {score} >= 60 THEN 'mql'
                                      WHEN s.n % 100 = 7 THEN 'recycled' ELSE 'lead' END),
               CASE WHEN {score} >= 60 THEN {sql["at"]("s.n * 30 + 3600")} END,
               s.n % 2 = 0
        FROM {sql["series"]()}"""
    visit = "(s.n + v.v)"
    posts_sql = f"""
        INSERT INTO submissions (id, uid, lead_id, resource_id, created_at, email, first_name,
                                 last_name, company, utm_source, utm_medium, utm_campaign, referrer,
                                 user_agent, terms_accepted, terms_version, terms_sha256,
                                 marketing_opt_in, marketing_version, marketing_sha256)
        SELECT 3 * s.n + 1 + v.v, {sql["uuid"]("3 * s.n + 1 + v.v")}, s.n + 1,
               {_case(f"{visit} % 3", REQUESTED)}, {sql["at"]("s.n * 30 + v.v * 86400")},
               'lead' || s.n || '@example' || (s.n % 1000) || '.com', 'Ann', 'Lee' || (s.n % 997),
               'Company ' || (s.n % 5000),
               {_case(f"{visit} % 4", ('newsletter', 'linkedin', 'google', ''))},
               {_case(f"{visit} % 4", ('email', 'social', 'cpc', ''))},
               {_case(f"{visit} % 6", ('autumn', 'q4', 'brand', 'spring', 'webinar', ''))},
               'https://news.example.org/issue-12', 'Mozilla/5.0', TRUE, 'terms-2026-11',
               '{TERMS_SHA}', s.n % 2 = 0, 'marketing-2026-11', '{MARKETING_SHA}'
        FROM {sql["series"]()}
        JOIN (SELECT 0 AS v UNION ALL SELECT 1 UNION ALL SELECT 2) AS v ON v.v <= s.n % 3"""
    choices_sql = f"""
        INSERT INTO consent_events (lead_id, submission_id, kind, granted, version, sha256, created_at)
        SELECT s.n + 1, 3 * s.n + 1, 'marketing', s.n % 2 = 0, 'marketing-2026-11', '{MARKETING_SHA}',
               {first_seen}
        FROM {sql["series"]()}"""
    if start == 0:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO consent_texts (sha256, kind, version, text, first_seen) VALUES "
                f"('{TERMS_SHA}', 'terms', 'terms-2026-11', 'terms', {sql['at']('0')}), "
                f"('{MARKETING_SHA}', 'marketing', 'marketing-2026-11', 'marketing', {sql['at']('0')})"))
    for low in range(start, leads, CHUNK):
        high = min(low + CHUNK, leads)
        with engine.begin() as conn:
            if dialect == "postgresql":
                # Leads and their posts point at each other: the references hold once both are in.
                # (Triggers are off too: leads.marketing_choice is written with the lead.)
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            else:
                conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            for statement in (leads_sql, posts_sql, choices_sql):
                conn.execute(text(statement), {"low": low, "high": high})
        if progress:
            progress(high)
    # As autovacuum would leave a live database: statistics, and a visibility map for index-only scans.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE")
    engine.dispose()


def new_database(kind: str, stack: ExitStack, postgres_url: str | None = None) -> str:
    """The URL of a new database of ``kind`` at the newest schema, removed when the stack closes."""
    if kind == "sqlite":
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadgate-bench-")))
        url = f"sqlite:///{folder / 'leads.db'}"
    else:
        from live import POSTGRES_URL, PostgresUnavailable, postgres_database

        try:
            url = stack.enter_context(postgres_database("leadgate_bench", postgres_url or POSTGRES_URL))
        except PostgresUnavailable as e:
            raise SystemExit(str(e)) from None
    migrate.upgrade(url)
    return url


def cases(leads: int) -> dict[str, dict[str, str]]:
    """Every LeadFilter parameter alone: values matching many leads, and few or none."""
    last_day = date(2025, 1, 1) + timedelta(seconds=30 * leads)
    newest = (last_day - timedelta(days=1)).isoformat()
    return {
        "q: a last name (1 in 997)": {"q": "Lee421"},
        "q: an address": {"q": f"lead{leads // 2}@"},
        "q: a name nobody has": {"q": "Nobody-by-this-name"},
        "q: 2 letters nobody has (no index)": {"q": "zq"},
        "from+to: the oldest two days": {"from": "2025-01-01", "to": "2025-01-02"},
        "to: the first day": {"to": "2025-01-01"},
        "from: the latest day": {"from": newest},
        "resource: requested by a third": {"resource": "lead-scoring-sales-trusts"},
        "resource: nobody requested it": {"resource": "mql-hand-off-checklist"},
        "type: ebook (a third)": {"type": "ebook"},
        "type: tip-sheet (nobody)": {"type": "tip-sheet"},
        "utm_source: linkedin (a quarter)": {"utm_source": "LinkedIn"},
        "utm_source: unknown": {"utm_source": "bing"},
        "utm_medium: social": {"utm_medium": "social"},
        "utm_campaign: q4": {"utm_campaign": "q4"},
        "utm_campaign: unknown": {"utm_campaign": "black-friday"},
        "marketing: yes": {"marketing": "yes"},
        "marketing: no": {"marketing": "no"},
        "stage: mql": {"stage": "mql"},
        "stage: customer (few)": {"stage": "customer"},
        "stage: prospect (none)": {"stage": "prospect"},
        "score_min: 99": {"score_min": "99"},
        "score_max: 1": {"score_max": "1"},
        "score 40-60": {"score_min": "40", "score_max": "60"},
        "fit_min: 100": {"fit_min": "100"},
        "fit_max: 0": {"fit_max": "0"},
        "engagement_min: 100": {"engagement_min": "100"},
        "engagement_max: 0": {"engagement_max": "0"},
        "mql_from+to: the oldest day": {"mql_from": "2025-01-01", "mql_to": "2025-01-01"},
        "mql_from: the latest day": {"mql_from": newest},
    }


def measure(url: str, catalog: Catalog, leads: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each case; every case runs once in every round."""
    from capture.db.store import Store
    from capture.leads.filters import LeadFilter
    from capture.leads.queries import count_leads, list_leads

    store = Store(url)
    filters = {}
    for name, args in cases(leads).items():
        lead_filter, errors = LeadFilter.from_args(args, *catalog.choices())
        if errors:
            raise SystemExit(f"{name}: {errors}")
        filters[name] = lead_filter
    with store.read() as s:
        row = s.execute(text("SELECT score, id FROM leads ORDER BY score DESC, id DESC LIMIT 1 OFFSET :n"),
                        {"n": 499 * 50 - 1}).one()
    cursor = (row.score, row.id)

    def page(lead_filter: LeadFilter | None) -> None:
        count_leads(store, lead_filter, catalog)
        list_leads(store, lead_filter, "score", "desc", catalog=catalog)

    runs: dict[str, Callable[[], object]] = {
        "baseline (no filter, page and count)": lambda: page(None),
        "page 1 (list alone)": lambda: list_leads(store, None, "score", "desc"),
        "page 500 (list alone)": lambda: list_leads(store, None, "score", "desc", after=cursor),
        **{name: (lambda f=f: page(f)) for name, f in filters.items()},
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm the caches once
        run()
    for round_ in range(rounds):
        for name, run in (runs.items() if round_ % 2 == 0 else reversed(runs.items())):
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    page_500 = list_leads(store, None, "score", "desc", after=cursor)
    if len(page_500.rows) != 50 or not page_500.has_previous:
        raise SystemExit("page 500 is not a full page: fewer leads than 25,000?")
    store.dispose()
    return times


def report(kind: str, times: dict[str, list[float]]) -> list[str]:
    """The table of one database; the cases that missed their target."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    baseline = medians["baseline (no filter, page and count)"]
    page_1 = medians["page 1 (list alone)"]
    missed = []
    print(f"\n{kind}: medians of {len(next(iter(times.values())))} rounds")
    print(f"{'case':42} {'ms':>8} {'× base':>7} {'target':>7}")
    for name, median in medians.items():
        if name.startswith("page 500"):
            ratio, target = median / page_1, 2.0
        elif name.startswith(("baseline", "page 1")) or "(no index)" in name:
            ratio, target = median / baseline, None
        else:
            ratio, target = median / baseline, 5.0
        ok = target is None or ratio <= target
        if not ok:
            missed.append(f"{kind}: {name}")
        shown = "" if target is None else f"≤ {target:g}×"
        print(f"{name:42} {median * 1000:8.1f} {ratio:6.2f}× {shown:>7} {'' if ok else 'MISSED'}")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every case (5)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", help="PostgreSQL server for the throwaway database "
                        "(default: the tests' LEADGATE_TEST_DATABASE_URL or 127.0.0.1:5432/test)")
    args = parser.parse_args()
    if not (30_000 <= args.leads <= 5_000_000 and 1 <= args.rounds <= 50):
        parser.error("keep it bounded: --leads 30,000-5,000,000 (page 500 needs 25,000), --rounds 1-50")
    catalog = load_catalog(ROOT / "content")
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    missed = []
    for kind in kinds:
        with ExitStack() as stack:
            url = new_database(kind, stack, args.postgres_url)
            started = time.perf_counter()
            fill(url, args.leads, progress=lambda n: print(f"  {kind}: {n:,} leads", end="\r", file=sys.stderr))
            print(f"{kind}: filled {args.leads:,} leads in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            missed += report(kind, measure(url, catalog, args.leads, args.rounds))
    print("\nall targets met" if not missed else "\nmissed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
