"""Form posts while staff export: p50/p99 of the post alone, then during two full CSV exports.

    .venv/bin/python benchmarks/staff_isolation.py [--leads 1000000] [--rate 50] [--seconds 10]
                                                   [--design old,slots,new] [--rounds 1] [--database PATH]

Fills a throwaway SQLite database with N leads by bulk SQL (the data builder of
benchmarks/export_bench.py, on a schema made by the migrations), then for each design starts
the service as `leadgate serve` runs it (gunicorn with capture/gunicorn_conf.py, 2 workers for
visitors, on 127.0.0.1 and a free port, the daily score refresh off) and measures:

- **alone**: form posts (the fields of benchmarks/run.py, a new address each) sent at a fixed
  rate for --seconds, each on its own connection, latency counted from the moment the post
  was due (so a post that waits for a free client thread or a worker counts its wait);
- **2 exports**: the same posts while two staff clients download every lead at once, one
  through ``/api/leads.csv`` with an API token, one through ``/workspace/leads.csv`` signed in,
  each reading to the end; posts run until both downloads are complete.

Designs (--design): **old** is ``LEADGATE_EXPORT_SLOTS=0`` (2 sync workers, any worker may
stream an export at the visitors' priority: the service before export slots); **new** is the
default (2 workers for visitors + 2 export slots, rows made at nice +10); **slots** is new
without the lower priority (``LEADGATE_EXPORT_NICENESS=0``), to see what each part gives.
`/healthz` is probed twice a second throughout. An export that does not arrive whole (the old
design's workers are ended by gunicorn's 30 s timeout) is marked CUT. The 2 cores are shared
with whatever else runs on the machine: compare the designs within one run, and look at the
ratio of each design's p99 to its own baseline. Target: p99 of the form post under 100 ms
during the exports.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from export_bench import MARKETING, TERMS, fill  # noqa: E402
from live import BIN, SECRET_KEY, LiveServer  # noqa: E402
from run import COMMON_FIELDS  # noqa: E402
from sqlalchemy import create_engine, insert  # noqa: E402

from capture.catalog import Catalog, load_catalog  # noqa: E402
from capture.db.migrate import upgrade  # noqa: E402
from capture.db.models import ConsentTextRow  # noqa: E402

ROOT = HERE.parent
STAFF_EMAIL = "bench.staff@example.com"
STAFF_PASSWORD = "benchmark staff password"
TOKEN = re.compile(r"lg_[A-Za-z0-9_-]{20,}")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: The settings of each design; "new" is the default configuration.
DESIGNS: dict[str, dict[str, str]] = {
    "old": {"LEADGATE_EXPORT_SLOTS": "0"},
    "slots": {"LEADGATE_EXPORT_NICENESS": "0"},
    "new": {},
}
#: Longest a download may take before the run gives up on it.
EXPORT_TIMEOUT = 600


@dataclass
class Latencies:
    posts: list[float] = field(default_factory=list)
    healthz: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.posts)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def rate(self) -> float:
        return len(self.posts) / self.seconds


@dataclass
class Download:
    path: str
    status: int = 0
    bytes: int = 0
    rows: int = 0
    seconds: float = 0.0
    error: str = ""


# --- The database -------------------------------------------------------------------------

def build_database(url: str, leads: int) -> None:
    """The migrated schema, the consent texts, then the leads in bulk (export_bench's builder)."""
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        # The migrations left the file in WAL mode, where one transaction of a million leads
        # would go through a WAL of gigabytes; the service turns WAL on again when it connects.
        conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
        conn.execute(insert(ConsentTextRow), [
            {"sha256": sha, "kind": kind, "version": version, "text": f"{kind} text",
             "first_seen": datetime(2025, 1, 1, tzinfo=UTC)} for sha, kind, version in (TERMS, MARKETING)])
    engine.dispose()
    started = time.perf_counter()
    fill(url, 0, leads, 1)
    print(f"filled {leads:,} leads in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def staff_token(env: dict[str, str], new_account: bool) -> str:
    """A sales account (unless the reused database has it) and a new API token, made with the
    CLI as an admin would."""
    leadgate = str(BIN / "leadgate")
    if new_account:
        subprocess.run([leadgate, "user", "add", STAFF_EMAIL, "--role", "sales", "--password-stdin"],
                       input=STAFF_PASSWORD + "\n", env=env, cwd=ROOT, check=True, capture_output=True,
                       text=True, timeout=60)
    out = subprocess.run([leadgate, "token", "create", STAFF_EMAIL, "--name", "benchmark"], env=env,
                         cwd=ROOT, check=True, capture_output=True, text=True, timeout=60).stdout
    return TOKEN.search(out).group(0)


# --- HTTP on loopback -----------------------------------------------------------------------

def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def signed_in_cookie(port: int) -> str:
    """The workspace's session cookie after signing in through the form, as a browser does."""
    status, headers, page = request(port, "GET", "/workspace/login")
    cookie = SimpleCookie(headers.get("Set-Cookie", ""))
    jar = "; ".join(f"{k}={v.value}" for k, v in cookie.items())
    token = CSRF.search(page.decode()).group(1)
    form = urlencode({"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token}).encode()
    status, headers, _ = request(port, "POST", "/workspace/login", form, {
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": jar})
    if status != 303:
        raise SystemExit(f"signing in to the workspace answered {status}")
    cookie = SimpleCookie(headers.get("Set-Cookie", ""))
    return "; ".join(f"{k}={v.value}" for k, v in cookie.items())


def post_body(catalog: Catalog, url: str, tag: str, n: int) -> bytes:
    resources = list(catalog)
    resource = resources[n % len(resources)]
    return urlencode({**COMMON_FIELDS, "email": f"iso.{tag}.{n}@example.com", "resource_id": resource.id,
                      "terms_sha256": resource.terms.sha256,
                      "marketing_sha256": catalog.settings.marketing.sha256,
                      "landing_page": f"{url}/resources/{resource.id}/"}).encode()


def load(server: LiveServer, catalog: Catalog, tag: str, rate: float, until: threading.Event | None,
         seconds: float) -> Latencies:
    """Posts due every 1/rate s (open loop) until ``until`` is set, or for ``seconds``."""
    result = Latencies()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": server.url,
               "Referer": f"{server.url}/"}
    lock = threading.Lock()

    def post(n: int, due: float) -> None:
        try:
            status, _, _ = request(server.port, "POST", "/submit", post_body(catalog, server.url, tag, n),
                                   headers, timeout=120)
            waited = time.perf_counter() - due
            with lock:
                (result.posts.append(waited) if status == 303 else result.failed.append(str(status)))
        except OSError as e:
            with lock:
                result.failed.append(type(e).__name__)

    def probe(due: float) -> None:
        try:
            status, _, _ = request(server.port, "GET", "/healthz", timeout=120)
            with lock:
                result.healthz.append(time.perf_counter() - due)
        except OSError as e:
            with lock:
                result.failed.append(f"healthz {type(e).__name__}")

    # Enough client threads that a slow answer never delays the next post's start.
    with ThreadPoolExecutor(max_workers=128) as pool:
        started = time.perf_counter()
        n = 0
        while True:
            due = started + n / rate
            if (until.is_set() if until is not None else due - started >= seconds):
                break
            if due - started > EXPORT_TIMEOUT:
                raise SystemExit("the exports did not finish in time")
            time.sleep(max(0.0, due - time.perf_counter()))
            pool.submit(post, n, due)
            if n % max(1, round(rate / 2)) == 0:
                pool.submit(probe, due)
            n += 1
        result.seconds = time.perf_counter() - started
    return result


def download(port: int, path: str, headers: dict[str, str]) -> Download:
    """Read an export to its end, counting bytes and rows (each generated row starts ``lead``)."""
    result = Download(path)
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        result.status = response.status
        tail = b""
        while chunk := response.read(1 << 20):
            result.bytes += len(chunk)
            data = tail + chunk
            result.rows += data.count(b"\nlead")
            tail = data[-4:]
    except (OSError, http.client.HTTPException) as e:
        result.error = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    result.seconds = time.perf_counter() - started
    return result


def measure(server: LiveServer, catalog: Catalog, design: str, round_: int, rate: float, seconds: float,
            token: str, leads: int) -> tuple[Latencies, Latencies, list[Download]]:
    cookie = signed_in_cookie(server.port)
    load(server, catalog, f"{design}{round_}w", rate, None, 2)  # warm-up: imports, first connections
    alone = load(server, catalog, f"{design}{round_}a", rate, None, seconds)
    done = threading.Event()
    downloads: list[Download] = []

    def both() -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [pool.submit(download, server.port, "/api/leads.csv", {"Authorization": f"Bearer {token}"}),
                    pool.submit(download, server.port, "/workspace/leads.csv", {"Cookie": cookie})]
            downloads.extend(job.result() for job in jobs)
        done.set()

    exporter = threading.Thread(target=both)
    exporter.start()
    during = load(server, catalog, f"{design}{round_}e", rate, done, seconds)
    exporter.join()
    for d in downloads:
        if d.status != 200 or d.error or d.rows != leads:
            # Reported, not fatal: with the old design gunicorn may end a worker whose export
            # outlasts its 30 s timeout.
            d.error = d.error or f"{d.rows:,} of {leads:,} rows"
            print(f"  {design}: {d.path} answered {d.status}, incomplete: {d.error}", file=sys.stderr)
    return alone, during, downloads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=50, help="form posts per second (50)")
    parser.add_argument("--seconds", type=float, default=10, help="length of the baseline (10)")
    parser.add_argument("--design", default="old,new",
                        help="comma-separated designs to run: old, slots (slots without the lower "
                             "priority), new (old,new)")
    parser.add_argument("--database", type=Path,
                        help="SQLite file to keep and reuse, filled with --leads when missing "
                             "(reuse it with the same --leads; default: a temp file)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each design, alternating (1)")
    args = parser.parse_args()
    if not (1_000 <= args.leads <= 5_000_000 and 1 <= args.rate <= 500 and 1 <= args.seconds <= 120
            and 1 <= args.rounds <= 5):
        parser.error("keep it bounded: --leads 1,000-5,000,000, --rate 1-500, --seconds 1-120, --rounds 1-5")
    designs = [d.strip() for d in args.design.split(",") if d.strip()]
    if not designs or set(designs) - set(DESIGNS):
        parser.error(f"--design: choose from {', '.join(DESIGNS)}")
    catalog = load_catalog(ROOT / "content")
    rows: list[tuple[str, int, Latencies, Latencies, list[Download]]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadgate-isolation-")))
        path = (args.database or tmp / "leads.db").resolve()
        url = f"sqlite:///{path}"
        fresh = not path.exists()
        if fresh:
            build_database(url, args.leads)
        env = {**os.environ, "LEADGATE_DATABASE_URL": url, "LEADGATE_SECRET_KEY": SECRET_KEY,
               "LEADGATE_BASE_URL": "http://127.0.0.1/",
               "LEADGATE_INSTANCE_PATH": str(tmp / "instance")}
        token = staff_token(env, fresh)
        site = tmp / "site"
        for round_ in range(1, args.rounds + 1):
            for design in designs:
                workdir = tmp / f"{design}-{round_}"
                workdir.mkdir()
                settings = {"LEADGATE_SCORE_REFRESH_SECONDS": "0", "LEADGATE_RATE_LIMIT": "off",
                            **DESIGNS[design]}
                built = site.is_dir()
                with LiveServer(workdir, url, workers=2, site_dir=site, build=not built,
                                settings=settings) as server:
                    alone, during, downloads = measure(server, catalog, design, round_, args.rate,
                                                       args.seconds, token, args.leads)
                rows.append((design, round_, alone, during, downloads))
                print(f"  {design} round {round_}: alone p99 {alone.pct(0.99):.1f} ms, during exports "
                      f"p99 {during.pct(0.99):.1f} ms, exports "
                      f"{', '.join(f'{d.seconds:.1f} s' for d in downloads)}", file=sys.stderr)

    print(f"\n{args.leads:,} leads (SQLite); form posts at {args.rate:g}/s, each on a new connection; "
          "two exports (API and workspace) at once in the second phase")
    print(f"{'design':7} {'round':>5} {'phase':10} {'posts':>6} {'req/s':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'healthz max':>12} {'failed':>6} {'exports':>22}")
    for design, round_, alone, during, downloads in rows:
        for phase, lat in (("alone", alone), ("2 exports", during)):
            exports = ("" if phase == "alone" else " + ".join(
                f"{d.seconds:.1f} s{' CUT' if d.error else ''}" for d in downloads)
                + f" ({max(d.bytes for d in downloads) / 2**20:.0f} MB)")
            print(f"{design:7} {round_:>5} {phase:10} {len(lat.posts):>6} {lat.rate:>6.1f} {lat.pct(0.5):>8.1f} "
                  f"{lat.pct(0.99):>8.1f} {max(lat.posts) * 1000:>8.1f} "
                  f"{max(lat.healthz) * 1000 if lat.healthz else 0:>9.1f} ms {len(lat.failed):>6} {exports:>22}")
    print("\np99 during the exports / p99 alone (median of rounds):")
    for design in designs:
        ratios = [d.pct(0.99) / a.pct(0.99) for n, _, a, d, _ in rows if n == design]
        worst = max(d.pct(0.99) for n, _, _, d, _ in rows if n == design)
        verdict = "meets" if worst < 100 else "misses"
        print(f"  {design}: {statistics.median(ratios):.1f}x; worst p99 during exports {worst:.1f} ms "
              f"({verdict} the target of < 100 ms)")


if __name__ == "__main__":
    main()
