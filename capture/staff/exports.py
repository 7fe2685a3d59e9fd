"""The export over HTTP: ``/api/leads.csv`` for scripts, ``/workspace/leads.csv`` for staff.

Both read the parameters of ``leadgate export`` (capture.leads.filters, capture.leads.export), refuse bad
ones before anything is streamed, and stream the rows from a generator: the status and
headers leave at once with the CSV header line, then a block per 1,000 leads, so memory stays
flat and the first bytes do not wait for the query. Meanings and columns: docs/export.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Flask, Response, request, stream_with_context

from capture.catalog import Catalog, get_catalog
from capture.db.models import utcnow
from capture.db.store import get_store
from capture.errors import Problem
from capture.leads.export import ExportOptions, iter_export
from capture.leads.filters import LeadFilter
from capture.leads.queries import read_order
from capture.staff import auth

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
    response = Response(stream_with_context(blocks), content_type=options.content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{options.filename(utcnow())}"'
    # Personal data: never kept by a browser or a proxy.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


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
