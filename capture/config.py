"""Settings of the capture service: documented defaults, read from ``LEADGATE_*`` variables.

Every key below can be set as an environment variable with the ``LEADGATE_`` prefix
(``LEADGATE_SITE_URL=https://www.example.com``). Flask parses each value as JSON when it can,
so ``true`` and ``600`` arrive typed while ``yes`` or ``https://…`` arrive as text;
:func:`finalize` turns every value into the type the service expects, or stops with a
:class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

SECRET_KEY_FILE = "secret_key"
#: Shortest secret key accepted; a generated one has 64 hex digits.
SECRET_KEY_MIN = 32
GENERATE_SECRET = "python -c 'import secrets; print(secrets.token_hex(32))'"
DATABASE_FILE = "leadgate.db"
SPOOL_FILE = "spool.jsonl"

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """A setting the service cannot start with; the message says which and how to fix it."""


class Config:
    #: Signs download links and staff sessions: ``LEADGATE_SECRET_KEY``, at least 32 characters.
    #: Only in demo, debug or test mode may it be left unset: then the key in
    #: ``instance/secret_key`` is used, created on first use. Anywhere else the service refuses
    #: to start without it, rather than sign with a demo's key or invent a key per process.
    SECRET_KEY: str | None = None
    #: SQLAlchemy URL. None means ``sqlite:///<instance folder>/leadgate.db``.
    #: PostgreSQL: ``postgresql+psycopg://user:password@host/dbname``.
    DATABASE_URL: str | None = None
    #: Milliseconds a SQLite write waits for another writer before it gives up (and the
    #: submission goes to the spool instead).
    SQLITE_BUSY_TIMEOUT_MS: int = 5000
    #: Where submissions wait when the database cannot take them: an append-only file of JSON
    #: lines, fsync'd, shared by the workers of one host. None means
    #: ``<instance folder>/spool.jsonl``. See ``leadgate spool status`` and ``leadgate spool replay``.
    SPOOL_PATH: str | None = None
    #: Seconds between replays of the spool by each worker while it holds lines (a worker
    #: starts replaying when it spools a line, or finds lines at its first request).
    #: 0 turns the background replay off: run ``leadgate spool replay`` yourself.
    SPOOL_RETRY_SECONDS: float = 30
    #: Seconds between each serving process's looks for scores from an earlier UTC day (or
    #: older rules), which it then rescores so decay is today's (capture.scoring.apply).
    #: 0 turns the refresh off: run ``leadgate rescore`` daily yourself.
    SCORE_REFRESH_SECONDS: float = 600
    #: ``leadgate serve`` migrates the database to the newest schema before its workers start
    #: (``leadgate db upgrade`` does the same on its own). Set to false when deployments run
    #: ``leadgate db upgrade`` as a separate step; the service never changes the schema itself,
    #: and answers ``/readyz`` with 503 until the database is at the schema it needs.
    AUTO_UPGRADE: bool = True
    #: The content folder (resources and ``leadgate.yml``), relative to the working directory.
    CONTENT_DIR: str = "content"
    #: The built site (``mkdocs build`` output). When set, error and thank-you pages are
    #: rendered inside the built pages so they look like the site.
    SITE_DIR: str | None = None
    #: Public address of the site, e.g. ``https://www.example.com/``; empty means the site is
    #: served from the same host as the service. Links back to landing pages start here.
    SITE_URL: str = ""
    #: Comma-separated exact origins (``https://www.example.com``) whose pages may post the
    #: form and read the JSON answer (CORS). The service's own origin is always allowed.
    ALLOWED_ORIGINS: str | list[str] = ""
    #: Seconds a download link stays valid.
    DOWNLOAD_MAX_AGE: int = 7 * 24 * 3600
    #: Ask DNS whether the email domain receives mail (slower; needs network access).
    CHECK_DELIVERABILITY: bool = False
    #: Number of proxies in front of the service whose ``X-Forwarded-For`` may be trusted.
    #: 0 trusts none: the visitor's address is the connecting peer. IP addresses are never
    #: stored whole: only the /24 (IPv4) or /48 (IPv6) network is kept.
    PROXY_FIX_X_FOR: int = 0
    #: Trusted proxies setting ``X-Forwarded-Proto`` (https behind a TLS-terminating proxy).
    PROXY_FIX_X_PROTO: int = 0
    #: Trusted proxies setting ``X-Forwarded-Host``.
    PROXY_FIX_X_HOST: int = 0
    #: Largest request body accepted, in bytes; larger posts are answered with 413.
    MAX_CONTENT_LENGTH: int = 64 * 1024
    #: The service's public address, e.g. ``https://leads.example.com/``: every link it builds
    #: (thank-you pages, download links, links in emails) starts here, never with the Host a
    #: request names. Required outside demo and test mode; ``leadgate serve --demo`` sets it to
    #: the address it listens on.
    BASE_URL: str = ""
    #: Comma-separated host names the service answers for (Flask's TRUSTED_HOSTS); a request
    #: naming another Host gets 400. Empty means the host of BASE_URL, plus 127.0.0.1 and
    #: localhost in demo and test mode.
    TRUSTED_HOSTS: str | list[str] = ""
    #: Comma-separated exact origins that may show the landing pages in a frame (CSP
    #: ``frame-ancestors``); the workspace may never be framed. Empty: only the site itself.
    FRAME_ANCESTORS: str | list[str] = ""
    #: Form posts allowed per client address, as Flask-Limiter limit strings separated by ``;``
    #: (``20/minute;200/hour``); ``off`` turns every limit on the form off (load tests). Counts
    #: are shared by every worker and host when RATELIMIT_STORAGE_URI is Redis.
    RATE_LIMIT: str = "20/minute;200/hour"
    #: Form posts allowed per network: the /24 of an IPv4 address, the /48 of an IPv6 one.
    RATE_LIMIT_NETWORK: str = "60/minute;600/hour"
    #: Form posts allowed per email address (normalised, so spellings of one address count together).
    RATE_LIMIT_EMAIL: str = "5/minute;30/day"
    #: A post sent sooner than this many seconds after its form was shown is held as spam.
    FORM_MIN_SECONDS: float = 3
    #: Seconds a form token (fetched by the page script when the form is shown) stays fresh.
    FORM_TOKEN_MAX_AGE: int = 4 * 3600
    #: ``refuse`` (the visitor is asked for another address) or ``suspect`` (the post is held
    #: in the spam folder) for addresses at throw-away email domains.
    DISPOSABLE_EMAILS: str = "refuse"
    #: Days a post held as spam stays in the spam folder before it is purged.
    SPAM_KEEP_DAYS: int = 30
    #: Seconds a workspace session may go unused before it ends on the server
    #: (PERMANENT_SESSION_LIFETIME ends it in any case). See /workspace/sessions.
    SESSION_IDLE_SECONDS: int = 3600
    #: Whether marketing accounts may export leads' contact details (CSV); admins decide.
    MARKETING_CAN_EXPORT: bool = True
    #: Requests to ``/api/leads.csv`` allowed per API token (Flask-Limiter limit strings separated
    #: by ``;``; ``off`` turns the limit off). Checked at start by capture.staff.exports.
    API_EXPORT_RATE_LIMIT: str = "10/minute;100/hour"
    #: Demo mode (``leadgate serve --demo``): without LEADGATE_SECRET_KEY, the demo's key in
    #: ``instance/secret_key`` signs links (created when missing).
    DEMO: bool = False
    #: Send the workspace's sign-in cookie over HTTPS only. Set it to true whenever staff reach
    #: the service over HTTPS (directly or through a TLS-terminating proxy); the default, false,
    #: is for the local demo on http://127.0.0.1.
    SESSION_COOKIE_SECURE: bool = False
    #: The sign-in cookie is never readable by scripts in the page.
    SESSION_COOKIE_HTTPONLY: bool = True
    #: Browsers send the sign-in cookie when following a link from another site, but not with
    #: another site's form posts or embedded requests (a second guard beside the CSRF tokens).
    SESSION_COOKIE_SAMESITE: str = "Lax"
    #: Seconds a workspace sign-in lasts in all, however much it is used: then its session ends
    #: on the server and the person signs in again (SESSION_IDLE_SECONDS ends it sooner).
    PERMANENT_SESSION_LIFETIME: int = 12 * 3600
    #: Where rate-limit counts are kept, shared by every worker and host (a Flask-Limiter storage
    #: URI): Redis, ``redis://127.0.0.1:6379`` (needs the ``redis`` package: ``pip install
    #: 'leadgate[redis]'``). With the default ``memory://`` the failed sign-ins and API tokens,
    #: and the API's exports, are counted in the database (table ``rate_counts``) instead, never
    #: per process; the form's posts and its spent form tokens are counted in each process's
    #: memory (a host with N workers allows about N times RATE_LIMIT): set Redis in production.
    #: ``RATELIMIT_KEY_PREFIX`` starts every key (several services on one Redis).
    RATELIMIT_STORAGE_URI: str = "memory://"
    #: How many exports (``/workspace/leads.csv``, ``/api/leads.csv``) may stream at once on this
    #: host. gunicorn runs this many workers on top of the visitors' ($WEB_CONCURRENCY, else 2),
    #: so however many exports run, the visitors' workers stay free; one more export is refused
    #: with 503 and ``Retry-After``. 0 turns all this off (the design before slots): no worker
    #: is added, exports may take every worker and stream at the visitors' priority, and
    #: visitors then wait behind them. See docs/deployment.md.
    EXPORT_SLOTS: int = 2
    #: The SMTP server emails leave through (capture.mail.smtp), e.g.
    #: ``smtp://user:password@mail.example.com:587?starttls=true`` or ``smtps://…:465``.
    #: Empty: no email is ever sent, and everything else works as before.
    SMTP_URL: str = ""
    #: Seconds to wait for the SMTP server before an attempt fails (and is tried again later).
    SMTP_TIMEOUT: float = 30
    #: The sender of every email, ``Name <address>`` or an address. Required with SMTP_URL.
    MAIL_FROM: str = ""
    #: The postal address printed at the foot of every email (anti-spam laws require one for
    #: marketing mail). Empty: the controller's address in content/leadgate.yml.
    POSTAL_ADDRESS: str = ""
    #: Send the resource's download link by email, and say so on the thank-you page instead of
    #: showing the link. Needs SMTP_URL.
    EMAIL_DELIVERY: bool = False
    #: A marketing opt-in counts only once the person clicks the confirmation link emailed to
    #: them (a ``confirmed`` event in the consent ledger). Needs SMTP_URL.
    DOUBLE_OPT_IN: bool = False
    #: Most emails one address receives in 24 hours, whatever the posts (a bot cannot use the
    #: form to flood a stranger's inbox). Five: one confirmation (never a second while its link
    #: is valid) and four resources.
    EMAILS_PER_ADDRESS_PER_DAY: int = 5
    #: Seconds a confirmation link stays valid.
    CONFIRM_MAX_AGE: int = 7 * 24 * 3600
    #: Attempts at a job (sending an email…) before it is given up and shown as failed.
    JOB_MAX_ATTEMPTS: int = 8
    #: Seconds a worker holds a job; a job whose worker died is taken by another after this.
    JOB_LEASE_SECONDS: int = 300
    #: Seconds an idle worker waits before it looks for due jobs again.
    WORKER_POLL_SECONDS: float = 1
    #: Erase leads inactive for longer than ``retention_months`` (content/leadgate.yml) once a
    #: day, as a job of the worker. Off until the team that deploys turns it on, having read
    #: what ``leadgate privacy purge --dry-run`` would erase: an erasure cannot be undone, and an
    #: upgrade must not empty a database of its older leads overnight.
    RETENTION_PURGE: bool = False
    #: How much lower than the visitors' the CPU priority of an export's rows is, 0 to 19:
    #: added to the nice value of the thread that makes them (Linux; elsewhere ignored), so
    #: visitors' requests get the cores first while exports stream. 0: the same priority.
    EXPORT_NICENESS: int = 10


BOOLEANS = ("CHECK_DELIVERABILITY", "DEMO", "TESTING", "DEBUG", "AUTO_UPGRADE", "SESSION_COOKIE_SECURE",
            "SESSION_COOKIE_HTTPONLY", "MARKETING_CAN_EXPORT", "EMAIL_DELIVERY", "DOUBLE_OPT_IN",
            "RETENTION_PURGE")
INTEGERS = ("DOWNLOAD_MAX_AGE", "PROXY_FIX_X_FOR", "PROXY_FIX_X_PROTO", "PROXY_FIX_X_HOST",
            "MAX_CONTENT_LENGTH", "PERMANENT_SESSION_LIFETIME", "EXPORT_SLOTS", "EXPORT_NICENESS",
            "FORM_TOKEN_MAX_AGE", "SPAM_KEEP_DAYS", "SESSION_IDLE_SECONDS", "EMAILS_PER_ADDRESS_PER_DAY",
            "CONFIRM_MAX_AGE", "JOB_MAX_ATTEMPTS", "JOB_LEASE_SECONDS")
TEXTS = ("SECRET_KEY", "DATABASE_URL", "CONTENT_DIR", "SITE_DIR", "SITE_URL", "SESSION_COOKIE_SAMESITE",
         "RATELIMIT_STORAGE_URI", "BASE_URL", "RATE_LIMIT", "RATE_LIMIT_NETWORK", "RATE_LIMIT_EMAIL",
         "DISPOSABLE_EMAILS", "API_EXPORT_RATE_LIMIT", "SMTP_URL", "MAIL_FROM", "POSTAL_ADDRESS")


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ConfigError(f"LEADGATE_{name} must be true or false, not {value!r}.")


def as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"LEADGATE_{name} must be a whole number, not {value!r}.")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"LEADGATE_{name} must be a whole number, not {value!r}.") from None


def as_seconds(name: str, value: Any) -> float:
    """A number of seconds, fractions allowed, never negative."""
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = -1.0
    if isinstance(value, bool) or not seconds >= 0:  # "not >=" refuses nan too
        raise ConfigError(f"LEADGATE_{name} must be a number of seconds (0 or more), not {value!r}.")
    return seconds


def as_origins(value: Any, name: str = "ALLOWED_ORIGINS") -> list[str]:
    """Exact origins from a comma-separated string or a list, without trailing slashes."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    origins = []
    for item in items:
        origin = str(item).strip().rstrip("/").lower()
        if not origin:
            continue
        if not origin.startswith(("http://", "https://")) or "/" in origin.split("://", 1)[1]:
            raise ConfigError(
                f"LEADGATE_{name}: {item!r} is not an origin; "
                "write scheme and host only, e.g. https://www.example.com"
            )
        origins.append(origin)
    return origins


