"""The export over HTTP: ``/api/leads.csv`` for scripts, ``/workspace/leads.csv`` for staff.

Both read the parameters of ``leadgate export`` (capture.leads.filters, capture.leads.export), refuse bad
ones before anything is streamed, and stream the rows from a generator: the status and
headers leave at once with the CSV header line, then a block per 1,000 leads, so memory stays
flat and the first bytes do not wait for the query. Meanings and columns: docs/export.md.

An export streams only with one of the host's export slots, its rows made at a lower CPU
priority (capture.staff.slots), so staff exports never take the visitors' workers or cores;
when every slot is busy the export is refused with 503 and ``Retry-After``. Every export that
starts is recorded in the export log (capture.staff.audit); who may export is in
capture.staff.roles.

The API pages through large exports: ``limit`` leads at most (up to :data:`LIMIT_MAX`), and
the answer's ``Link: <…>; rel="next"`` (and ``Leadgate-Next-Cursor``) says where the next page
starts, as an opaque ``cursor`` signed with the secret key, so an edited one is refused. Each
token has its own rate limit (``API_EXPORT_RATE_LIMIT``, counted with the sign-in limits in
Redis or the database, capture.staff.limits, under the token's hash), answered with 429 and ``Retry-After``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request, stream_with_context, url_for
from itsdangerous import BadSignature, URLSafeSerializer
from limits import parse_many

from capture.catalog import Catalog, get_catalog, get_settings
from capture.config import ConfigError
from capture.db.models import utcnow
from capture.db.store import get_store
from capture.errors import Problem
from capture.leads.export import ExportOptions, RowCount, iter_export
from capture.leads.filters import LeadFilter
from capture.leads.queries import ExportKey, export_page_end, read_order
from capture.staff import audit, auth, roles
from capture.staff.accounts import TOKEN_DISPLAY, hash_token
from capture.staff.limits import CountsUnavailable, LimitReached, get_counts
from capture.staff.slots import RETRY_AFTER_SECONDS, SlotStream, take_slot

bp = Blueprint("export", __name__)

#: The most leads one page of ``/api/leads.csv`` may ask for (``limit``).
LIMIT_MAX = 100_000
CURSOR_SALT = "leadgate-export-cursor"
NEXT_CURSOR = "Leadgate-Next-Cursor"
#: Sorts whose values are times, carried in a cursor as ISO 8601 text.
TIME_SORTS = frozenset({"last_seen", "first_seen"})

V = TypeVar("V", bound=Callable[..., Any])


def read_export_args(args: Mapping[str, str]) -> tuple[LeadFilter, ExportOptions, Catalog | None,
                                                       dict[str, list[str]]]:
    """Filter, options and (for a type filter) the catalog, with messages per bad parameter."""
    catalog = get_catalog() if args.get("type") or args.get("resource") else None
    lead_filter, errors = LeadFilter.from_args(args, *catalog.choices() if catalog else ())
    options, option_errors = ExportOptions.from_args(args, get_settings().purposes)
    return lead_filter, options, catalog, {**errors, **option_errors}


def read_limit(args: Mapping[str, str]) -> tuple[int | None, dict[str, list[str]]]:
    """``limit``: a whole number from 1 to LIMIT_MAX, or None for every lead."""
    text = args.get("limit")
    if text is None or text == "":
        return None, {}
    if text.isascii() and text.isdigit() and len(text) <= 7 and 1 <= int(text) <= LIMIT_MAX:
        return int(text), {}
    return None, {"limit": [f"'{text[:20]}' is not a whole number from 1 to {LIMIT_MAX:,}."]}


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=CURSOR_SALT)


def make_cursor(order: tuple[str, str] | None, key: ExportKey) -> str:
    """Where the next page starts: after ``key``, in this order; signed, so it cannot be edited."""
    values = [v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for v in key]
    return _serializer().dumps([list(order) if order else None, values])


def read_cursor(args: Mapping[str, str], order: tuple[str, str] | None) -> tuple[ExportKey | None,
                                                                                  dict[str, list[str]]]:
    """The key a ``cursor`` starts after, made by this service for this order; else a message."""
    text = args.get("cursor")
    if not text:
        return None, {}
    try:
        made_for, values = _serializer().loads(text)
    except (BadSignature, ValueError, TypeError):
        return None, {"cursor": ["This cursor was not made by this service, or was changed: use the one "
                                 "the previous page's Link header gave, unchanged."]}
    if (tuple(made_for) if made_for else None) != order:
        return None, {"cursor": ["This cursor was made for another order: keep sort and dir as they "
                                 "were on the first page."]}
    if order is not None and order[0] in TIME_SORTS:
        values[0] = datetime.fromisoformat(values[0])
    return tuple(values), {}


def streamed(lead_filter: LeadFilter, options: ExportOptions, catalog: Catalog | None,
             order: tuple[str, str] | None, *, channel: str, actor: str,
             after: ExportKey | None = None, through: ExportKey | None = None) -> Response:
    """The export as an attachment, headers first, rows as the database gives them; recorded
    in the export log once a slot is taken (capture.staff.audit)."""
    store = get_store()
    rendering = iter_export(store, options, lead_filter, catalog, order, after=after, through=through)
    config = current_app.config
    if request.method == "HEAD":
        # The headers a GET would get; no row leaves, so no slot, and nothing to record.
        return _export_headers(Response(iter(()), content_type=options.content_type), options)
    slot = None
    if config["EXPORT_SLOTS"]:
        slot = take_slot(current_app.instance_path, config["EXPORT_SLOTS"])
        if slot is None:
            raise busy(config["EXPORT_SLOTS"])
    try:
        record = audit.start(store, channel, actor, audit.given_filters(request.args))
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    if slot is not None:
        blocks: Any = SlotStream(current_app._get_current_object(), rendering, slot, config["EXPORT_NICENESS"])
    else:
        # No limit (EXPORT_SLOTS=0): streamed by this worker's own thread, as it comes.
        blocks = stream_with_context(rendering)
    # Blocks made elsewhere (a test's) have no count: recorded as 0 rows.
    count = getattr(rendering, "count", None) or RowCount()
    body = audit.recorded(blocks, store, record, lambda: count.rows)
    return _export_headers(Response(body, content_type=options.content_type), options)


def _export_headers(response: Response, options: ExportOptions) -> Response:
    response.headers["Content-Disposition"] = f'attachment; filename="{options.filename(utcnow())}"'
    # Personal data: never kept by a browser or a proxy.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def busy(slots: int) -> Problem:
    """The refusal when every export slot is taken: nothing started, try again shortly."""
    running = "An export is" if slots == 1 else f"{slots} exports are"
    return Problem(503, f"{running} already being downloaded, the most this service streams at once "
                        "so that visitors are never kept waiting. Nothing was exported; try again in "
                        f"{RETRY_AFTER_SECONDS} seconds.",
                   title="Too many exports at once", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _bearer() -> str:
    return request.headers.get("Authorization", "").partition(" ")[2].strip()


def _token_key() -> str:
    """Counted per token, under its hash: the token itself is never a key in the storage."""
    return hash_token(_bearer())


def limited_per_token(view: V) -> V:
    """``API_EXPORT_RATE_LIMIT`` per token (after the token was accepted), else 429 JSON."""
    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        setting = current_app.config["API_EXPORT_RATE_LIMIT"]
        if setting != "off":
            try:
                get_counts().api_export(_token_key(), parse_many(setting))
            except LimitReached as e:
                raise Problem(429, f"This token has made too many exports ({setting}). Nothing was "
                                   f"exported; try again in {e.retry_after} seconds.", title="Too many exports",
                              headers={"Retry-After": str(e.retry_after)}) from None
            except CountsUnavailable as e:
                current_app.logger.error("API export refused: its counts cannot be reached: %s", e)
                raise Problem(503, "The API cannot count exports just now. Try again in a minute.",
                              headers={"Retry-After": "60"}) from None
        return view(*args, **kwargs)
    return limited  # type: ignore[return-value]


@bp.get("/api/leads.csv")
@auth.api_token_required
@roles.needs(roles.EXPORT)
@limited_per_token
def api_leads() -> Response:
    """Oldest lead first unless ``sort``/``dir`` say otherwise (a sync can resume by ``id``);
    ``limit`` leads a page, the next page's ``cursor`` in the Link header."""
    lead_filter, options, catalog, errors = read_export_args(request.args)
    order = None
    if "sort" in request.args or "dir" in request.args:
        sort, direction, order_errors = read_order(request.args)
        errors.update(order_errors)
        order = (sort, direction)
    limit, limit_errors = read_limit(request.args)
    errors.update(limit_errors)
    after, cursor_errors = (None, {}) if "sort" in errors or "dir" in errors else read_cursor(request.args, order)
    errors.update(cursor_errors)
    if errors:
        raise Problem(400, errors=errors)
    through, more = (None, False)
    if limit is not None:
        through, more = export_page_end(get_store(), lead_filter, catalog, order, after, limit)
    token = _bearer()
    response = streamed(lead_filter, options, catalog, order, channel="api",
                        actor=f"{g.user.email} (token {token[:TOKEN_DISPLAY]}…)", after=after, through=through)
    if more:
        cursor = make_cursor(order, through)
        query = {**request.args.to_dict(flat=False), "cursor": cursor}
        response.headers["Link"] = f'<{url_for(".api_leads", **query)}>; rel="next"'
        response.headers[NEXT_CURSOR] = cursor
    return response


@bp.get("/workspace/leads.csv")
@auth.login_required
@roles.needs(roles.EXPORT)
def workspace_leads() -> Response:
    """What the lead list shows (its filters and order), every page of it."""
    lead_filter, options, catalog, errors = read_export_args(request.args)
    sort, direction, order_errors = read_order(request.args)
    errors.update(order_errors)
    if errors:
        raise Problem(400, "Some of the list's filters are not valid, so nothing was exported.",
                      title="Cannot export these leads", errors=errors)
    return streamed(lead_filter, options, catalog, (sort, direction), channel="workspace",
                    actor=auth.current_user().email)


def check_settings(app: Flask) -> None:
    """API_EXPORT_RATE_LIMIT is limit strings (``10/minute;100/hour``) or ``off``."""
    value = app.config["API_EXPORT_RATE_LIMIT"]
    try:
        if value != "off" and not parse_many(value):
            raise ValueError(value)
    except ValueError:
        raise ConfigError(f"LEADGATE_API_EXPORT_RATE_LIMIT must be limits such as 10/minute;100/hour, "
                          f"or off, not {value!r}.") from None


def init_app(app: Flask) -> None:
    check_settings(app)
    app.register_blueprint(bp)
