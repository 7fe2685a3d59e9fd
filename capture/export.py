"""Leads as CSV for sales: one row per lead, streamed line by line.

Rows come from ``Store.iter_export_rows`` one chunk at a time and leave as lines of text, so
memory stays flat however many leads there are.

Columns: the lead's details (newest non-empty values), the source of the first and of the
latest request, the ids of every resource requested (``;``-joined), the terms version of the
latest request, and the latest marketing choice: ``marketing_opt_in`` is ``yes`` only when the
latest form the person sent had the box ticked (an unticked box later is read as "no" — the
cautious reading) and ``marketing_opt_in_at`` is when that latest choice was made.

Formula neutralising (OWASP CSV Injection): a text cell that starts with ``=``, ``+``, ``-``,
``@``, tab, carriage return, line feed or a full-width ``＝ ＋ － ＠`` gets a leading ``'``, so a
spreadsheet shows it as text instead of running it. This applies to every column a visitor
could type or a page could send — the email column too, since ``=cmd|'/C calc'!A0@example.com``
is a valid address. Columns the service writes itself are left alone: timestamps
(ISO 8601 UTC, e.g. ``2026-11-23T12:00:00Z``), ``yes``/``no``, and resource ids (slugs).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from capture.store import EXPORT_COLUMNS, Store

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
BOM = "\ufeff"

HEADER = EXPORT_COLUMNS
TIME_COLUMNS = frozenset({"marketing_opt_in_at", "first_seen", "last_seen"})


def neutralise(value: str) -> str:
    """``'`` before a cell a spreadsheet would read as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cells(row: dict[str, Any]) -> list[str]:
    """One export row as the text of its cells, in HEADER order."""
    out = []
    for name in HEADER:
        value = row[name]
        if name in TIME_COLUMNS:
            out.append(iso(value))
        elif name == "marketing_opt_in":
            out.append("yes" if value else "no")
        elif name == "resources":
            out.append(";".join(value))
        else:
            out.append(neutralise(value or ""))
    return out


class _Line:
    """A file-like target for csv.writer that hands back each line it is given."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text = text


def iter_csv(store: Store, *, bom: bool = False, chunk_size: int = 1000) -> Iterator[str]:
    """The export as lines of CSV text (header first); ``bom`` for Excel's UTF-8 detection."""
    line = _Line()
    writer = csv.writer(line)
    writer.writerow(HEADER)
    yield (BOM if bom else "") + line.text
    for row in store.iter_export_rows(chunk_size=chunk_size):
        writer.writerow(cells(row))
        yield line.text


def write_csv(store: Store, stream: TextIO, *, bom: bool = False) -> int:
    """Write the export to an open text stream; returns the number of leads written."""
    rows = 0
    for rows, line in enumerate(iter_csv(store, bom=bom)):
        stream.write(line)
    return rows
