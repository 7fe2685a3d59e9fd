"""How many failed sign-ins and API tokens are allowed, and how many exports an API token may
make, counted where every worker sees them.

A client may fail :data:`SIGN_IN_PER_ACCOUNT` times for one account (the typed address,
normalised: ``ANN@example.com`` and its full-width spelling are one account) and
:data:`SIGN_IN_PER_CLIENT` times in all; then sign-in answers 429 until the window ends,
whether the next password is right or not. A client whose API tokens failed
:data:`TOKEN_FAILURES_PER_CLIENT` times gets 429 for every token until the window ends.
A client is its network address; an IPv6 one by its /64, which one machine usually has whole.

The counts live in Redis when ``RATELIMIT_STORAGE_URI`` names it, else in the database
(table ``rate_counts``, :class:`DatabaseStorage`): never in one process's memory, so a server
with N workers, or N hosts, allows what one worker does. A sign-in attempt is counted
*before* its password is checked and given back when it succeeds, so however many requests
race on the workers, no more than the limit's passwords are ever checked. Keys are SHA-256
digests: the counts hold no address, typed or network.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from limits import RateLimitItem, parse
from limits.errors import ConfigurationError, StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from capture.config import ConfigError
from capture.db.models import RateCount
from capture.db.store import Store, get_store
from capture.staff.accounts import AuthError, normalize_email

#: Failed sign-ins allowed for one account from one client.
SIGN_IN_PER_ACCOUNT = parse("5/minute")
#: Failed sign-ins allowed from one client, whatever the accounts.
SIGN_IN_PER_CLIENT = parse("20/minute")
#: Requests with an API token that opens nothing allowed from one client.
TOKEN_FAILURES_PER_CLIENT = parse("10/minute")

EXTENSION = "leadgate.limits"
#: The storage URI that means "nothing configured": counted in the database instead.
MEMORY = "memory://"


class LimitReached(Exception):
    """Too many failures: refuse, and say when to try again."""

    def __init__(self, retry_after: int):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class CountsUnavailable(Exception):
    """The counts cannot be read or written (Redis or the database is down): refuse, as if locked."""


def account_key(typed: str) -> str:
    """One key per account however it is typed: the normalised address (NFKC first, so
    full-width letters and ``＠`` fold too); text that is no address, NFKC + casefold."""
    text = unicodedata.normalize("NFKC", typed).strip()
    try:
        return normalize_email(text)
    except AuthError:
        return text.casefold()


def client_key(address: str | None) -> str:
    """A client: its IPv4 address, or the /64 of its IPv6 address (one host's usual share)."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:40]


@dataclass
class SignInAttempt:
    """Counts taken for one sign-in before its password is checked; :meth:`succeeded` gives them back."""

    counts: Counts
    keys: list[tuple[RateLimitItem, str]]

    def succeeded(self) -> None:
        for item, key in self.keys:
            self.counts.give_back(item, key)


class Counts:
    """The limits of one app, on its storage (made in each process at first use: after a fork)."""

    def __init__(self, uri: str, store: Store, prefix: str = ""):
        self.uri = uri
        self.store = store
        self.prefix = prefix
        self._limiter: FixedWindowRateLimiter | None = None
        self._lock = threading.Lock()

    @property
    def limiter(self) -> FixedWindowRateLimiter:
        if self._limiter is None:
            with self._lock:
                if self._limiter is None:
                    storage = (DatabaseStorage(self.store) if self.uri == MEMORY
                               else storage_from_string(self.uri, wrap_exceptions=True))
                    self._limiter = FixedWindowRateLimiter(storage)
        return self._limiter

    def _retry_after(self, item: RateLimitItem, key: str) -> int:
        reset = self.limiter.get_window_stats(item, self.prefix, key).reset_time
        return max(1, min(item.get_expiry(), math.ceil(reset - time.time())))

    def sign_in(self, typed_email: str, client: str) -> SignInAttempt:
        """Count a sign-in attempt; LimitReached when the client or the account is out of tries."""
        keys = [(SIGN_IN_PER_ACCOUNT, _digest("sign-in", client, account_key(typed_email))),
                (SIGN_IN_PER_CLIENT, _digest("sign-in", client))]
        try:
            over = [(item, key) for item, key in keys if not self.limiter.hit(item, self.prefix, key)]
            if over:
                # A refused attempt checks no password: it keeps its count (the window does not move).
                raise LimitReached(max(self._retry_after(item, key) for item, key in over))
        except (StorageError, SQLAlchemyError) as e:
            raise CountsUnavailable(str(e)) from e
        return SignInAttempt(self, keys)

    def give_back(self, item: RateLimitItem, key: str) -> None:
        try:
            self.limiter.storage.incr(item.key_for(self.prefix, key), item.get_expiry(), amount=-1)
        except (StorageError, SQLAlchemyError):
            pass  # the count stays one higher until its window ends: safe

    def check_tokens(self, client: str) -> None:
        """LimitReached when this client's tokens failed too often to look at another."""
        key = _digest("token", client)
        try:
            if not self.limiter.test(TOKEN_FAILURES_PER_CLIENT, self.prefix, key):
                raise LimitReached(self._retry_after(TOKEN_FAILURES_PER_CLIENT, key))
        except (StorageError, SQLAlchemyError) as e:
            raise CountsUnavailable(str(e)) from e

    def api_export(self, token_hash: str, allowed: list[RateLimitItem]) -> None:
        """Count an export by an API token; LimitReached when it has made all it may for now."""
        key = _digest("api-export", token_hash)
        try:
            over = [item for item in allowed if not self.limiter.hit(item, self.prefix, key)]
            if over:
                raise LimitReached(max(self._retry_after(item, key) for item in over))
        except (StorageError, SQLAlchemyError) as e:
            raise CountsUnavailable(str(e)) from e

    def token_failed(self, client: str) -> None:
        try:
            self.limiter.hit(TOKEN_FAILURES_PER_CLIENT, self.prefix, _digest("token", client))
        except (StorageError, SQLAlchemyError) as e:
            raise CountsUnavailable(str(e)) from e


class DatabaseStorage(Storage):
    """Fixed-window counters in the ``rate_counts`` table, for servers without Redis.

    One row per key: an upsert adds to the count while its window lasts and starts a new
    window when it is over, in one statement (SQLite and PostgreSQL both have
    ``INSERT … ON CONFLICT … RETURNING``). Ended windows are deleted at most once a minute.
    """

    STORAGE_SCHEME = None
    PURGE_EVERY = 60.0

    def __init__(self, store: Store):
        super().__init__()
        self.store = store
        self._purged = 0.0

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = datetime.now(UTC)
        if amount < 0:
            return self._take_back(key, -amount, now)
        insert = (sqlite if self.store.dialect == "sqlite" else postgresql).insert
        new = insert(RateCount).values(key=key, count=amount, expires_at=now + timedelta(seconds=expiry))
        live = RateCount.expires_at > now
        statement = new.on_conflict_do_update(index_elements=[RateCount.key], set_={
            "count": case((live, RateCount.count + new.excluded.count), else_=new.excluded.count),
            "expires_at": case((live, RateCount.expires_at), else_=new.excluded.expires_at),
        }).returning(RateCount.count)
        with self.store.write() as s:
            count = s.execute(statement).scalar_one()
            if time.monotonic() - self._purged > self.PURGE_EVERY:
                self._purged = time.monotonic()
                s.execute(delete(RateCount).where(RateCount.expires_at <= now))
        return count

    def _take_back(self, key: str, amount: int, now: datetime) -> int:
        """Lower a live count (never below 0); a window already over stays over."""
        with self.store.write() as s:
            count = s.execute(
                update(RateCount).where(RateCount.key == key, RateCount.expires_at > now,
                                        RateCount.count >= amount)
                .values(count=RateCount.count - amount).returning(RateCount.count)).scalar()
        return count or 0

    def _row(self, key: str) -> Any:
        with self.store.read() as s:
            return s.execute(select(RateCount.count, RateCount.expires_at).where(
                RateCount.key == key, RateCount.expires_at > datetime.now(UTC))).one_or_none()

    def get(self, key: str) -> int:
        row = self._row(key)
        return 0 if row is None else row.count

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return time.time() if row is None else row.expires_at.timestamp()

    def check(self) -> bool:
        try:
            with self.store.read() as s:
                s.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.store.write() as s:
            return s.execute(delete(RateCount)).rowcount

    def clear(self, key: str) -> None:
        with self.store.write() as s:
            s.execute(delete(RateCount).where(RateCount.key == key))


def get_counts(app: Flask | None = None) -> Counts:
    return (app or current_app).extensions[EXTENSION]


def init_app(app: Flask) -> None:
    """The app's counts: Redis (or another limits storage) when configured, else the database.

    A storage URI that cannot work (an unknown scheme, Redis without the ``redis`` package)
    stops the service at start, not at the first sign-in; nothing connects yet.
    """
    uri = app.config["RATELIMIT_STORAGE_URI"]
    if uri != MEMORY:
        try:
            storage_from_string(uri)
        except ConfigurationError as e:
            raise ConfigError(f"LEADGATE_RATELIMIT_STORAGE_URI {uri!r} cannot be used: {e} "
                              "(for Redis: redis://host:6379 and pip install 'leadgate[redis]').") from None
    app.extensions[EXTENSION] = Counts(uri, get_store(app), str(app.config.get("RATELIMIT_KEY_PREFIX") or ""))
