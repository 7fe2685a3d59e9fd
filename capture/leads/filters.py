"""Which leads a person asked for: one filter shared by the workspace list, the API and the CLI.

:meth:`LeadFilter.from_args` reads the same parameter names everywhere — the workspace's query
string, ``GET /api/leads.csv`` and the options of ``leadgate export`` — and answers with a
message per parameter a person got wrong. :func:`lead_conditions` turns a filter into SQL.

What each parameter means (all given parameters must hold):

``q``
    Part of the lead's email, first name, last name or company (their current values), in any
    case. The database folds case on both sides: PostgreSQL every letter (by its locale),
    SQLite only A–Z, so there ``ødegaard`` does not find ``Ødegaard`` (``Ødegaard`` and
    ``ØDEGAARD`` do).
``from``, ``to``
    Dates (``YYYY-MM-DD``, UTC days, both included). The lead sent at least one form in that
    period — not "first seen" or "last seen" in it: a lead first seen in October who came
    back in November is a November lead, and one who sent nothing in November is not, even
    when seen before and after.
``resource``, ``type``
    A resource id, or a resource type (ebook, whitepaper…): the lead requested that resource,
    or any resource of that type in the current catalog.
``utm_source``, ``utm_medium``, ``utm_campaign``
    Exact value, in any case (``LinkedIn`` finds ``linkedin``). Matched on any of the lead's
    form posts, not only the first or the latest touch: "whom did this campaign reach" includes
    leads who first came from elsewhere. The export's first/latest source columns then show
    the first and latest touch of each of them.
``marketing``
    ``yes``: the lead's marketing consent is current — what may be emailed today: given (or
    confirmed, which double opt-in requires) and not withdrawn; a later form with the box left
    unticked does not take it back (capture.consent.state). ``no``: anyone else.
``stage``
    The lead's stage now (lead, mql, sql, prospect, customer, disqualified, recycled).
``score_min``, ``score_max``, ``fit_min``, ``fit_max``, ``engagement_min``, ``engagement_max``
    Whole numbers 0–100, both ends included, on the stored score (capture.scoring.apply:
    as of the lead's last scoring, refreshed daily).
``mql_from``, ``mql_to``
    Dates (``YYYY-MM-DD``, UTC days, both included): the lead first became an MQL in that
    period (a lead that skipped MQL counts from when it reached a later step).

The per-form criteria (dates, resource, type, utm) must all hold on the **same** form post:
``--utm-source linkedin --from 2026-11-01`` finds leads who came from LinkedIn in November,
not leads who came from LinkedIn once and sent any form in November.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, column, false, func, literal_column, or_, select, table

from capture.catalog import SLUG, Catalog
from capture.db.models import Lead, Submission
from capture.fields import EMAIL_MAX, RESOURCE_ID_MAX, UTM_MAX
from capture.leads.stages import STAGES

#: Parameter name (query string, API, CLI) → LeadFilter field.
ARGS = {
    "q": "q",
    "from": "seen_from",
    "to": "seen_to",
    "resource": "resource",
    "type": "resource_type",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "marketing": "marketing",
    "stage": "stage",
    "score_min": "score_min",
    "score_max": "score_max",
    "fit_min": "fit_min",
    "fit_max": "fit_max",
    "engagement_min": "engagement_min",
    "engagement_max": "engagement_max",
    "mql_from": "mql_from",
    "mql_to": "mql_to",
}
#: Filters on the stored numbers, and the lead column each reads.
RANGES = {"score_min": "score", "score_max": "score", "fit_min": "fit", "fit_max": "fit",
          "engagement_min": "engagement", "engagement_max": "engagement"}
#: Longest search text: a whole email address fits.
Q_MAX = EMAIL_MAX
TYPE_MAX = 100
YES, NO = "yes", "no"
#: Only the calendar form: date.fromisoformat would also take 20261130 and 2026-W48-1.
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class LeadFilter:
    """What to show; None (or empty) means "any". See the module docstring for each meaning."""

    q: str | None = None
    seen_from: date | None = None
    seen_to: date | None = None
    resource: str | None = None
    resource_type: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    marketing: bool | None = None
    stage: str | None = None
    score_min: int | None = None
    score_max: int | None = None
    fit_min: int | None = None
    fit_max: int | None = None
    engagement_min: int | None = None
    engagement_max: int | None = None
    mql_from: date | None = None
    mql_to: date | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str | None], resource_types: Collection[str] | None = None,
                  resource_ids: Collection[str] | None = None) -> tuple[LeadFilter, dict[str, list[str]]]:
        """Read parameters by their public names; unknown names are ignored (page, sort…).

        Returns the filter and ``{parameter: [messages]}``; when there are errors the filter
        holds only the valid parameters and must not be used to answer. ``resource_types`` and
        ``resource_ids`` (the catalog's) let an unknown type or resource be refused with the
        valid ones named: a misspelt one would otherwise select no lead, and say nothing.
        """
        values: dict[str, object] = {}
        errors: dict[str, list[str]] = {}

        def fail(name: str, message: str) -> None:
            errors.setdefault(name, []).append(message)

        for name, attr in ARGS.items():
            raw = args.get(name)
            text = "" if raw is None else str(raw).strip()
            if not text:
                continue
            if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
                fail(name, "Remove the control characters (tabs, line breaks…) from this value.")
                continue
            if attr in RANGES:
                if not re.fullmatch(r"[0-9]{1,3}", text) or int(text) > 100:
                    fail(name, f"'{text[:20]}' is not a whole number from 0 to 100.")
                else:
                    values[attr] = int(text)
            elif attr == "stage":
                if text.lower() not in STAGES:
                    fail(name, f"Unknown stage '{text[:40]}': use one of {', '.join(STAGES)}.")
                else:
                    values[attr] = text.lower()
            elif attr in ("seen_from", "seen_to", "mql_from", "mql_to"):
                day = _date(text)
                if day is None:
                    fail(name, f"'{text[:40]}' is not a date: write it as YYYY-MM-DD, e.g. 2026-11-30.")
                else:
                    values[attr] = day
            elif attr == "marketing":
                if text.lower() not in (YES, NO):
                    fail(name, f"Use yes or no, not '{text}'.")
                else:
                    values[attr] = text.lower() == YES
            elif attr == "resource":
                if len(text) > RESOURCE_ID_MAX or not SLUG.match(text):
                    fail(name, f"'{text[:RESOURCE_ID_MAX]}' is not a resource id "
                               "(lower-case letters, digits and hyphens).")
                elif resource_ids is not None and text not in resource_ids:
                    fail(name, f"Unknown resource '{text}': use one of {', '.join(resource_ids)}.")
                else:
                    values[attr] = text
            elif attr == "resource_type":
                if resource_types is not None and text not in resource_types:
                    fail(name, f"Unknown type '{text[:TYPE_MAX]}': use one of {', '.join(resource_types)}.")
                elif len(text) > TYPE_MAX:
                    fail(name, f"Use at most {TYPE_MAX} characters.")
                else:
                    values[attr] = text
            else:
                limit = Q_MAX if attr == "q" else UTM_MAX
                if len(text) > limit:
                    fail(name, f"Use at most {limit} characters (this has {len(text)}).")
                else:
                    values[attr] = text
        for first, last in (("from", "to"), ("mql_from", "mql_to")):
            start, end = values.get(ARGS[first]), values.get(ARGS[last])
            if isinstance(start, date) and isinstance(end, date) and end < start:
                fail(last, f"The end date {end.isoformat()} is before the start date {start.isoformat()}.")
        for low, high in (("score_min", "score_max"), ("fit_min", "fit_max"),
                          ("engagement_min", "engagement_max")):
            least, most = values.get(low), values.get(high)
            if isinstance(least, int) and isinstance(most, int) and most < least:
                fail(high, f"The highest ({most}) is below the lowest ({least}).")
        return cls(**values), errors  # type: ignore[arg-type]


def _date(text: str) -> date | None:
    if not DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


#: Every list of leads (workspace, search, API, exports) leaves erased leads out: their row
#: stays, emptied, only so that reports keep counting them (capture.privacy). Tested on each
#: lead reached, never through the index of the few erased ones (SQLite would walk it).
NOT_ERASED: ColumnElement[bool] = func.coalesce(Lead.erased_at, Lead.erased_at).is_(None)


@dataclass(frozen=True)
class Part:
    """One criterion of a filter in its two SQL forms, so a list can choose how to find leads.

    ``indexed`` lets the database find the matching leads from an index of their own (the
    posts' indexes, the search index, a column's index); ``plain`` only tests a lead the
    database reached otherwise, e.g. walking the list's sort index. ``probe`` selects rows of
    the indexed side (at most the limit the caller sets): how many there are says which form
    answers a page sooner. ``sorts`` names the list orders whose index the indexed form
    serves as it is (stage and score ranges, by score).
    """

    indexed: ColumnElement[bool]
    plain: ColumnElement[bool]
    probe: Any = None
    sorts: frozenset[str] = frozenset()
    #: The form posts' criteria: ``probe`` is then the lead_id of each matching post.
    posts: bool = False


def _untouched(column: Any) -> Any:
    """The column's value, in an expression no index serves (the same on both databases)."""
    return func.coalesce(column, column)


def _search(q: str, dialect: str | None) -> tuple[ColumnElement[bool], Any]:
    """The search box: (condition, probe). Matching is the LIKE below, whatever the database;
    the index only narrows the leads it is tried on. SQLite's FTS5 trigram table
    (``leads_search``, migration 0005) folds more letters than SQLite's LIKE does, so it
    finds a superset and LIKE decides; PostgreSQL's trigram index serves the LIKE itself. A
    trigram index needs three characters: shorter text is tried on every lead."""
    like = or_(*(
        column.icontains(q, autoescape=True)
        for column in (Lead.email, Lead.first_name, Lead.last_name, Lead.company)
    ))
    if len(q) < 3:
        return like, None
    if dialect == "sqlite":
        search = table("leads_search", column("rowid"))
        found = select(search.c.rowid).where(
            literal_column("leads_search").op("MATCH")('"' + q.replace('"', '""') + '"'))
        return and_(Lead.id.in_(found), like), found
    return like, select(Lead.id).where(like)


def lead_parts(lead_filter: LeadFilter, catalog: Catalog | None = None,
               dialect: str | None = None) -> list[Part]:
    """The filter's criteria (meanings in capture.leads.filters), each in both forms.

    ``catalog`` is needed only for a resource type filter; ``dialect`` (the store's) picks
    the search index, and without it the search is tried on every lead.
    """
    f = lead_filter
    parts: list[Part] = []
    if f.q:
        # The database folds both sides, so "Émilie" finds Émilie even where it folds only A–Z.
        condition, probe = _search(f.q, dialect)
        parts.append(Part(condition, _search(f.q, None)[0], probe))
    # Criteria on one form post must hold together, on the same post.
    per_post: list[ColumnElement[bool]] = []
    if f.seen_from:
        per_post.append(Submission.created_at >= _day_start(f.seen_from))
    if f.seen_to:
        per_post.append(Submission.created_at < _day_start(f.seen_to + timedelta(days=1)))
    if f.resource:
        per_post.append(Submission.resource_id == f.resource)
    if f.resource_type:
        if catalog is None:
            raise ValueError("a resource type filter needs the catalog")
        per_post.append(Submission.resource_id.in_(
            sorted(r.id for r in catalog if r.type == f.resource_type)))
    for name in ("utm_source", "utm_medium", "utm_campaign"):
        value = getattr(f, name)
        if value:
            # lower(), as the indexes of migration 0005 are written.
            per_post.append(func.lower(getattr(Submission, name)) == value.lower())
    if per_post:
        posts = select(Submission.lead_id).where(*per_post)
        parts.append(Part(
            Lead.id.in_(posts),
            select(Submission.id).where(Submission.lead_id == Lead.id, *per_post).exists(),
            posts, posts=True))
    if f.stage:
        parts.append(Part(Lead.stage == f.stage, _untouched(Lead.stage) == f.stage,
                          select(Lead.id).where(Lead.stage == f.stage), frozenset({"score"})))
    for name, column_name in RANGES.items():
        value = getattr(f, name)
        if value is not None:
            at_least = name.endswith("_min")
            column_ = getattr(Lead, column_name)
            indexed = column_ >= value if at_least else column_ <= value
            plain = _untouched(column_) >= value if at_least else _untouched(column_) <= value
            parts.append(Part(indexed, plain, select(Lead.id).where(indexed),
                              frozenset({"score"}) if column_name == "score" else frozenset()))
    mql: list[ColumnElement[bool]] = []
    if f.mql_from:
        mql.append(Lead.mql_at >= _day_start(f.mql_from))
    if f.mql_to:
        mql.append(Lead.mql_at < _day_start(f.mql_to + timedelta(days=1)))
    if mql:
        plain_mql = [c.operator(_untouched(Lead.mql_at), c.right) for c in mql]  # type: ignore[attr-defined]
        parts.append(Part(and_(*mql), and_(*plain_mql), select(Lead.id).where(*mql)))
    # Whether marketing consent is current, as stored on the lead by the ledger's code with
    # each event (capture.consent): indexed with the score, so counted without a million lookups.
    if f.marketing is True:
        granted = Lead.marketing_choice == True  # noqa: E712 (SQL, not Python)
        parts.append(Part(granted, _untouched(Lead.marketing_choice) == True,  # noqa: E712
                          sorts=frozenset({"score"})))
    elif f.marketing is False:
        declined = or_(Lead.marketing_choice == False, Lead.marketing_choice.is_(None))  # noqa: E712
        parts.append(Part(declined, func.coalesce(Lead.marketing_choice, false()) == False,  # noqa: E712
                          sorts=frozenset({"score"})))
    return parts


def lead_conditions(lead_filter: LeadFilter | None, catalog: Catalog | None = None,
                    dialect: str | None = None) -> list[ColumnElement[bool]]:
    """WHERE conditions on a query of :class:`Lead` for a filter (meanings in capture.leads.filters).

    Every list of leads (workspace, API, CLI export) filters through here so they agree.
    Each criterion in the form that finds its leads from an index (see :class:`Part`): what
    a count or an export of every matching lead wants. Erased leads are never selected.
    """
    parts = lead_parts(lead_filter, catalog, dialect) if lead_filter else []
    return [NOT_ERASED, *(part.indexed for part in parts)]
