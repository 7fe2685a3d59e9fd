"""How many form posts one client, one network and one email address may send, and the
form tokens already used.

Counted in the rate-limit storage Flask-Limiter is configured with (``RATELIMIT_STORAGE_URI``:
each process's memory, or Redis, shared by every worker and host), in fixed windows, with the
keys of Flask-Limiter's own limits (``LIMITER/<RATELIMIT_KEY_PREFIX>/<scope>/<who>/…``): per
client address (``RATE_LIMIT``) and per /24 or /48 network (``RATE_LIMIT_NETWORK``) for every
post, and for a post about to be stored per email address too (``RATE_LIMIT_EMAIL``, keyed by a
keyed hash of the address in NFKC, case-folded, so no spelling counts apart and no address is
kept in the storage). In the same call the form token's nonce is spent (a second stored post
with it is a replay), unless a limit was gone over: the visitor can send the post again later
with the same token, and a post that needs fixing (422) spends nothing.

A refused post is a :class:`TooManyPosts` (429 with ``Retry-After``), answered by the capture
blueprint's own handler from a page rendered once; nothing of it is stored. A process that saw
an address or network go over a limit refuses its next posts at once until the window ends,
before anything is read: a flood costs a dictionary lookup.

Why not ``@limiter.limit`` on the view: there each of the six limits is a round trip to Redis
plus Flask-Limiter's bookkeeping, and ``remaining`` for the ``rate`` signal two more; measured
with Redis on the 2-core machine, ~0.8 ms of CPU a post, about half of what storing the post
costs. Here a post makes one Lua call to Redis (one ``incr`` per key with the memory storage)
that answers with the counts and the windows' remaining seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
import unicodedata
from dataclasses import dataclass

from flask import Flask, Response, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import RedisClusterStorage, RedisStorage, Storage, storage_from_string

from capture.errors import Problem, answer, wants_json
from capture.leads.attribution import ip_prefix

EXTENSION = "leadgate.form_limits"
OFF = "off"
#: The settings, in the order their limits are checked.
SETTINGS = ("RATE_LIMIT", "RATE_LIMIT_NETWORK", "RATE_LIMIT_EMAIL")
ADDRESS, NETWORK, EMAIL = "form-address", "form-network", "form-email"
TOKENS = "form-token"

TOO_MANY = ("Too many requests from your network address. Wait {wait}, then send the form again; "
            "nothing was stored.")
TOO_MANY_EMAIL = ("This email address has been sent too many times just now. Wait {wait}, "
                  "then send the form again; nothing was stored.")

log = logging.getLogger(__name__)

#: Adds 1 to each key (its window starts with its first post) and answers each key's count and
#: the seconds left in its window. With ARGV[2n+1] = "1" the last key is spent only when no
#: other key went over its limit, and answered with its count alone.
COUNT = """
local n = #KEYS
local guarded = ARGV[2 * n + 1] == "1"
local limited = guarded and n - 1 or n
local out = {}
local over = false
for i = 1, limited do
  local count = redis.call("incr", KEYS[i])
  if count == 1 then redis.call("expire", KEYS[i], ARGV[i]) end
  if count > tonumber(ARGV[n + i]) then over = true end
  out[#out + 1] = count
  out[#out + 1] = redis.call("ttl", KEYS[i])
end
if guarded and not over then
  local count = redis.call("incr", KEYS[n])
  if count == 1 then redis.call("expire", KEYS[n], ARGV[n]) end
  out[#out + 1] = count
end
return out
"""


def parse_limits(name: str, value: str) -> list[RateLimitItem]:
    """The limits of a setting (``off`` is none); ValueError says what is wrong."""
    value = value.strip()
    if value.lower() == OFF:
        return []
    if not value:
        raise ValueError(f"LEADGATE_{name} is empty: write limits such as 20/minute;200/hour, or off.")
    try:
        return parse_many(value)
    except ValueError:
        raise ValueError(f"LEADGATE_{name} must be limits such as 20/minute;200/hour (or off), "
                         f"not {value!r}.") from None


def in_words(seconds: float) -> str:
    """A wait in words, rounded up to whole minutes or hours (a few messages, each rendered once)."""
    minutes = math.ceil(seconds / 60)
    if minutes <= 1:
        return "a minute"
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{math.ceil(seconds / 3600)} hours"


class TooManyPosts(Problem):
    """A post over a form limit: 429, answered by :func:`refused`."""


@dataclass(frozen=True)
class Use:
    """One limit's count after this post."""

    limit: RateLimitItem
    count: int
    #: Seconds until its window starts again.
    reset_in: float

    @property
    def over(self) -> bool:
        return self.count > self.limit.amount


@dataclass(frozen=True)
class AddressUse:
    """The client address's limits as this post left them (empty with limits off)."""

    uses: tuple[Use, ...] = ()

    def busiest(self) -> Use | None:
        """The address limit with the largest share of it used."""
        return max(self.uses, key=lambda u: u.count / u.limit.amount, default=None)


class FormLimits:
    """One app's form limits and spent tokens, in its rate-limit storage."""

    def __init__(self, storage: Storage, prefix: str, secret_key: str, token_max_age: int,
                 address: list[RateLimitItem], network: list[RateLimitItem], email: list[RateLimitItem]):
        self.storage = storage
        self.prefix = [prefix] if prefix else []
        self.email_hash_key = hashlib.sha256(f"leadgate.form-email|{secret_key}".encode()).digest()
        self.token_max_age = token_max_age
        self.address, self.network, self.email = address, network, email
        #: Redis (one server or Sentinel) counts several keys in one call; a cluster cannot
        #: (keys in other slots), nor can the other storages.
        self.script = None
        if isinstance(storage, RedisStorage) and not isinstance(storage, RedisClusterStorage):
            self.script = storage.get_connection().register_script(COUNT)
        self._warned = 0.0
        #: Addresses and networks this process saw go over a limit, until their window ends.
        self.refused_until: dict[str, float] = {}
        #: Refusal pages by (message, JSON or not): see refused().
        self.pages: dict[tuple[str | None, bool], tuple[bytes, list[tuple[str, str]]]] = {}

    def key(self, item: RateLimitItem | None, scope: str, who: str) -> str:
        if item is None:
            return "/".join(["LIMITER", *self.prefix, scope, who])
        return item.key_for(*self.prefix, scope, who)

    def _count(self, limited: list[tuple[RateLimitItem, str]], spend: str | None = None
               ) -> tuple[list[Use], int | None]:
        """Add this post to each (limit, key), and spend the key ``spend`` unless one went over."""
        if self.script is not None:
            keys = [self.storage.prefixed_key(k) for _, k in limited]
            args: list[object] = [item.get_expiry() for item, _ in limited]
            if spend is not None:
                keys.append(self.storage.prefixed_key(spend))
                args.append(self.token_max_age)
            args += [item.amount for item, _ in limited] + ([0] if spend is not None else [])
            args.append("1" if spend is not None else "0")
            out = [int(v) for v in self.script(keys=keys, args=args)]
            uses = [Use(item, out[2 * i], max(out[2 * i + 1], 0)) for i, (item, _) in enumerate(limited)]
            spent = out[2 * len(limited)] if spend is not None and len(out) > 2 * len(limited) else None
            return uses, spent
        now = time.time()
        uses = []
        for item, key in limited:
            count = self.storage.incr(key, item.get_expiry())
            uses.append(Use(item, count, max(self.storage.get_expiry(key) - now, 0)))
        spent = None
        if spend is not None and not any(u.over for u in uses):
            spent = self.storage.incr(spend, self.token_max_age)
        return uses, spent

    def _safely(self, limited: list[tuple[RateLimitItem, str]], spend: str | None = None
                ) -> tuple[list[Use], int | None]:
        """Count, or count nothing when the storage fails: a post is never lost to a limit."""
        try:
            return self._count(limited, spend)
        except Exception:  # redis, memcached… each raise their own errors
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.exception("the rate-limit storage failed: form posts are not limited now")
            return [], None

    def _client(self) -> tuple[str, str]:
        address = request.remote_addr or "unknown"
        return address, ip_prefix(address) or address

    def check_known_refusal(self) -> None:
        """429 at once, with no storage call and nothing read, for an address or network this
        process saw go over a limit whose window is not over yet: a fixed window's count cannot
        go down before it ends, so a flood is refused for the price of a dictionary lookup."""
        if not self.refused_until:
            return
        now = time.time()
        for who in self._client():
            until = self.refused_until.get(who)
            if until is not None and until > now:
                raise too_many(until - now, TOO_MANY)

    def _remember(self, uses: list[Use], whos: list[str]) -> None:
        now = time.time()
        if len(self.refused_until) >= REFUSALS_KEPT:
            self.refused_until = {w: t for w, t in self.refused_until.items() if t > now}
            if len(self.refused_until) >= REFUSALS_KEPT:
                self.refused_until.clear()
        for use, who in zip(uses, whos):
            if use.over:
                self.refused_until[who] = max(self.refused_until.get(who, 0.0), now + use.reset_in)

    def email_key(self, email: str) -> str:
        """One key for every spelling of an address: NFKC, case-folded, hashed with the secret."""
        folded = unicodedata.normalize("NFKC", email).casefold().strip()
        return hmac.new(self.email_hash_key, folded.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()[:32]

    def count(self, email: str | None = None, nonce: str | None = None) -> tuple[AddressUse, bool]:
        """Count this post for its address and network and, when it is about to be stored, its
        email address, and spend its token's nonce, all in one storage call; 429 when one is
        over its limit (the nonce then unspent). The address's limits as this post left them,
        and whether the nonce had been spent before (the token is replayed)."""
        address, network = self._client()
        limited = [(item, self.key(item, ADDRESS, address)) for item in self.address]
        limited += [(item, self.key(item, NETWORK, network)) for item in self.network]
        whos = [address] * len(self.address) + [network] * len(self.network)
        if email is not None:
            who = self.email_key(email)
            limited += [(item, self.key(item, EMAIL, who)) for item in self.email]
        spend = self.key(None, TOKENS, nonce) if nonce else None
        if not limited and spend is None:
            return AddressUse(), False
        uses, spent = self._safely(limited, spend)
        if any(u.over for u in uses):
            self._remember(uses, whos)
            client = [u.reset_in for u in uses[:len(whos)] if u.over]
            raise too_many(max(client), TOO_MANY) if client else too_many(
                max(u.reset_in for u in uses if u.over), TOO_MANY_EMAIL)
        return AddressUse(tuple(uses[:len(self.address)])), spent is not None and spent > 1


def too_many(reset_in: float, message: str) -> TooManyPosts:
    """429 with Retry-After: the seconds until the window gone over starts again."""
    wait = max(1, math.ceil(reset_in))
    return TooManyPosts(429, message.format(wait=in_words(wait)), headers={"Retry-After": str(wait)})


#: Refusal pages kept per app, at most.
PAGES_KEPT = 64
#: Addresses and networks remembered as over their limit, at most (expired ones go first).
REFUSALS_KEPT = 10_000


def refused(problem: TooManyPosts) -> Response:
    """The refusal, as capture.errors answers it, rendered once per message and format: a
    flood's posts cost no page rendering (the site's shell is read from disk for each page)."""
    pages = get_limits().pages
    key = (problem.message, wants_json())
    page = pages.get(key)
    if page is None:
        rendered = answer(problem)
        if len(pages) >= PAGES_KEPT:
            pages.clear()
        page = pages[key] = (rendered.get_data(), [(k, v) for k, v in rendered.headers.items()
                                                   if k not in ("Content-Length", "Retry-After")])
    response = current_app.response_class(page[0], problem.status, headers=page[1])
    response.headers.update(problem.headers)
    return response


def get_limits() -> FormLimits:
    return current_app.extensions[EXTENSION]


def init_app(app: Flask) -> None:
    """The app's form limits, in a storage of its own at RATELIMIT_STORAGE_URI (config.finalize
    checked the limit strings); RATE_LIMIT=off turns all three off."""
    config = app.config
    parsed = {name: parse_limits(name, config[name]) for name in SETTINGS}
    if not parsed["RATE_LIMIT"]:
        parsed = {name: [] for name in SETTINGS}
    storage = storage_from_string(config["RATELIMIT_STORAGE_URI"],
                                  **config.get("RATELIMIT_STORAGE_OPTIONS", {}))
    app.extensions[EXTENSION] = FormLimits(
        storage, config.get("RATELIMIT_KEY_PREFIX", ""), config["SECRET_KEY"],
        config["FORM_TOKEN_MAX_AGE"], *parsed.values())
