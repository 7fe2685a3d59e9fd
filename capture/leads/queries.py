"""Reading leads: the workspace's pages, a lead's timeline, and the rows of an export.

Every list of leads (the workspace, the API, ``leadgate export``) filters through
:func:`capture.leads.filters.lead_conditions`, so they agree on which leads a filter selects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, false, func, literal, select, tuple_
from sqlalchemy.orm import aliased

from capture.catalog import Catalog, ConsentText
from capture.consent.ledger import MARKETING, TERMS
from capture.db.models import ConsentEvent, ConsentState, ConsentTextRow, Download, Lead, Submission
from capture.db.store import Store
from capture.fields import PROFILE_FIELDS, SOURCE_FIELDS
from capture.leads.filters import NOT_ERASED, LeadFilter, Part, lead_conditions, lead_parts

#: The source of a lead as the export shows it (first and latest request).
EXPORT_SOURCE_FIELDS = (*SOURCE_FIELDS, "resource_id")
#: The lead's stage and stored score, as the lead list shows them.
QUALIFICATION_COLUMNS = ("stage", "fit", "engagement", "score", "score_reasons")
#: The purposes of consent every export has columns for; the further ones of leadgate.yml
#: follow them (Settings.purposes).
PURPOSES = (TERMS, MARKETING)
#: A purpose's columns: its state, and the words' version and SHA-256 and the time of the
#: event that set it (consent_states, capture.consent.state).
CONSENT_PARTS = ("state", "version", "sha256", "at")
#: Every column iter_export_rows can give (meanings in capture.leads.export).
EXPORT_COLUMNS = (
    "id", "email", *PROFILE_FIELDS, *QUALIFICATION_COLUMNS,
    *(f"first_{f}" for f in EXPORT_SOURCE_FIELDS), *(f"latest_{f}" for f in EXPORT_SOURCE_FIELDS),
    "resources", "submissions", "downloads", "last_download_at",
    *(f"{purpose}_{part}" for purpose in PURPOSES for part in CONSENT_PARTS),
    "marketing_opt_in", "marketing_opt_in_at", "first_seen", "last_seen",
)

#: What the lead list can be sorted by, in the words of its links.
LEAD_SORTS: dict[str, Any] = {
    "score": Lead.score,
    "last_seen": Lead.last_seen,
    "first_seen": Lead.first_seen,
    "email": Lead.email_key,
    "company": Lead.company,
}
#: The first click on a column sorts dates newest first and text A to Z.
DEFAULT_DIRECTION = {"score": "desc", "last_seen": "desc", "first_seen": "desc", "email": "asc",
                     "company": "asc"}
#: Where a lead stands in an export's order: ``(id,)``, or ``(sort value, id)``.
ExportKey = tuple[Any, ...]
#: The list's order when none is asked for: the leads worth calling first.
DEFAULT_SORT = "score"
TIMELINE_ORDER = ("submission", "consent", "download")


def read_order(args: Mapping[str, str]) -> tuple[str, str, dict[str, list[str]]]:
    """Sort column and direction from the query string, with messages for values it refuses."""
    errors: dict[str, list[str]] = {}
    sort = args.get("sort") or DEFAULT_SORT
    if sort not in LEAD_SORTS:
        errors["sort"] = [f"Sort by one of {', '.join(LEAD_SORTS)}."]
        sort = DEFAULT_SORT
    direction = args.get("dir") or DEFAULT_DIRECTION[sort]
    if direction not in ("asc", "desc"):
        errors["dir"] = ["Use asc or desc."]
        direction = DEFAULT_DIRECTION[sort]
    return sort, direction, errors


@dataclass(frozen=True)
class LeadPage:
    """Rows of the lead list (``sort_key`` and ``id`` make each row's cursor), and whether
    there are rows on either side."""

    rows: list[Any]
    has_previous: bool
    has_next: bool

    @property
    def first_key(self) -> tuple[Any, int] | None:
        return (self.rows[0].sort_key, self.rows[0].id) if self.rows else None

    @property
    def last_key(self) -> tuple[Any, int] | None:
        return (self.rows[-1].sort_key, self.rows[-1].id) if self.rows else None


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    item: Submission | ConsentEvent | Download


def known_consent_text(store: Store, sha256: str) -> ConsentText | None:
    """Words recorded earlier under this hash (pages built before a wording changed)."""
    with store.read() as s:
        row = s.get(ConsentTextRow, sha256)
        return None if row is None else ConsentText(row.kind, row.version, row.text)


def lead_consent_texts(store: Store, lead_id: int) -> dict[str, ConsentText]:
    """The words of every consent box a lead answered, by SHA-256: what the lead page quotes.

    Sales see the exact text behind a version (Art. 7(1): to what words), as the consent
    events recorded it, not today's wording of that version.
    """
    with store.read() as s:
        rows = s.scalars(select(ConsentTextRow).where(ConsentTextRow.sha256.in_(
            select(ConsentEvent.sha256).where(ConsentEvent.lead_id == lead_id))))
        return {row.sha256: ConsentText(row.kind, row.version, row.text) for row in rows}


def get_lead(store: Store, lead_id: int) -> Lead | None:
    """The lead, or None when there is none or it was erased (its row is only a tombstone)."""
    with store.read() as s:
        lead = s.get(Lead, lead_id)
    return lead if lead is not None and lead.erased_at is None else None


#: A criterion whose index side has fewer rows than this drives a list page: its leads are
#: found from that index and sorted (at most this many). With more, matches are dense enough
#: that walking the sort index finds a page of them within ~50 × leads / PROBE_LIMIT rows.
PROBE_LIMIT = 20_000


def _driver(store: Store, parts: Sequence[Part], sort: str) -> Part | None:
    """The criterion that finds a page sooner from its own index than the sort index does: the
    one with the fewest rows there, when under PROBE_LIMIT. A criterion the sort index serves
    as it is (stage or score by score) needs no look."""
    probes = [p for p in parts if p.probe is not None and sort not in p.sorts]
    if not probes:
        return None
    sizes = []
    with store.read() as s:
        for part in probes:
            capped = part.probe.limit(PROBE_LIMIT).subquery()
            sizes.append((s.execute(select(func.count()).select_from(capped)).scalar_one(), part))
    size, part = min(sizes, key=lambda pair: pair[0])
    return part if size < PROBE_LIMIT else None


def list_leads(store: Store, lead_filter: LeadFilter | None = None, sort: str = DEFAULT_SORT,
               direction: str = "desc", *, after: tuple[Any, int] | None = None,
               before: tuple[Any, int] | None = None, limit: int = 50,
               catalog: Catalog | None = None) -> LeadPage:
    """One page of the leads a filter selects, by keyset on (sort key, id).

    ``after`` and ``before`` are the (sort key, id) of the row the page starts after or
    ends before (``LeadPage.first_key``/``last_key`` of the page next to it). There is no
    OFFSET, and rows added meanwhile neither repeat nor skip a row.

    Two ways to a page, chosen per page (capture.leads.filters.Part): without a filter, or
    when every criterion matches many leads, the database walks the (sort key, id) index from
    the cursor and tests each lead, so the 500th page costs what the first does. When a
    criterion matches few (its index side has under PROBE_LIMIT rows: an unknown campaign,
    the oldest dates, a rare name), its leads are found from its index and sorted, as a walk
    would test nearly every lead before filling a page.
    """
    if sort not in LEAD_SORTS or direction not in ("asc", "desc"):
        raise ValueError(f"unknown order {sort!r} {direction!r}")
    if after is not None and before is not None:
        raise ValueError("give after or before, not both")
    column = LEAD_SORTS[sort]
    parts = lead_parts(lead_filter, catalog, store.dialect) if lead_filter else []
    driver = _driver(store, parts, sort)
    conditions = [NOT_ERASED, *(p.indexed if p is driver or sort in p.sorts else p.plain for p in parts)]
    # Driven by a criterion, the order must not pull the sort index back in.
    order_by = column if driver is None else func.coalesce(column, column)
    latest = aliased(Submission)
    backwards = before is not None
    # Going back reads the rows before the cursor nearest first, then turns them round.
    descending = (direction == "desc") != backwards
    stmt = (
        select(Lead.id, Lead.email, Lead.first_name, Lead.last_name, Lead.company,
               Lead.job_title, Lead.first_seen, Lead.last_seen, Lead.stage, Lead.score, Lead.fit,
               Lead.engagement,
               Lead.marketing_choice.label("marketing"),
               latest.resource_id.label("latest_resource_id"),
               latest.utm_source.label("latest_utm_source"),
               latest.utm_medium.label("latest_utm_medium"),
               latest.utm_campaign.label("latest_utm_campaign"),
               column.label("sort_key"))
        .outerjoin(latest, latest.id == Lead.last_submission_id)
    )
    cursor = before if backwards else after
    if cursor is not None:
        key = tuple_(order_by, Lead.id)
        bound = tuple_(literal(cursor[0], column.type), literal(cursor[1], Lead.id.type))
        conditions.append(key < bound if descending else key > bound)
    order = (order_by.desc(), Lead.id.desc()) if descending else (order_by, Lead.id)
    if driver is not None:
        # Sorting every match would compute each one's shown columns (the marketing choice, the
        # latest post) first: sort ids, then read the page's rows.
        page_ids = select(Lead.id).where(*conditions).order_by(*order).limit(limit + 1).correlate(None)
        conditions = [Lead.id.in_(page_ids)]
    stmt = stmt.where(*conditions).order_by(*order).limit(limit + 1)
    with store.read() as s:
        rows = list(s.execute(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return LeadPage(rows, has_previous=more if backwards else after is not None,
                    has_next=backwards or more)


def count_leads(store: Store, lead_filter: LeadFilter | None = None, catalog: Catalog | None = None) -> int:
    """How many leads a filter selects, on every page of the list: the total above it.

    Each criterion finds its leads from its own index (posts, search, columns), so a filter
    that matches few leads is counted without visiting the others; the form posts' criteria
    alone are counted in the posts' index, as distinct leads (4× faster on SQLite than
    looking each one up).
    """
    parts = lead_parts(lead_filter, catalog, store.dialect) if lead_filter else []
    if len(parts) == 1 and parts[0].posts:
        # Erased leads keep their posts (for reports): the few there are found by their index.
        erased = select(Lead.id).where(Lead.erased_at.is_not(None))
        stmt = (parts[0].probe.with_only_columns(func.count(Submission.lead_id.distinct()))
                .where(Submission.lead_id.not_in(erased)))
    else:
        stmt = select(func.count()).select_from(Lead).where(NOT_ERASED, *(p.indexed for p in parts))
    with store.read() as s:
        return s.execute(stmt).scalar_one()


def lead_timeline(store: Store, lead_id: int) -> list[TimelineEntry]:
    """Everything a lead did, oldest first; a form post comes before the consent it gave."""
    with store.read() as s:
        entries = [
            *(TimelineEntry(row.created_at, "submission", row) for row in s.scalars(
                select(Submission).where(Submission.lead_id == lead_id))),
            *(TimelineEntry(row.created_at, "consent", row) for row in s.scalars(
                select(ConsentEvent).where(ConsentEvent.lead_id == lead_id))),
            *(TimelineEntry(row.created_at, "download", row) for row in s.scalars(
                select(Download).where(Download.lead_id == lead_id))),
        ]
    return sorted(entries, key=lambda e: (e.at, TIMELINE_ORDER.index(e.kind), e.item.id))


def iter_export_rows(store: Store, lead_filter: LeadFilter | None = None, *,
                     columns: Sequence[str] = EXPORT_COLUMNS, catalog: Catalog | None = None,
                     order: tuple[str, str] | None = None, after: ExportKey | None = None,
                     through: ExportKey | None = None, purposes: Sequence[str] = PURPOSES,
                     chunk_size: int = 1000) -> Iterator[Sequence[Any]]:
    """The leads a filter selects (all by default) as rows of ``columns``.

    Oldest lead first, or in ``order``: (a key of LEAD_SORTS, "asc" or "desc"), the order of
    the workspace list, with the lead id breaking ties the same way. A page of the export
    (see :func:`export_page_end`) is the leads whose key in that order comes after ``after``
    and up to ``through`` included.

    One statement (so one consistent snapshot), streamed: PostgreSQL reads it through a
    server-side cursor, SQLite steps through it; memory stays at one chunk. Only the joins
    and subqueries the columns need are in it. The database hands values over ready to
    write, because a million-lead export spends its time in per-row Python: text is ""
    when empty, times are ISO 8601 UTC text (``2026-11-23T12:00:00Z``) or None, counts and
    ids ints (``fit``, ``engagement`` and ``score`` too), ``score_reasons`` the stored JSON
    text ("" when never scored), ``marketing_opt_in`` a bool (whether marketing consent is
    current; False when never asked), ``marketing_opt_in_at`` None unless it is, each
    purpose's (of ``purposes``) ``_state``, ``_version``, ``_sha256`` "" and ``_at`` None when never asked, and
    ``resources`` the resource ids of the lead's posts joined by ``;``, repeats included, in
    no order. Erased leads are left out.
    """
    first, latest = aliased(Submission), aliased(Submission)
    states = {purpose: aliased(ConsentState, name=f"{purpose}_state") for purpose in dict.fromkeys((*PURPOSES, *purposes))}
    iso = _iso_text(store.engine.dialect.name)
    expressions: dict[str, Any] = {
        "id": Lead.id, "email": Lead.email,
        **{f: getattr(Lead, f) for f in (*PROFILE_FIELDS, *QUALIFICATION_COLUMNS)},
        # Outer joins: no form post gives NULL, shown as "" like any empty field.
        **{f"first_{f}": func.coalesce(getattr(first, f), "") for f in EXPORT_SOURCE_FIELDS},
        **{f"latest_{f}": func.coalesce(getattr(latest, f), "") for f in EXPORT_SOURCE_FIELDS},
        # Most leads sent one form: their first post is their only one, already joined.
        "resources": case(
            (Lead.first_submission_id == Lead.last_submission_id, first.resource_id),
            else_=select(func.aggregate_strings(Submission.resource_id, ";"))
            .where(Submission.lead_id == Lead.id).scalar_subquery()),
        "submissions": select(func.count()).where(Submission.lead_id == Lead.id).scalar_subquery(),
        "downloads": select(func.count()).where(Download.lead_id == Lead.id).scalar_subquery(),
        "last_download_at": iso(select(func.max(Download.created_at))
                                .where(Download.lead_id == Lead.id).scalar_subquery()),
        **{f"{purpose}_{part}": iso(state.at) if part == "at" else func.coalesce(getattr(state, part), "")
           for purpose, state in states.items() for part in CONSENT_PARTS},
        "marketing_opt_in": func.coalesce(Lead.marketing_choice, false()),
        # When the consent in force was given (or confirmed), while it is current.
        "marketing_opt_in_at": case((Lead.marketing_choice, iso(states[MARKETING].at))),
        "first_seen": iso(Lead.first_seen), "last_seen": iso(Lead.last_seen),
    }
    unknown = [c for c in columns if c not in expressions]
    if unknown:
        raise ValueError(f"unknown export columns: {', '.join(unknown)}")
    stmt = select(*(expressions[c].label(c) for c in columns)).select_from(Lead)
    wanted = set(columns)
    if wanted & ({f"first_{f}" for f in EXPORT_SOURCE_FIELDS} | {"resources"}):
        stmt = stmt.outerjoin(first, first.id == Lead.first_submission_id)
    if wanted & {f"latest_{f}" for f in EXPORT_SOURCE_FIELDS}:
        stmt = stmt.outerjoin(latest, latest.id == Lead.last_submission_id)
    for purpose, state in states.items():
        needs = {f"{purpose}_{part}" for part in CONSENT_PARTS} | (
            {"marketing_opt_in_at"} if purpose == MARKETING else set())
        if wanted & needs:
            stmt = stmt.outerjoin(state, (state.lead_id == Lead.id) & (state.purpose == purpose))
    stmt = (
        stmt.where(*(lead_conditions(lead_filter, catalog, store.dialect)),
                   *_key_bounds(order, after, through))
        .order_by(*_lead_order(order))
        .execution_options(yield_per=chunk_size)
    )
    # A Core connection, not a Session: plain rows, without the ORM's per-row loading; and
    # whole chunks from the cursor rather than a Python call per row.
    with store.engine.connect() as connection:
        for chunk in connection.execute(stmt).partitions():
            yield from chunk


def export_page_end(store: Store, lead_filter: LeadFilter | None, catalog: Catalog | None,
                    order: tuple[str, str] | None, after: ExportKey | None,
                    limit: int) -> tuple[ExportKey | None, bool]:
    """Where a page of ``limit`` leads after ``after`` ends, and whether leads follow it.

    The key is that of the page's last lead in the export's order: ``(id,)`` by default,
    ``(sort value, id)`` in a workspace order. (None, False) when fewer than ``limit`` leads
    are left: the page runs to the end. Read before the page streams, so that its answer's
    headers can say where the next page starts; the page itself is bounded by the key, not
    by a count, so a lead added meanwhile inside its range is exported rather than lost.
    """
    columns = _key_columns(order)
    stmt = (
        select(*columns).select_from(Lead)
        .where(*(lead_conditions(lead_filter, catalog, store.dialect)),
               *_key_bounds(order, after, None))
        .order_by(*_lead_order(order)).offset(limit - 1).limit(2)
    )
    with store.read() as s:
        rows = list(s.execute(stmt))
    if len(rows) < 2:
        return None, False
    return tuple(rows[0]), True


def _key_columns(order: tuple[str, str] | None) -> tuple[Any, ...]:
    """The columns that place a lead in the export's order, the id last."""
    return (Lead.id,) if order is None else (LEAD_SORTS[order[0]], Lead.id)