#: Most exports one host may stream at once: each holds a gunicorn worker of its own.
EXPORT_SLOTS_MAX = 16


def check_export_limits(slots: int, niceness: int) -> None:
    """EXPORT_SLOTS and EXPORT_NICENESS within what they can mean (gunicorn's settings read it too)."""
    if not 0 <= slots <= EXPORT_SLOTS_MAX:
        raise ConfigError(f"LEADGATE_EXPORT_SLOTS must be 0 (no limit) to {EXPORT_SLOTS_MAX} exports "
                          f"at once, not {slots}.")
    if not 0 <= niceness <= 19:
        raise ConfigError(f"LEADGATE_EXPORT_NICENESS must be 0 (the visitors' priority) to 19, not {niceness}.")


def export_slots(environ: Mapping[str, str]) -> int:
    """LEADGATE_EXPORT_SLOTS from the environment, for gunicorn's settings (read before any app)."""
    slots = as_int("EXPORT_SLOTS", environ.get("LEADGATE_EXPORT_SLOTS", Config.EXPORT_SLOTS))
    check_export_limits(slots, 0)
    return slots


def resolve_secret_key(configured: str | None, instance_path: Path, demo: bool) -> str:
    """The configured key; in demo, debug or test mode without one, the demo's key in
    ``instance/secret_key``, created when missing. Outside those modes the file is never read:
    a key left there by a demo must not sign a real service's links."""
    if configured:
        return _long_enough(configured, "LEADGATE_SECRET_KEY")
    path = Path(instance_path) / SECRET_KEY_FILE
    if not demo:
        raise ConfigError(
            f"No secret key: set LEADGATE_SECRET_KEY (generate one with `{GENERATE_SECRET}`), "
            "or try the service with `leadgate serve --demo`."
        )
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return _long_enough(key, str(path))
    key = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return key


