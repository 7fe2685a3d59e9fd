"""The export audit log: every export of leads, whoever ran it and however, with its rows.

The rule: an export is recorded when it starts — after its parameters were accepted and an
export slot was taken, before its first byte — with the channel (``cli``,
``workspace``, ``api``), who ran it and the filter as they gave it; it is marked completed,
with the number of rows, when its last byte has been handed over. An export cut short (the
client hung up, the database failed) keeps ``completed`` false with the rows made until then,
so a log that shows only completed exports would hide what left. Refused requests (bad
parameters, a role without the right, a rate limit, no free slot) export nothing and are not
recorded, nor is a HEAD request (its headers only).

Admins read the log at ``/workspace/audit`` (capture.staff.roles: EXPORT_LOG) and with
``leadgate export-log``. Rows are kept; nothing here deletes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, render_template, request, url_for
from sqlalchemy import select, update

from capture.db.models import ACTOR_MAX, ExportRecord, utcnow
from capture.db.store import Store, get_store
from capture.errors import Problem
from capture.staff import auth, roles

log = logging.getLogger(__name__)

CHANNELS = ("cli", "workspace", "api")
#: Characters of a filter kept: a query string longer than this is cut, with "…".
FILTERS_MAX = 2000
#: Exports on a page of the log.
PAGE_SIZE = 50


@dataclass(frozen=True)
class LogPage:
    """Exports newest first, and the id to continue from when there are older ones."""

    records: list[ExportRecord]
    older: int | None


def start(store: Store, channel: str, actor: str, filters: str) -> int:
    """Record an export that is about to stream; its id, to finish it with."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown export channel {channel!r}")
    kept = filters if len(filters) <= FILTERS_MAX else filters[:FILTERS_MAX - 1] + "…"
    with store.write() as s:
        record = ExportRecord(created_at=utcnow(), channel=channel, actor=actor[:ACTOR_MAX],
                              filters=kept, rows=0, completed=False)
        s.add(record)
        s.flush()
        return record.id


def finish(store: Store, record_id: int, rows: int, completed: bool) -> None:
    """The export ended: how many rows it made, and whether every byte was handed over."""
    with store.write() as s:
        s.execute(update(ExportRecord).where(ExportRecord.id == record_id)
                  .values(rows=rows, completed=completed))


def recorded(body: Iterable[bytes], store: Store, record_id: int, rows: Callable[[], int]) -> Iterator[bytes]:
    """The export's blocks, passed on; the record finished when they end, however they end.

    Given to a Response, ``close()`` (the server's, at the end or when the client hangs up)
    finishes the record; ``completed`` only when the last block was taken. ``rows`` counts
    what was made, read once the body is closed.
    """
    completed = False
    try:
        yield from body
        completed = True
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        try:
            finish(store, record_id, rows(), completed)
        except Exception:
            log.exception("export %s ended but could not be recorded as ended", record_id)


def recent(store: Store, *, before: int | None = None, limit: int = PAGE_SIZE,
           channel: str | None = None) -> LogPage:
    """A page of the log, newest first: exports older than ``before`` (an id) when given."""
    stmt = select(ExportRecord).order_by(ExportRecord.id.desc()).limit(limit + 1)
    if before is not None:
        stmt = stmt.where(ExportRecord.id < before)
    if channel is not None:
        stmt = stmt.where(ExportRecord.channel == channel)
    with store.read() as s:
        records = list(s.scalars(stmt))
    more = len(records) > limit
    records = records[:limit]
    return LogPage(records, records[-1].id if more else None)


def given_filters(args: Any) -> str:
    """The query string as the asker gave it, decoded: ``utm_source=linkedin&limit=100``."""
    return "&".join(f"{name}={value}" for name, value in args.items(multi=True))


# --- The page --------------------------------------------------------------------------------

bp = Blueprint("audit", __name__, url_prefix="/workspace")


@bp.get("/audit")
@auth.login_required
@roles.needs(roles.EXPORT_LOG)
def audit_page() -> Any:
    """``/workspace/audit``: the export log, 50 exports a page, newest first."""
    text = request.args.get("before", "")
    before = None
    if text:
        if not text.isascii() or not text.isdigit() or len(text) > 12:
            raise Problem(400, "This page link is not valid: start from the newest exports.",
                          title="Cannot open this page", link=(url_for(".audit_page"), "Newest exports"))
        before = int(text)
    page = recent(get_store(), before=before)
    older = url_for(".audit_page", before=page.older) if page.older else None
    return render_template("workspace/audit.html", title="Export log", section="audit", page=page,
                           older=older, newest=url_for(".audit_page") if before else None)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
