"""The funnel's measures for leads first seen in a range of days, overall or by first touch.

Definitions (docs/reports.md is the reader's version): a lead counts when its ``first_seen``
falls on a day of the range (UTC days, both ends included). It is grouped by its **first
touch**, the submission ``first_submission_id`` points at (utm values in lower case, the
resource id as it is; empty values are "(none)"). A step of the funnel is reached when its
``<stage>_at`` is set, which a move sets for every step it skips (capture.leads.stages.reached),
so a lead that went from lead to SQL counts as an MQL too; disqualified and recycled leads keep
what they reached.

The database does the counting: one ``GROUP BY`` of the counts per group and fit (the fit
histogram gives the median fit), one of the durations in whole hours (a histogram per group
and step gives the medians), one of the spend. Medians are then read from those histograms in
Python, exactly, without streaming a row per lead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, case, cast, extract, func, literal, literal_column, select, true, union_all

from capture.db.models import Lead, Spend, Submission
from capture.db.store import Store

#: What a report can be grouped by: a field of the lead's first submission.
GROUPINGS = ("utm_source", "utm_medium", "utm_campaign", "resource")
#: The group of leads whose first touch had no value for the grouping.
NONE = "(none)"
#: The one row of a report that is not grouped.
ALL = "(all)"
#: Days a range covers when none is given: today and the 89 before it.
DEFAULT_DAYS = 90
#: The steps of the funnel after "lead", and the conversion of each from the one before.
STEPS = ("mql", "sql", "prospect", "customer")
CONVERSIONS = (("lead_to_mql", "leads", "mql"), ("mql_to_sql", "mql", "sql"),
               ("sql_to_prospect", "sql", "prospect"), ("prospect_to_customer", "prospect", "customer"),
               ("lead_to_customer", "leads", "customer"))
CENT = Decimal("0.01")


class RangeError(ValueError):
    """A range a person typed wrong: ``errors`` maps ``from``/``to`` to messages."""

    def __init__(self, errors: Mapping[str, list[str]]):
        self.errors = dict(errors)
        super().__init__("; ".join(m for ms in self.errors.values() for m in ms))


@dataclass(frozen=True)
class DayRange:
    """Whole UTC days, both ends included."""

    start: date
    end: date

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """[start 00:00 UTC, the day after end 00:00 UTC): the moments the range holds."""
        return (datetime.combine(self.start, time(), UTC),
                datetime.combine(self.end + timedelta(days=1), time(), UTC))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def parse_day(text: str) -> date | None:
    """``YYYY-MM-DD`` only (date.fromisoformat would take 20261130 too)."""
    text = text.strip()
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not (text[:4] + text[5:7] + text[8:]).isdigit():
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def day_range(start: str | None, end: str | None, today: date | None = None) -> DayRange:
    """The range typed (either end may be left out), or RangeError naming ``from``/``to``.

    Without ``to`` the range ends today (UTC); without ``from`` it starts DEFAULT_DAYS - 1
    days before its end, so the default is the last 90 days, today included.
    """
    today = today or datetime.now(UTC).date()
    errors: dict[str, list[str]] = {}
    days: dict[str, date | None] = {}
    for name, text in (("from", start), ("to", end)):
        text = (text or "").strip()
        days[name] = parse_day(text) if text else None
        if text and days[name] is None:
            errors[name] = [f"'{text[:40]}' is not a date: write it as YYYY-MM-DD, e.g. 2026-11-30."]
    if errors:
        raise RangeError(errors)
    last = days["to"] or today
    first = days["from"] or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise RangeError({"to": [f"The end date {last.isoformat()} is before the start date "
                                 f"{first.isoformat()}."]})
    return DayRange(first, last)


def median(histogram: Mapping[Any, int]) -> float | None:
    """The middle value of a histogram {value: count}; the mean of the two middle values when
    the count is even; None when it is empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    low_rank, high_rank = (total - 1) // 2, total // 2
    low = high = None
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if low is None and seen > low_rank:
            low = value
        if seen > high_rank:
            high = value
            break
    return (float(low) + float(high)) / 2


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Row:
    """One group's measures (or the total). Money is in the report's currency."""

    group: str
    leads: int = 0
    mql: int = 0
    sql: int = 0
    prospect: int = 0
    customer: int = 0
    fit: dict[int, int] = field(default_factory=dict, repr=False)
    #: Histograms of whole hours: lead→MQL, MQL→SQL (steps taken, not skipped), lead→customer.
    hours: dict[str, dict[int, int]] = field(default_factory=lambda: {"mql": {}, "sql": {}, "customer": {}},
                                             repr=False)
    #: Customers with a deal value in the report's currency, and their total.
    deals: int = 0
    deal_total: Decimal = Decimal(0)
    #: Customers whose deal is in another currency: counted here, not in the average.
    other_deals: int = 0
    #: None when no spend row matches this group (unknown), else the amount.
    spend: Decimal | None = None

    def rates(self) -> dict[str, float | None]:
        return {name: rate(getattr(self, part), getattr(self, whole)) for name, whole, part in CONVERSIONS}

    @property
    def median_fit(self) -> float | None:
        return median(self.fit)

    def median_days(self, step: str) -> float | None:
        hours = median(self.hours[step])
        return None if hours is None else hours / 24

    @property
    def average_deal(self) -> Decimal | None:
        return (self.deal_total / self.deals).quantize(CENT) if self.deals else None

    @property
    def cost_per_lead(self) -> Decimal | None:
        return (self.spend / self.leads).quantize(CENT) if self.spend is not None and self.leads else None

    @property
    def cost_per_mql(self) -> Decimal | None:
        return (self.spend / self.mql).quantize(CENT) if self.spend is not None and self.mql else None

    def add(self, other: Row) -> None:
        """Fold another group into this one (the total)."""
        for name in ("leads", "mql", "sql", "prospect", "customer", "deals", "other_deals"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.deal_total += other.deal_total
        for value, count in other.fit.items():
            self.fit[value] = self.fit.get(value, 0) + count
        for step, histogram in other.hours.items():
            mine = self.hours[step]
            for value, count in histogram.items():
                mine[value] = mine.get(value, 0) + count

    def measures(self) -> dict[str, Any]:
        """Every measure by its column name (capture.analytics.formats.COLUMNS), unrounded."""
        return {
            "group": self.group, "leads": self.leads, "mql": self.mql, "sql": self.sql,
            "prospect": self.prospect, "customer": self.customer, **self.rates(),
            "median_fit": self.median_fit, "days_to_mql": self.median_days("mql"),
            "days_mql_to_sql": self.median_days("sql"), "days_to_customer": self.median_days("customer"),
            "deals": self.deals, "average_deal": self.average_deal, "other_currency_deals": self.other_deals,
            "spend": self.spend, "cost_per_lead": self.cost_per_lead, "cost_per_mql": self.cost_per_mql,
        }


@dataclass
class Report:
    range: DayRange
    by: str | None
    currency: str
    rows: list[Row]
    total: Row
    #: What a reader must know to read the figures right (spend left out, other currencies…).
    notes: list[str] = field(default_factory=list)


def _group_column(by: str | None) -> ColumnElement[Any]:
    """The grouping's column as stored: utm values are folded to lower case in Python
    (:func:`_label`), which costs the database nothing and folds every letter, not A–Z only."""
    if by is None:
        return literal(ALL)
    return getattr(Submission, "resource_id" if by == "resource" else by)


def _hours(later: Any, earlier: Any, dialect: str) -> ColumnElement[Any]:
    """Whole hours from ``earlier`` to ``later``, the rest of an hour dropped."""
    if dialect == "sqlite":
        # julianday is a double: an exact 24 h can come out as 23.99999999; a millisecond's
        # worth of slack keeps whole hours whole.
        return cast((func.julianday(later) - func.julianday(earlier)) * 24 + 0.0000003, Integer)
    return cast(func.floor(extract("epoch", later - earlier) / 3600), Integer)


def _leads_in(range_: DayRange, by: str | None, *columns: Any, scan: bool = False) -> Any:
    """SELECT columns FROM the range's leads (joined to their first touch when grouped).

    ``scan``: read the leads table from end to end rather than through the first_seen index
    (SQLite only). When a range holds most leads, fetching each row through the index costs
    about four times the plain scan (docs/performance.md); see :func:`_wide`.
    """
    start, end = range_.bounds
    # SQLite's own way to keep an index out of a condition: a unary + before the column.
    seen = literal_column("+leads.first_seen", type_=Lead.first_seen.type) if scan else Lead.first_seen
    stmt = select(*columns).select_from(Lead).where(seen >= start, seen < end)
    if by is not None:
        stmt = stmt.join(Submission, Submission.id == Lead.first_submission_id)
    return stmt


#: Above this share of all leads (by time span), a range is read by a scan on SQLite.
SCAN_SHARE = 0.2


def _wide(session: Any, range_: DayRange) -> bool:
    """Whether the range likely holds more than SCAN_SHARE of the leads: its overlap with the
    span from the first lead to the last, as a share of that span (two index look-ups).
    PostgreSQL's planner makes this choice itself from its statistics."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    # Two scalar subqueries: SQLite answers each from one end of the index (min and max in one
    # SELECT would scan it whole).
    first, last = session.execute(select(select(func.min(Lead.first_seen)).scalar_subquery(),
                                         select(func.max(Lead.first_seen)).scalar_subquery())).one()
    if first is None or last is None or last <= first:
        return True
    start, end = range_.bounds
    overlap = (min(end, last) - max(start, first)).total_seconds()
    return overlap / (last - first).total_seconds() > SCAN_SHARE


def _label(value: Any, by: str | None = "resource") -> str:
    """A group's name: utm values in lower case; "(none)" for an empty one."""
    if not value:
        return NONE
    return value if by in (None, "resource") else value.lower()


def report(store: Store, range_: DayRange, by: str | None = None, currency: str = "EUR") -> Report:
    """The measures of the leads first seen in ``range_``, by first touch ``by`` (or overall)."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}")
    group = _group_column(by).label("grp")
    has_deal = and_(Lead.customer_at.is_not(None), Lead.deal_value.is_not(None))
    ours = and_(has_deal, Lead.deal_currency.in_((currency, "")))
    dialect = store.dialect
    rows: dict[str, Row] = {}
    with store.read() as s:
        scan = _wide(s, range_)
        counts = _leads_in(
            range_, by, group, Lead.fit, func.count(), func.count(Lead.mql_at), func.count(Lead.sql_at),
            func.count(Lead.prospect_at), func.count(Lead.customer_at),
            func.count(case((ours, 1))), func.sum(case((ours, Lead.deal_value))),
            func.count(case((and_(has_deal, Lead.deal_currency.not_in((currency, ""))), 1))), scan=scan,
        ).group_by(group, Lead.fit)
        reached = _leads_in(range_, by, group, Lead.first_seen, Lead.mql_at, Lead.sql_at, Lead.customer_at,
                            scan=scan).where(Lead.mql_at.is_not(None)).cte("reached")
        r = reached.c
        durations = union_all(*(
            select(r.grp, literal(step).label("step"), hours.label("hours"), func.count())
            .where(condition).group_by(r.grp, hours)
            for step, hours, condition in (
                ("mql", _hours(r.mql_at, r.first_seen, dialect), true()),
                # MQL→SQL for leads that were MQLs before sales took them: a lead moved straight
                # to SQL reached MQL at that very moment, and took no time as an MQL.
                ("sql", _hours(r.sql_at, r.mql_at, dialect), r.sql_at > r.mql_at),
                ("customer", _hours(r.customer_at, r.first_seen, dialect), r.customer_at.is_not(None)),
            )))
        for grp, fit, n, mql, sql, prospect, customer, deals, deal_total, other in s.execute(counts):
            name = _label(grp, by)
            row = rows.setdefault(name, Row(name))
            row.leads += n
            row.mql += mql
            row.sql += sql
            row.prospect += prospect
            row.customer += customer
            row.fit[fit] = row.fit.get(fit, 0) + n
            row.deals += deals
            row.deal_total += Decimal(str(deal_total or 0)).quantize(CENT)
            row.other_deals += other
        for grp, step, hours, n in s.execute(durations):
            histogram = rows[_label(grp, by)].hours[step]
            histogram[hours] = histogram.get(hours, 0) + n
        spend = spend_by(s, range_)
    notes = _add_spend(rows, spend, by, currency)
    total = Row(ALL)
    for row in rows.values():
        total.add(row)
    ours_spent = [amount for (_, _, cur), amount in spend.items() if cur == currency]
    total.spend = sum(ours_spent, Decimal(0)) if ours_spent else None
    if total.other_deals:
        notes.append(f"{total.other_deals} customer deal{'s are' if total.other_deals != 1 else ' is'} "
                     f"in another currency than {currency}: counted in other_currency_deals, "
                     "left out of the average deal size.")
    if by is None:
        listed = [total] if total.leads or total.spend is not None else []
    else:
        listed = sorted(rows.values(), key=lambda row: (-row.leads, -row.mql, row.group))
    return Report(range_, by, currency, listed, total, notes)


def spend_by(session: Any, range_: DayRange) -> dict[tuple[str, str, str], Decimal]:
    """Spend on the range's days: {(utm_source, utm_campaign, currency): amount}."""
    stmt = (select(Spend.utm_source, Spend.utm_campaign, Spend.currency, func.sum(Spend.amount))
            .where(Spend.day >= range_.start, Spend.day <= range_.end)
            .group_by(Spend.utm_source, Spend.utm_campaign, Spend.currency))
    return {(source, campaign, currency): Decimal(str(amount)).quantize(CENT)
            for source, campaign, currency, amount in session.execute(stmt)}


def _add_spend(rows: dict[str, Row], spend: Mapping[tuple[str, str, str], Decimal], by: str | None,
               currency: str) -> list[str]:
    """Spend onto the groups it matches: by source, by campaign, or only the total. A group
    with spend but no lead gets a row of its own (0 leads); a group without spend keeps None."""
    notes = []
    others: dict[str, Decimal] = defaultdict(Decimal)
    for (source, campaign, cur), amount in spend.items():
        if cur != currency:
            others[cur] += amount
            continue
        if by in ("utm_source", "utm_campaign"):
            key = _label(source if by == "utm_source" else campaign, by)
            row = rows.setdefault(key, Row(key))
            row.spend = (row.spend or Decimal(0)) + amount
    if others:
        notes.append("Spend in other currencies is left out of every cost: "
                     + ", ".join(f"{amount} {cur}" for cur, amount in sorted(others.items())) + ".")
    if spend and by in ("utm_medium", "resource"):
        notes.append(f"Spend is matched by utm_source and utm_campaign only: grouped by {by}, "
                     "costs are shown for the total alone.")
    return notes


@dataclass(frozen=True)
class Week:
    """A week of the trend: from its Monday (or the range's first day) to its last day in range."""

    start: date
    end: date
    leads: int
    mqls: int


def _day(column: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return func.date(column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def weekly_trend(store: Store, range_: DayRange) -> list[Week]:
    """New leads (first seen) and new MQLs (``mql_at``, whenever the lead was first seen) per
    week of the range, weeks starting on Monday; the first and last may be partial."""
    start, end = range_.bounds
    dialect = store.dialect
    per_day: dict[str, dict[date, int]] = {"leads": defaultdict(int), "mqls": defaultdict(int)}
    with store.read() as s:
        for kind, column in (("leads", Lead.first_seen), ("mqls", Lead.mql_at)):
            day = _day(column, dialect)
            stmt = select(day, func.count()).where(column >= start, column < end).group_by(day)
            for text, n in s.execute(stmt):
                per_day[kind][date.fromisoformat(text)] += n
    weeks = []
    monday = range_.start - timedelta(days=range_.start.weekday())
    while monday <= range_.end:
        first, last = max(monday, range_.start), min(monday + timedelta(days=6), range_.end)
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        weeks.append(Week(first, last, sum(per_day["leads"].get(d, 0) for d in days),
                          sum(per_day["mqls"].get(d, 0) for d in days)))
        monday += timedelta(days=7)
    return weeks


@dataclass
class SpendLine:
    """Spend of one source and campaign in a range, beside the leads of that first touch."""

    utm_source: str
    utm_campaign: str
    currency: str
    spend: Decimal
    leads: int
    mql: int

    @property
    def cost_per_lead(self) -> Decimal | None:
        return (self.spend / self.leads).quantize(CENT) if self.leads else None

    @property
    def cost_per_mql(self) -> Decimal | None:
        return (self.spend / self.mql).quantize(CENT) if self.mql else None

    def measures(self) -> dict[str, Any]:
        return {"utm_source": self.utm_source or NONE, "utm_campaign": self.utm_campaign or NONE,
                "spend": self.spend, "currency": self.currency, "leads": self.leads, "mql": self.mql,
                "cost_per_lead": self.cost_per_lead, "cost_per_mql": self.cost_per_mql}


def spend_lines(store: Store, range_: DayRange) -> list[SpendLine]:
    """Every source and campaign with spend in the range, matched to the leads first seen in
    the range whose first touch had that utm_source and utm_campaign (in any case)."""
    leads = _leads_in(range_, "utm_source", Submission.utm_source, Submission.utm_campaign, func.count(),
                      func.count(Lead.mql_at)).group_by(Submission.utm_source, Submission.utm_campaign)
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    with store.read() as s:
        spend = spend_by(s, range_)
        for src, cmp, n, mql in s.execute(leads):
            key = (src.lower(), cmp.lower())
            known = counts.get(key, (0, 0))
            counts[key] = (known[0] + n, known[1] + mql)
    return [SpendLine(src, cmp, cur, amount, *counts.get((src, cmp), (0, 0)))
            for (src, cmp, cur), amount in sorted(spend.items())]
