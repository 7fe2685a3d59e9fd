"""What sources and campaigns cost: a CSV of daily spend checked whole, then stored.

``leadgate spend import FILE.csv`` reads the columns ``date, utm_source, utm_campaign, amount,
currency`` (a header line naming them, in any order). Every problem of the file is reported
with its line number, all at once, and then nothing is stored: a half-imported budget would
give costs that look right and are not. A good file is upserted on (day, source, campaign), so
importing a corrected file replaces its amounts. Sources and campaigns are kept in lower case,
as the report groups them (capture.analytics.measures).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import IO

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from capture.analytics.measures import parse_day
from capture.db.models import Spend, utcnow
from capture.db.store import Store
from capture.fields import UTM_MAX

COLUMNS = ("date", "utm_source", "utm_campaign", "amount", "currency")
MAX_AMOUNT = Decimal("999999999999.99")
#: A plain amount: digits, at most two decimals (no thousands separator, no sign).
AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?")
CURRENCY = re.compile(r"[A-Za-z]{3}")
#: More lines than any year of daily spend per campaign needs; a bigger file is refused whole.
MAX_ROWS = 100_000


class SpendFileError(ValueError):
    """A spend file that cannot be imported: every problem, each with its line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class SpendRow:
    day: date
    utm_source: str
    utm_campaign: str
    amount: Decimal
    currency: str

    @property
    def key(self) -> tuple[date, str, str]:
        return (self.day, self.utm_source, self.utm_campaign)


def read_spend(stream: IO[bytes], name: str = "the file") -> list[SpendRow]:
    """The rows of a spend CSV, or SpendFileError with every problem found."""
    try:
        text = stream.read().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpendFileError([f"{name} is not UTF-8 text (byte {e.start + 1}): save it as CSV UTF-8."]) \
            from None
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[str] = []
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise SpendFileError([f"line 1: {e}"]) from None
    names = [cell.strip().lower() for cell in header or []]
    if not names or not any(names):
        raise SpendFileError([f"{name} is empty: its first line must name the columns "
                              + ", ".join(COLUMNS) + "."])
    missing = [c for c in COLUMNS if c not in names]
    unknown = [n for n in names if n not in COLUMNS]
    twice = sorted({n for n in names if n in COLUMNS and names.count(n) > 1})
    if missing or unknown or twice:
        parts = [f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"] if missing else []
        parts += [f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(repr(u[:40]) for u in unknown)}"
                  ] if unknown else []
        parts += [f"column{'s' if len(twice) > 1 else ''} {', '.join(twice)} named twice"] if twice else []
        raise SpendFileError([f"line 1 (the header): {'; '.join(parts)}. The header names the columns "
                              + ", ".join(COLUMNS) + "."])
    position = {n: names.index(n) for n in COLUMNS}
    rows: list[SpendRow] = []
    seen: dict[tuple[date, str, str], int] = {}
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) + len(problems) >= MAX_ROWS:
                problems.append(f"line {line}: more than {MAX_ROWS:,} rows; split the file.")
                break
            row, row_problems = _row(cells, position, len(names))
            problems += [f"line {line}: {p}" for p in row_problems]
            if row is None:
                continue
            if row.key in seen:
                problems.append(f"line {line}: {row.day.isoformat()} {row.utm_source}/{row.utm_campaign or '(no campaign)'} "
                                f"is on line {seen[row.key]} already: give each day, source and campaign once.")
                continue
            seen[row.key] = line
            rows.append(row)
    except csv.Error as e:
        problems.append(f"line {reader.line_num}: {e}")
    if not rows and not problems:
        problems.append(f"{name} has no rows after its header: nothing to import.")
    if problems:
        raise SpendFileError(problems)
    return rows


def _row(cells: list[str], position: dict[str, int], width: int) -> tuple[SpendRow | None, list[str]]:
    if len(cells) != width:
        return None, [f"expected {width} values (as in the header), found {len(cells)}."]
    value = {name: cells[i].strip() for name, i in position.items()}
    problems = []
    for name, text in value.items():
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
            problems.append(f"{name}: remove the control characters (tabs, line breaks…).")
    day = parse_day(value["date"])
    if day is None:
        problems.append(f"date: '{value['date'][:40]}' is not a date: write it as YYYY-MM-DD, e.g. 2026-11-30.")
    if not value["utm_source"]:
        problems.append("utm_source: empty: name the source the money was spent on (e.g. linkedin).")
    for name in ("utm_source", "utm_campaign"):
        if len(value[name]) > UTM_MAX:
            problems.append(f"{name}: too long: at most {UTM_MAX} characters (this has {len(value[name])}).")
    amount = None
    text = value["amount"]
    if text.startswith("-"):
        problems.append(f"amount: '{text[:40]}' is negative: spend is 0 or more.")
    elif not AMOUNT.fullmatch(text):
        problems.append(f"amount: '{text[:40]}' is not an amount: write it as 1234.50 "
                        "(a point before at most two decimals, no thousands separator).")
    else:
        try:
            amount = Decimal(text)
        except InvalidOperation:
            amount = None
        if amount is None or amount > MAX_AMOUNT:
            problems.append(f"amount: too large: at most {MAX_AMOUNT:,}.")
            amount = None
    if not CURRENCY.fullmatch(value["currency"]):
        problems.append(f"currency: '{value['currency'][:40]}' is not a currency code such as EUR or USD.")
    if problems or day is None or amount is None:
        return None, problems
    return SpendRow(day, value["utm_source"].lower(), value["utm_campaign"].lower(),
                    amount.quantize(Decimal("0.01")), value["currency"].upper()), []


@dataclass(frozen=True)
class Imported:
    added: int
    replaced: int
    first: date
    last: date


def import_spend(store: Store, rows: Iterable[SpendRow], now: datetime | None = None) -> Imported:
    """Store checked rows in one transaction: new (day, source, campaign) added, known ones'
    amount and currency replaced."""
    rows = list(rows)
    if not rows:
        raise ValueError("no spend rows")
    now = now or utcnow()
    first, last = min(r.day for r in rows), max(r.day for r in rows)
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[store.dialect]
    stmt = insert(Spend.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "utm_source", "utm_campaign"],
        set_={"amount": stmt.excluded.amount, "currency": stmt.excluded.currency,
              "imported_at": stmt.excluded.imported_at})
    with store.write() as s:
        known = {tuple(key) for key in s.execute(
            select(Spend.day, Spend.utm_source, Spend.utm_campaign).where(Spend.day.between(first, last)))}
        s.execute(stmt, [{"day": r.day, "utm_source": r.utm_source, "utm_campaign": r.utm_campaign,
                          "amount": r.amount, "currency": r.currency, "imported_at": now} for r in rows])
    replaced = sum(r.key in known for r in rows)
    return Imported(len(rows) - replaced, replaced, first, last)
