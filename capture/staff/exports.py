"""The export over HTTP: ``/api/leads.csv`` for scripts, ``/workspace/leads.csv`` for staff.

Both read the parameters of ``leadgate export`` (capture.leads.filters, capture.leads.export), refuse bad
ones before anything is streamed, and stream the rows from a generator: the status and
headers leave at once with the CSV header line, then a block per 1,000 leads, so memory stays
flat and the first bytes do not wait for the query. Meanings and columns: docs/export.md.

An export streams only with one of the host's export slots, its rows made at a lower CPU
priority (capture.staff.slots), so staff exports never take the visitors' workers or cores;
when every slot is busy the export is refused with 503 and ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Flask, Response, current_app, request, stream_with_context

from capture.catalog import Catalog, get_catalog
from capture.db.models import utcnow
from capture.db.store import get_store
from capture.errors import Problem
from capture.leads.export import ExportOptions, iter_export
from capture.leads.filters import LeadFilter
from capture.leads.queries import read_order
from capture.staff import auth
from capture.staff.slots import RETRY_AFTER_SECONDS, SlotStream, take_slot

bp = Blueprint("export", __name__)


def read_export_args(args: Mapping[str, str]) -> tuple[LeadFilter, ExportOptions, Catalog | None,
                                                       dict[str, list[str]]]:
    """Filter, options and (for a type filter) the catalog, with messages per bad parameter."""
    catalog = get_catalog() if args.get("type") or args.get("resource") else None
    lead_filter, errors = LeadFilter.from_args(args, *catalog.choices() if catalog else ())
    options, option_errors = ExportOptions.from_args(args)
    return lead_filter, options, catalog, {**errors, **option_errors}


def streamed(lead_filter: LeadFilter, options: ExportOptions, catalog: Catalog | None,
             order: tuple[str, str] | None) -> Response:
    """The export as an attachment, headers first, rows as the database gives them."""
    blocks = iter_export(get_store(), options, lead_filter, catalog, order)
    config = current_app.config
    if config["EXPORT_SLOTS"]:
        slot = take_slot(current_app.instance_path, config["EXPORT_SLOTS"])
        if slot is None:
            raise busy(config["EXPORT_SLOTS"])
        body = SlotStream(current_app._get_current_object(), blocks, slot, config["EXPORT_NICENESS"])
        response = Response(body, content_type=options.content_type)
    else:
        # No limit (EXPORT_SLOTS=0): streamed by this worker's own thread, as it comes.
        response = Response(stream_with_context(blocks), content_type=options.content_type)
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


@bp.get("/api/leads.csv")
@auth.api_token_required
def api_leads() -> Response | tuple[Response, int]:
    """Oldest lead first unless ``sort``/``dir`` say otherwise (a sync can resume by ``id``)."""
    lead_filter, options, catalog, errors = read_export_args(request.args)
    order = None
    if "sort" in request.args or "dir" in request.args:
        sort, direction, order_errors = read_order(request.args)
        errors.update(order_errors)
        order = (sort, direction)
    if errors:
        raise Problem(400, errors=errors)
    return streamed(lead_filter, options, catalog, order)


@bp.get("/workspace/leads.csv")
@auth.login_required
def workspace_leads() -> Response | tuple[str, int]:
    """What the lead list shows (its filters and order), every page of it."""
    lead_filter, options, catalog, errors = read_export_args(request.args)
    sort, direction, order_errors = read_order(request.args)
    errors.update(order_errors)
    if errors:
        raise Problem(400, "Some of the list's filters are not valid, so nothing was exported.",
                      title="Cannot export these leads", errors=errors)
    return streamed(lead_filter, options, catalog, (sort, direction))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
