"""A report written out: an aligned table for a terminal, CSV with a header, or JSON.

The columns are named once here; ``leadgate report``, ``leadgate spend list`` and the tests
read them. Rates are fractions in CSV and JSON (0.25) and percentages in the table (25.0%);
days have one decimal; money two; a measure that cannot be computed (no lead reached the step
before, no spend known) is empty in CSV, null in JSON and "–" in the table.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import IO, Any

from capture.analytics.measures import DayRange, Report, SpendLine

FORMATS = ("table", "csv", "json")
RATE, DAYS, MONEY, NUMBER, COUNT, TEXT = "rate", "days", "money", "number", "count", "text"

#: (column, heading in the table, kind), in the order of the CSV.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("group", "group", TEXT),
    ("leads", "leads", COUNT), ("mql", "MQL", COUNT), ("sql", "SQL", COUNT),
    ("prospect", "prospect", COUNT), ("customer", "customer", COUNT),
    ("lead_to_mql", "lead→MQL", RATE), ("mql_to_sql", "MQL→SQL", RATE),
    ("sql_to_prospect", "SQL→prospect", RATE), ("prospect_to_customer", "prospect→customer", RATE),
    ("lead_to_customer", "lead→customer", RATE),
    ("median_fit", "median fit", NUMBER), ("days_to_mql", "days lead→MQL", DAYS),
    ("days_mql_to_sql", "days MQL→SQL", DAYS), ("days_to_customer", "days lead→customer", DAYS),
    ("deals", "deals", COUNT), ("average_deal", "average deal", MONEY),
    ("other_currency_deals", "deals in other currencies", COUNT),
    ("spend", "spend", MONEY), ("cost_per_lead", "cost per lead", MONEY),
    ("cost_per_mql", "cost per MQL", MONEY),
)
KIND = {name: kind for name, _, kind in COLUMNS}
#: The table is three narrower tables, each with the group: volume, quality and speed, money.
TABLE_PARTS = (
    ("Volume and conversion", ("group", "leads", "mql", "sql", "prospect", "customer", "lead_to_mql",
                               "mql_to_sql", "sql_to_prospect", "prospect_to_customer", "lead_to_customer")),
    ("Quality and speed (medians)", ("group", "leads", "lead_to_mql", "median_fit", "days_to_mql",
                                     "days_mql_to_sql", "days_to_customer")),
    ("Deals and cost", ("group", "customer", "deals", "average_deal", "other_currency_deals", "spend",
                        "cost_per_lead", "cost_per_mql")),
)
SPEND_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("utm_source", "utm_source", TEXT), ("utm_campaign", "utm_campaign", TEXT),
    ("spend", "spend", MONEY), ("currency", "currency", TEXT), ("leads", "leads", COUNT),
    ("mql", "MQL", COUNT), ("cost_per_lead", "cost per lead", MONEY), ("cost_per_mql", "cost per MQL", MONEY),
)
DASH = "–"


def plain(value: Any, kind: str) -> Any:
    """A measure as JSON gives it: rates to 4 places, days and medians to 1, money to 2."""
    if value is None:
        return None
    if kind == RATE:
        return round(value, 4)
    if kind in (DAYS, NUMBER):
        return round(value, 1)
    if kind == MONEY:
        return float(Decimal(value).quantize(Decimal("0.01")))
    return value


def text(value: Any, kind: str, *, table: bool = False) -> str:
    """A measure as a CSV cell, or as a table cell with ``table``."""
    if value is None:
        return DASH if table else ""
    if kind == RATE:
        return f"{value:.1%}" if table else f"{value:.4f}"
    if kind in (DAYS, NUMBER):
        return f"{value:.1f}"
    if kind == MONEY:
        return f"{Decimal(value).quantize(Decimal('0.01')):,}" if table else f"{Decimal(value):.2f}"
    return str(value)


def report_json(report: Report) -> dict[str, Any]:
    def row(values: dict[str, Any]) -> dict[str, Any]:
        return {name: plain(values[name], KIND[name]) for name in KIND}

    return {"from": report.range.start.isoformat(), "to": report.range.end.isoformat(), "by": report.by,
            "currency": report.currency, "rows": [row(r.measures()) for r in report.rows],
            "total": row(report.total.measures()), "notes": report.notes}


def write_report(report: Report, fmt: str, out: IO[str]) -> None:
    """The report in one of FORMATS. CSV: one row per group, then the total (group
    "(total)") when grouped; the notes go to the table and JSON only."""
    if fmt == "json":
        json.dump(report_json(report), out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    rows = [r.measures() for r in report.rows]
    if report.by is not None:
        rows.append({**report.total.measures(), "group": "(total)"})
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([name for name, _, _ in COLUMNS])
        writer.writerows([text(row[name], kind) for name, _, kind in COLUMNS] for row in rows)
        return
    by = report.by or "all leads"
    out.write(f"Leads first seen {report.range.start.isoformat()} to {report.range.end.isoformat()} "
              f"(UTC days, both included), by {by}; money in {report.currency}.\n")
    if not report.rows:
        out.write("No lead was first seen in this range, and no spend was recorded.\n")
    else:
        heading = {name: head for name, head, _ in COLUMNS}
        heading["group"] = report.by or "group"
        for title, names in TABLE_PARTS:
            out.write(f"\n{title}\n")
            write_table(out, [heading[n] for n in names], [[text(row[n], KIND[n], table=True)
                                                            for n in names] for row in rows],
                        [KIND[n] != TEXT for n in names], total=report.by is not None)
    for note in report.notes:
        out.write(f"\nNote: {note}\n")


def write_table(out: IO[str], headings: Sequence[str], rows: Sequence[Sequence[str]],
                right: Sequence[bool], *, total: bool = False) -> None:
    """Columns as wide as their widest cell, numbers aligned right; a rule before the total."""
    widths = [max(len(cell) for cell in column) for column in zip(headings, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(cells, widths, right)
                         ).rstrip()

    out.write(line(headings) + "\n" + "  ".join("-" * w for w in widths) + "\n")
    for n, row in enumerate(rows):
        if total and n == len(rows) - 1 and n:
            out.write("  ".join("-" * w for w in widths) + "\n")
        out.write(line(row) + "\n")


def write_spend(lines: Sequence[SpendLine], range_: DayRange, fmt: str, out: IO[str]) -> None:
    """Spend per source and campaign with the leads and MQLs of that first touch."""
    rows = [line.measures() for line in lines]
    if fmt == "json":
        json.dump({"from": range_.start.isoformat(), "to": range_.end.isoformat(),
                   "rows": [{n: plain(r[n], k) for n, _, k in SPEND_COLUMNS} for r in rows]},
                  out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([n for n, _, _ in SPEND_COLUMNS])
        writer.writerows([text(r[n], k) for n, _, k in SPEND_COLUMNS] for r in rows)
    else:
        out.write(f"Spend from {range_.start.isoformat()} to {range_.end.isoformat()}, beside the leads first seen then whose first touch had that "
                  "utm_source and utm_campaign.\n")
        if not rows:
            out.write("No spend recorded in this range: import some with `leadgate spend import FILE.csv`.\n")
            return
        write_table(out, [h for _, h, _ in SPEND_COLUMNS],
                    [[text(r[n], k, table=True) for n, _, k in SPEND_COLUMNS] for r in rows],
                    [k != TEXT for _, _, k in SPEND_COLUMNS])