def _long_enough(key: str, where: str) -> str:
    if len(key) < SECRET_KEY_MIN:
        raise ConfigError(
            f"{where} is {len(key)} characters long; a secret key needs at least {SECRET_KEY_MIN} "
            f"(generate one with `{GENERATE_SECRET}`)."
        )
    return key


def check_database_driver(url: str) -> None:
    """A database Leadgate does not speak, or PostgreSQL without psycopg 3 installed: say
    what to write or install, not a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"LEADGATE_DATABASE_URL is not a database URL: {url!r}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"LEADGATE_DATABASE_URL must be a SQLite or PostgreSQL URL, not {backend}: "
                          "sqlite:///path/leadgate.db or postgresql+psycopg://user:password@host/db.")
    if backend == "postgresql" and driver != "psycopg":
        # SQLAlchemy's psycopg 3 dialect is the one Leadgate is tested with.
        raise ConfigError(f"LEADGATE_DATABASE_URL: PostgreSQL is reached through psycopg 3, not {driver}: "
                          "write postgresql+psycopg://user:password@host/db.")
    if backend == "postgresql" and importlib.util.find_spec("psycopg") is None:
        raise ConfigError("LEADGATE_DATABASE_URL names PostgreSQL, but its driver is not installed: "
                          "pip install 'leadgate[postgres]' (psycopg 3).")


def check_mail(config: Mapping[str, Any]) -> None:
    """SMTP_URL readable, MAIL_FROM an address, and email features only with a server to send."""
    from email.headerregistry import Address
    from email.utils import parseaddr

    from capture.mail.smtp import parse_smtp_url

    for name in ("EMAIL_DELIVERY", "DOUBLE_OPT_IN"):
        if config[name] and not config["SMTP_URL"]:
            raise ConfigError(f"LEADGATE_{name} needs a server to send through: set LEADGATE_SMTP_URL, "
                              "e.g. smtp://127.0.0.1:1025 for a local test server.")
    if not config["SMTP_URL"]:
        return
    try:
        parse_smtp_url(config["SMTP_URL"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    name, address = parseaddr(config["MAIL_FROM"])
    try:
        Address(display_name=name, addr_spec=address)
        valid = "@" in address
    except (ValueError, IndexError):
        valid = False
    if not valid:
        raise ConfigError("LEADGATE_MAIL_FROM must be the sender of every email, e.g. "
                          f"'Example Marketing <hello@example.com>', not {config['MAIL_FROM']!r}.")


def check_form_limits(config: Mapping[str, Any]) -> None:
    """RATE_LIMIT, RATE_LIMIT_NETWORK and RATE_LIMIT_EMAIL: limit strings, or off."""
    from capture.spam.limits import SETTINGS, parse_limits

    for name in SETTINGS:
        try:
            parse_limits(name, config[name])
        except ValueError as e:
            raise ConfigError(str(e)) from None


#: What a BASE_URL looks like, for the message that asks for one.
BASE_URL_EXAMPLE = "https://leads.example.com/"
#: Hosts the demo and the tests answer for besides BASE_URL's: what a browser on this machine names.
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def as_base_url(value: str, demo: bool) -> str:
    """BASE_URL as ``scheme://host[:port]/path/``; in demo and test mode ``http://localhost/``
    when unset (the test client's host; ``leadgate serve --demo`` sets the address it binds)."""
    from urllib.parse import urlsplit

    value = value.strip()
    if not value:
        if not demo:
            raise ConfigError(
                "No base URL: set LEADGATE_BASE_URL to the service's public address, e.g. "
                f"{BASE_URL_EXAMPLE} (every link the service sends starts there), "
                "or try the service with `leadgate serve --demo`.")
        value = "http://localhost/"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"LEADGATE_BASE_URL must be an http(s) address such as {BASE_URL_EXAMPLE}, "
                          f"not {value!r}.")
    return value if value.endswith("/") else value + "/"


