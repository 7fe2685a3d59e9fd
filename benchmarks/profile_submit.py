"""Where a form post's time goes: the capture app in this process, under pyinstrument.

    .venv/bin/pip install pyinstrument
    .venv/bin/python benchmarks/profile_submit.py [--posts 1000] [--database-url URL]

Builds the app on a new, migrated SQLite file (or the database given, which must be
migrated and may be written to), sends the posts of benchmarks/submit.lua (three new visitors
in four, one returning) through Flask's test client, and prints the profile of the timed posts
and their mean time. No HTTP server and no other process: the numbers are the app's alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from capture import create_app
from capture.catalog import load_catalog
from capture.db.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=1000, help="timed posts (1000)")
    parser.add_argument("--database-url", help="default: a new SQLite file")
    args = parser.parse_args()
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("pyinstrument is not installed: .venv/bin/pip install pyinstrument") from None

    with tempfile.TemporaryDirectory(prefix="leadgate-profile-") as tmp:
        url = args.database_url or f"sqlite:///{tmp}/leadgate.db"
        if not args.database_url:
            upgrade(url)
        app = create_app({"SECRET_KEY": "profile-" + "k" * 32, "DATABASE_URL": url,
                          "CONTENT_DIR": str(ROOT / "content"), "SITE_DIR": None,
                          "BASE_URL": "http://localhost/", "RATE_LIMIT": "off"})
        catalog = load_catalog(ROOT / "content")
        resources = list(catalog)
        client = app.test_client()
        origin = "http://localhost"

        def post(n: int) -> None:
            resource = resources[n % len(resources)]
            visitor = n - 1 if n % 4 == 0 else n
            response = client.post("/submit", headers={"Origin": origin}, data={
                "email": f"profile.{visitor}@example.com", "resource_id": resource.id,
                "terms_sha256": resource.terms.sha256, "terms": "accepted",
                "marketing_sha256": catalog.settings.marketing.sha256,
                "first_name": "Bench", "last_name": "Mark", "company": "Throughput Ltd",
                "job_title": "Analyst", "utm_source": "newsletter", "utm_medium": "email",
                "utm_campaign": "benchmark", "referrer": "https://news.example.org/issue-12",
                "landing_page": f"{origin}/"})
            if response.status_code != 303:
                raise SystemExit(f"post {n} answered {response.status_code}: {response.text[:300]}")

        for n in range(1, WARM_UP + 1):
            post(n)
        profiler = Profiler(interval=0.0002)
        started = time.perf_counter()
        profiler.start()
        for n in range(WARM_UP + 1, WARM_UP + args.posts + 1):
            post(n)
        profiler.stop()
        elapsed = time.perf_counter() - started
    print(profiler.output_text(unicode=True, color=sys.stdout.isatty()))
    print(f"{args.posts} posts, {elapsed / args.posts * 1e6:.0f} µs each (profiler included)")


if __name__ == "__main__":
    main()