def _key_bounds(order: tuple[str, str] | None, after: ExportKey | None,
                through: ExportKey | None) -> list[Any]:
    """Conditions for the leads after ``after`` and up to ``through``, in the export's order."""
    columns = _key_columns(order)
    descending = order is not None and order[1] == "desc"
    conditions = []
    for key, beyond in ((after, True), (through, False)):
        if key is None:
            continue
        if len(key) != len(columns):
            raise ValueError(f"a key of {len(columns)} values is needed, not {key!r}")
        row = tuple_(*columns) if len(columns) > 1 else columns[0]
        bound = (tuple_(*(literal(v, c.type) for v, c in zip(key, columns))) if len(columns) > 1
                 else literal(key[0], columns[0].type))
        if beyond:
            conditions.append(row < bound if descending else row > bound)
        else:
            conditions.append(row >= bound if descending else row <= bound)
    return conditions


def _lead_order(order: tuple[str, str] | None) -> tuple[Any, ...]:
    if order is None:
        return (Lead.id,)
    sort, direction = order
    if sort not in LEAD_SORTS or direction not in ("asc", "desc"):
        raise ValueError(f"unknown order {sort!r} {direction!r}")
    column = LEAD_SORTS[sort]
    return (column.desc(), Lead.id.desc()) if direction == "desc" else (column, Lead.id)


def _iso_text(dialect: str) -> Callable[[Any], Any]:
    """A UTC time column as ISO 8601 text to the second, formatted by the database itself."""
    if dialect == "postgresql":
        return lambda column: func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    # SQLite holds SQLAlchemy's DATETIME text, naive UTC: "2026-11-23 12:00:00.000000". Cutting
    # it is twice as fast as strftime(), which parses and formats each value.
    return lambda column: func.replace(func.substr(column, 1, 19), " ", "T").concat("Z")