def as_hosts(value: Any, base_url: str, demo: bool) -> list[str]:
    """TRUSTED_HOSTS: the names given (or BASE_URL's host alone), always BASE_URL's host, and in
    demo and test mode 127.0.0.1 and localhost. Names only: a port is not part of the check."""
    from urllib.parse import urlsplit

    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    hosts = []
    for item in items:
        host = str(item).strip().lower()
        if not host:
            continue
        if "/" in host or (":" in host and not host.startswith("[")):
            raise ConfigError(f"LEADGATE_TRUSTED_HOSTS: {item!r} is not a host name; write names only, "
                              "e.g. leads.example.com,www.example.com")
        hosts.append(host)
    if base_url:
        hosts.append(urlsplit(base_url).hostname or "")
    if demo:
        hosts += LOCAL_HOSTS
    return list(dict.fromkeys(hosts))


def finalize(app: Flask) -> None:
    """Coerce values that came from the environment and fill the derived defaults."""
    config = app.config
    for name in BOOLEANS:
        config[name] = as_bool(name, config.get(name, False))
    for name in INTEGERS:
        config[name] = as_int(name, config[name])
    for name in TEXTS:
        if config.get(name) is not None:
            config[name] = str(config[name])
    config["ALLOWED_ORIGINS"] = as_origins(config["ALLOWED_ORIGINS"])
    config["FRAME_ANCESTORS"] = as_origins(config["FRAME_ANCESTORS"], "FRAME_ANCESTORS")
    check_export_limits(config["EXPORT_SLOTS"], config["EXPORT_NICENESS"])
    check_form_limits(config)
    for name in ("SMTP_TIMEOUT", "WORKER_POLL_SECONDS"):
        config[name] = as_seconds(name, config[name])
    for name in ("EMAILS_PER_ADDRESS_PER_DAY", "CONFIRM_MAX_AGE", "JOB_MAX_ATTEMPTS", "JOB_LEASE_SECONDS"):
        if config[name] < 1:
            raise ConfigError(f"LEADGATE_{name} must be 1 or more.")
    check_mail(config)
    for name in ("PERMANENT_SESSION_LIFETIME", "SESSION_IDLE_SECONDS"):
        if config[name] <= 0:
            raise ConfigError(f"LEADGATE_{name} must be a positive number of seconds.")
    if config["DOWNLOAD_MAX_AGE"] <= 0:
        raise ConfigError("LEADGATE_DOWNLOAD_MAX_AGE must be a positive number of seconds.")
    config["CONTENT_DIR"] = str(Path(config["CONTENT_DIR"]).resolve())
    if config["SITE_URL"] and not config["SITE_URL"].endswith("/"):
        config["SITE_URL"] += "/"
    if config.get("SITE_DIR"):
        config["SITE_DIR"] = str(Path(config["SITE_DIR"]).resolve())
    if not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / DATABASE_FILE}"
    check_database_driver(config["DATABASE_URL"])
    config["SQLITE_BUSY_TIMEOUT_MS"] = as_int("SQLITE_BUSY_TIMEOUT_MS", config["SQLITE_BUSY_TIMEOUT_MS"])
    if config["SQLITE_BUSY_TIMEOUT_MS"] < 0:
        raise ConfigError("LEADGATE_SQLITE_BUSY_TIMEOUT_MS must be 0 or more milliseconds.")
    config["SPOOL_PATH"] = str(Path(config.get("SPOOL_PATH") or Path(app.instance_path) / SPOOL_FILE).resolve())
    config["SPOOL_RETRY_SECONDS"] = as_seconds("SPOOL_RETRY_SECONDS", config["SPOOL_RETRY_SECONDS"])
    config["SCORE_REFRESH_SECONDS"] = as_seconds("SCORE_REFRESH_SECONDS", config["SCORE_REFRESH_SECONDS"])
    config["FORM_MIN_SECONDS"] = as_seconds("FORM_MIN_SECONDS", config["FORM_MIN_SECONDS"])
    if config["SPAM_KEEP_DAYS"] < 1:
        raise ConfigError("LEADGATE_SPAM_KEEP_DAYS must be 1 or more days.")
    if config["DISPOSABLE_EMAILS"] not in ("refuse", "suspect"):
        raise ConfigError(f"LEADGATE_DISPOSABLE_EMAILS must be refuse or suspect, not {config['DISPOSABLE_EMAILS']!r}.")
    demo = config["DEMO"] or config["TESTING"] or config["DEBUG"] or app.debug
    config["SECRET_KEY"] = resolve_secret_key(config.get("SECRET_KEY"), Path(app.instance_path), demo=demo)
    # None: a command's app (capture.cli.command), which answers no request and builds no link.
    config["BASE_URL"] = as_base_url(config["BASE_URL"], demo) if config["BASE_URL"] is not None else ""
    config["TRUSTED_HOSTS"] = as_hosts(config["TRUSTED_HOSTS"], config["BASE_URL"], demo)
