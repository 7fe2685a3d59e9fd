"""The dashboard, ``GET /workspace/dashboard``: the funnel, the weekly trend, and the sources
and resources that bring MQLs, for a range of days (the last 90 by default).

Its figures are those of ``leadgate report`` for the same range (capture.analytics.measures);
the charts are SVG written by the template, with their numbers in tables beside them, so the
page needs no script and reads without the pictures. Every role may see it (capture.staff.roles).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, render_template, request

from capture.analytics.measures import RangeError, Row, day_range, report, weekly_trend
from capture.catalog import get_catalog
from capture.db.store import get_store
from capture.leads.stages import FUNNEL, LABELS
from capture.staff import auth, roles

#: Bars in "top sources" and "top resources".
TOP = 6

bp = Blueprint("dashboard", __name__, url_prefix="/workspace")


def top_by_mql(rows: list[Row], n: int = TOP) -> list[Row]:
    """The groups with the most MQLs (then leads), leaving out spend-only groups."""
    return sorted((r for r in rows if r.leads), key=lambda r: (-r.mql, -r.leads, r.group))[:n]


def funnel(total: Row) -> list[dict[str, Any]]:
    """Each step: its label, how many reached it, and the conversion from the step before."""
    rates = total.rates()
    steps = []
    for n, stage in enumerate(FUNNEL):
        reached = total.leads if stage == "lead" else getattr(total, stage)
        conversion = None if n == 0 else rates[f"{'lead' if n == 1 else FUNNEL[n - 1]}_to_{stage}"]
        steps.append({"stage": stage, "label": LABELS[stage], "reached": reached, "conversion": conversion})
    return steps


@bp.get("/dashboard")
@auth.login_required
@roles.needs(roles.READ)
def dashboard() -> Any:
    catalog = get_catalog()
    try:
        range_ = day_range(request.args.get("from"), request.args.get("to"))
    except RangeError as e:
        return render_template("workspace/dashboard.html", title="Dashboard", errors=e.errors,
                               args=request.args, figures=None), 422
    store = get_store()
    currency = catalog.settings.currency
    overall = report(store, range_, None, currency)
    figures = {
        "range": range_, "currency": currency, "total": overall.total, "notes": overall.notes,
        "funnel": funnel(overall.total), "weeks": weekly_trend(store, range_),
        "sources": top_by_mql(report(store, range_, "utm_source", currency).rows),
        "resources": top_by_mql(report(store, range_, "resource", currency).rows),
        "titles": {r.id: r.title for r in catalog},
    }
    args = {"from": range_.start.isoformat(), "to": range_.end.isoformat()}
    return render_template("workspace/dashboard.html", title="Dashboard", errors={}, args=args,
                           figures=figures)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
