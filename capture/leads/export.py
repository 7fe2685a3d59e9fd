"""Leads for sales, as CSV or JSON Lines: one row per lead, streamed block by block.

Rows come from ``capture.leads.queries.iter_export_rows`` one chunk at a time and leave as blocks of UTF-8, so
memory stays flat however many leads there are. The CSV header leaves before the query runs.

Columns (``--columns a,b,c`` or ``?columns=a,b,c``, in the order given; :data:`COLUMNS`
describes each and docs/export.md lists them): the default set is :data:`DEFAULT_COLUMNS`.

Formula neutralising (OWASP CSV Injection), by the kind of a column:

- **text** — everything a visitor could type or a page could send, the email address too
  (``=cmd|'/C calc'!A0@example.com`` is a valid address), and consent versions: a cell that
  starts with ``=``, ``+``, ``-``, ``@``, tab, carriage return, line feed or a full-width
  ``＝ ＋ － ＠`` gets a leading ``'``, so a spreadsheet shows it as text instead of running
  it. ``Ann-Marie`` and ``foo@example.org`` stay as they are; ``-2+3`` becomes ``'-2+3``.
- **time** — ISO 8601 UTC written by the service (``2026-11-23T12:00:00Z``), empty when none.
- **yes/no** — ``marketing_opt_in``.
- **sha-256** — the fingerprint of a consent text: 64 lower-case hex digits, computed by the
  service from the words shown (the words themselves are on the lead's workspace page).
- **number** — the lead id and counts, written by the database; never negative.
- **stage** — one of capture.leads.stages.STAGES.
- **reasons** — ``score_reasons``: the stored reasons as ``rule +points; rule −points``,
  neutralised like text (a rule's name can hold what a person typed, such as an industry).
- **resource id** — catalog slugs (lower-case letters, digits, single hyphens, checked when the
  form is posted), ``;``-joined in ``resources``.

Only text cells are neutralised: the others are produced by the service in a form that cannot
start with a formula character, and leaving them alone keeps numbers and dates usable as such.
Quoting is csv's: commas, quotes and line breaks stay inside their cell, and any Unicode is
written as it is (NUL and lone surrogates are refused when a form is posted).

Consent, per purpose (``terms_…``, ``marketing_…``, then each further purpose of leadgate.yml
in its order, such as ``partners_…``; :func:`export_columns`): the state derived from the ledger
(capture.consent.state) and the version, SHA-256 and time of the event that set it. Leaving
the box unticked on a later form does not withdraw an earlier consent; only a withdrawal does.
``marketing_opt_in`` is ``yes`` when marketing consent is current (given, or confirmed when
double opt-in is on); ``marketing_opt_in_at`` is then the time of the event that set it.

JSON Lines (``--format jsonl``) carries the raw values — text as typed, ``true``/``false``,
numbers, ``null`` for no time, a list for ``resources``, a list of ``{"rule", "points"}``
for ``score_reasons`` — with no ``'`` prefixes: JSON is read
by programs, not run by spreadsheets, so there is nothing to neutralise.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from operator import itemgetter
from typing import Any, BinaryIO

from capture.catalog import Catalog
from capture.content_settings import Purpose
from capture.db.store import Store
from capture.fields import BY_NAME, CHOICE, PROFILE_FIELDS
from capture.leads.filters import LeadFilter
from capture.leads.queries import EXPORT_SOURCE_FIELDS, PURPOSES, ExportKey, iter_export_rows
from capture.leads.stages import STAGES
from capture.scoring.score import readable_reasons, reasons_from_json

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
BOM = "\ufeff".encode()

TEXT, TIME, FLAG, NUMBER, HASH = "text", "time", "yes/no", "number", "sha-256"
RESOURCE, RESOURCES = "resource id", "resource ids"
STAGE, REASONS = "stage", "reasons"
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
TRUE, FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    description: str


def _named(name: str) -> str:
    """How a column description names a form field: its label from the field contract."""
    label = BY_NAME[name].label.lower()
    return f"{label} ({name})" if name.startswith("utm_") else label


def _profile(name: str) -> Column:
    """A profile column: the newest non-empty value the person gave in that field."""
    spec = BY_NAME[name]
    choice = ", one of the choices in leadgate.yml" if spec.kind == CHOICE else ""
    return Column(name, TEXT, f"Newest non-empty {_named(name)}{choice}, at most {spec.limit} characters.")


def _source(name: str, which: str) -> Column:
    kind = RESOURCE if name == "resource_id" else TEXT
    return Column(f"{which}_{name}", kind, f"The {_named(name)} of the person's {which} request.")


def _consent(purpose: str, what: str) -> tuple[Column, ...]:
    """A purpose's columns: where its consent stands, and the event that put it there."""
    return (
        Column(f"{purpose}_state", TEXT, f"Consent to {what}: given, declined, confirmed or withdrawn "
               "(empty: never asked). A box left unticked later does not withdraw a consent."),
        Column(f"{purpose}_version", TEXT, f"Version of the words of the event that set the {purpose} state."),
        Column(f"{purpose}_sha256", HASH, f"SHA-256 of the exact words of that {purpose} event."),
        Column(f"{purpose}_at", TIME, f"When the event that set the {purpose} state happened."),
    )


#: The columns before the purposes' and after them, in the order ``all`` gives them.
_BEFORE_CONSENT: tuple[Column, ...] = (
    Column("id", NUMBER, "The lead's number: stable, to match one export with the next."),
    Column("email", TEXT, "Email address as last typed (one lead per address, whatever its case)."),
    *(_profile(name) for name in PROFILE_FIELDS),
    Column("stage", STAGE, f"The lead's stage now: one of {', '.join(STAGES)}."),
    Column("fit", NUMBER, "Fit, 0–100: how well the person matches the customers sought "
           "(as of the lead's last scoring, refreshed daily)."),
    Column("engagement", NUMBER, "Engagement, 0–100: what the person requested, and how recently."),
    Column("score", NUMBER, "Score, 0–100: fit and engagement together, what the list sorts by."),
    Column("score_reasons", REASONS, "The rules behind the score and their points: "
           "`rule +points; rule −points` in CSV, a list of {rule, points} in JSON Lines."),
    *(_source(name, "first") for name in EXPORT_SOURCE_FIELDS),
    *(_source(name, "latest") for name in EXPORT_SOURCE_FIELDS),
    Column("resources", RESOURCES, "Every resource the person requested, ;-joined, sorted."),
    Column("submissions", NUMBER, "How many forms the person sent."),
    Column("downloads", NUMBER, "How many times the person's download links were used."),
    Column("last_download_at", TIME, "When a download link of theirs was last used."),
)
_FIXED_CONSENT = (*_consent("terms", "the terms"), *_consent("marketing", "marketing emails"))
_AFTER_CONSENT: tuple[Column, ...] = (
    Column("marketing_opt_in", FLAG, "yes when marketing consent is current: given (confirmed, "
           "with double opt-in) and not withdrawn — what may be emailed today."),
    Column("marketing_opt_in_at", TIME, "When the marketing consent in force was given (or "
           "confirmed); empty when it is not current."),
    Column("first_seen", TIME, "When the person first sent a form."),
    Column("last_seen", TIME, "When the person last sent a form."),
)


@lru_cache(maxsize=8)
def export_columns(purposes: tuple[Purpose, ...] = ()) -> dict[str, Column]:
    """Every column of an export, with the further purposes of leadgate.yml (``purposes``,
    Settings.purposes) after terms and marketing, in their order."""
    extra = (column for purpose in purposes for column in _consent(purpose.name, purpose.label.lower()))
    return {c.name: c for c in (*_BEFORE_CONSENT, *_FIXED_CONSENT, *extra, *_AFTER_CONSENT)}


#: Every column of a site with no further purposes of consent, in the order ``all`` gives them.
COLUMNS: dict[str, Column] = export_columns()

#: What an export holds when no columns are asked for.
DEFAULT_COLUMNS = (
    "email", "first_name", "last_name", "company", "job_title", "company_size", "industry",
    "stage", "fit", "engagement", "score", "score_reasons", "first_utm_source", "first_utm_medium", "first_utm_campaign", "first_referrer", "first_landing_page",
    "latest_utm_source", "latest_utm_medium", "latest_utm_campaign", "latest_referrer",
    "latest_landing_page", "resources", "terms_state", "terms_version", "terms_at", "marketing_state",
    "marketing_version", "marketing_at", "marketing_opt_in", "marketing_opt_in_at", "first_seen", "last_seen",
)


def default_columns(purposes: tuple[Purpose, ...] = ()) -> tuple[str, ...]:
    """DEFAULT_COLUMNS with each further purpose's state, version and time after marketing's."""
    at = DEFAULT_COLUMNS.index("marketing_at") + 1
    extra = tuple(f"{p.name}_{part}" for p in purposes for part in ("state", "version", "at"))
    return DEFAULT_COLUMNS[:at] + extra + DEFAULT_COLUMNS[at:]


def neutralise(value: str) -> str:
    """``'`` before a cell a spreadsheet would read as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _flag(value: bool) -> str:
    return "yes" if value else "no"


def _resource_ids(joined: str | None) -> list[str]:
    """The store gives a lead's resource ids ;-joined as its posts named them: repeats, any order."""
    return sorted(set(joined.split(";"))) if joined else []


def _resources_cell(joined: str | None) -> str:
    # Most leads asked for one resource: nothing to sort.
    return joined if not joined or ";" not in joined else ";".join(_resource_ids(joined))


# A rescore writes one ``at`` for its whole batch, so leads scored together by the same rules
# often share their reasons' text: each distinct text is read once.
@lru_cache(maxsize=4096)
def _reasons_cell(stored: str) -> str:
    """The readable reasons, neutralised like text: a rule's name holds what people typed."""
    return neutralise(readable_reasons(stored))


@lru_cache(maxsize=4096)
def _reasons_list(stored: str) -> tuple[dict[str, Any], ...]:
    fit, engagement = reasons_from_json(stored)
    return tuple({"rule": r.rule, "points": r.points} for r in fit + engagement)


def _reasons_value(stored: str) -> list[dict[str, Any]]:
    return list(_reasons_list(stored))


#: Kind of column → the text of its CSV cell; kinds not here are written as the store gives
#: them (times come as ISO text, csv writes ints as digits and None as an empty cell).
CSV_CELL: dict[str, Callable[[Any], str]] = {FLAG: _flag, RESOURCES: _resources_cell, REASONS: _reasons_cell}
#: Kind of column → its raw JSON value, where it is not the store's value.
JSON_VALUE: dict[str, Callable[[Any], Any]] = {FLAG: bool, RESOURCES: _resource_ids, REASONS: _reasons_value}
#: Text cells joined, each after a NUL (refused at input), hold a formula start. A literal
#: NUL first lets the regex engine jump from NUL to NUL, where ``(?:^|\x00)`` tries every position.
_FORMULA_IN_ROW = re.compile("\x00[" + re.escape("".join(FORMULA_STARTS)) + "]").search


@dataclass(frozen=True)
class ExportOptions:
    """What an export holds and how it is written; the same names on the CLI and the API."""

    columns: tuple[str, ...] = DEFAULT_COLUMNS
    format: str = "csv"
    excel: bool = False
    #: The further purposes of consent (Settings.purposes) whose columns may be asked for.
    purposes: tuple[Purpose, ...] = ()

    @property
    def available(self) -> dict[str, Column]:
        return export_columns(self.purposes)

    @property
    def content_type(self) -> str:
        return FORMATS[self.format]

    @classmethod
    def from_args(cls, args: Mapping[str, str | None],
                  purposes: tuple[Purpose, ...] = ()) -> tuple[ExportOptions, dict[str, list[str]]]:
        """Read ``columns``, ``format`` and ``excel``; messages per parameter like LeadFilter's.
        ``purposes``: the further purposes of consent of the settings, which add columns."""
        errors: dict[str, list[str]] = {}
        available = export_columns(purposes)
        columns = default_columns(purposes)
        text = (args.get("columns") or "").strip()
        if text == "all":
            columns = tuple(available)
        elif text:
            names = [name.strip() for name in text.split(",") if name.strip()]
            unknown = [name for name in names if name not in available]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if unknown:
                errors["columns"] = [
                    f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(u[:40] for u in unknown[:10])}. "
                    f"Valid columns: {', '.join(available)} (or all)."]
            elif repeated:
                errors["columns"] = [f"Each column once: {', '.join(repeated)} is listed twice."]
            elif not names:
                errors["columns"] = ["Name at least one column."]
            else:
                columns = tuple(names)
        fmt = (args.get("format") or "csv").strip().lower()
        if fmt not in FORMATS:
            errors["format"] = [f"Use csv or jsonl, not '{fmt[:20]}'."]
            fmt = "csv"
        excel_text = (args.get("excel") or "").strip().lower()
        excel = excel_text in TRUE
        if not excel and excel_text not in FALSE:
            errors["excel"] = [f"Use yes or no, not '{excel_text[:20]}'."]
        elif excel and fmt != "csv":
            errors["excel"] = ["The Excel mark (a UTF-8 BOM) is for CSV only."]
        return cls(columns, fmt, excel, purposes), errors

    def filename(self, today: datetime) -> str:
        """``leads-2026-11-30.csv``: dated, so downloads on different days do not overwrite."""
        return f"leads-{today.astimezone(UTC):%Y-%m-%d}.{self.format}"


class _Encoded:
    """csv.writer's target: each line it writes, as UTF-8, kept until taken as one block.

    Encoding line by line keeps the mostly-ASCII lines on Python's fast path; one emoji in
    a block of a thousand lines would otherwise widen the whole block before encoding.
    """

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, text: str) -> None:
        self.lines.append(text.encode())

    def take(self) -> bytes:
        block = b"".join(self.lines)
        self.lines.clear()
        return block


@dataclass
class RowCount:
    """Rows made so far: kept apart from the Rendering, so that whoever reads the count at the
    end (the export log) does not keep the rows' generator, and its connection, alive."""

    rows: int = 0


class Rendering:
    """Rows (of options.columns) as blocks of UTF-8, the CSV header first on its own; counts rows."""

    def __init__(self, rows: Iterable[Sequence[Any]], options: ExportOptions, chunk_size: int = 1000):
        self.source = iter(rows)
        self.options = options
        self.chunk_size = chunk_size
        self.count = RowCount()

    @property
    def rows(self) -> int:
        return self.count.rows

    def __iter__(self) -> Iterator[bytes]:
        kinds = [self.options.available[name].kind for name in self.options.columns]
        if self.options.format == "jsonl":
            return self._jsonl(kinds)
        return self._csv(kinds)

    def _batches(self) -> Iterator[list[Sequence[Any]]]:
        while batch := list(islice(self.source, self.chunk_size)):
            self.count.rows += len(batch)
            yield batch

    def _csv(self, kinds: Sequence[str]) -> Iterator[bytes]:
        target = _Encoded()
        writer = csv.writer(target)
        writer.writerow(self.options.columns)
        yield (BOM if self.options.excel else b"") + target.take()
        cells = _csv_cells(kinds)
        for batch in self._batches():
            writer.writerows(map(cells, batch))
            yield target.take()

    def _jsonl(self, kinds: Sequence[str]) -> Iterator[bytes]:
        columns = self.options.columns
        converters = [(i, JSON_VALUE[kind]) for i, kind in enumerate(kinds) if kind in JSON_VALUE]
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        for batch in self._batches():
            lines = []
            for row in batch:
                values = list(row)
                for i, convert in converters:
                    values[i] = convert(values[i])
                lines.append(dumps(dict(zip(columns, values))).encode() + b"\n")
            yield b"".join(lines)


def _csv_cells(kinds: Sequence[str]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """The function that turns one row into its CSV cells, doing per cell only what must be.

    A million-row export calls it a million times, so the text cells of a row are joined,
    each after a NUL, and searched once for a NUL followed by a formula start: every cell that
    needs a ``'`` is found that way, so only a row with a hit pays for :func:`neutralise` on
    each of its text cells (a NUL inside a value could only cause a needless check).
    """
    texts = [i for i, kind in enumerate(kinds) if kind == TEXT]
    converters = [(i, CSV_CELL[kind]) for i, kind in enumerate(kinds) if kind in CSV_CELL]
    # itemgetter of one index gives the value, not a 1-tuple.
    pick = itemgetter(*texts) if len(texts) > 1 else lambda row: tuple(row[i] for i in texts)

    def cells(row: Sequence[Any]) -> Sequence[Any]:
        risky = texts and _FORMULA_IN_ROW("\x00" + "\x00".join(pick(row)))
        if not (risky or converters):
            return row
        row = list(row)
        if risky:
            for i in texts:
                row[i] = neutralise(row[i])
        for i, convert in converters:
            row[i] = convert(row[i])
        return row

    return cells


def iter_export(store: Store, options: ExportOptions = ExportOptions(), lead_filter: LeadFilter | None = None,
                catalog: Catalog | None = None, order: tuple[str, str] | None = None,
                chunk_size: int = 1000, *, after: ExportKey | None = None,
                through: ExportKey | None = None) -> Rendering:
    """The export as blocks of UTF-8; nothing is queried until the header has been taken.
    ``after`` and ``through`` bound a page of it (capture.leads.queries.export_page_end)."""
    rows = iter_export_rows(store, lead_filter, columns=options.columns, catalog=catalog, order=order,
                            after=after, through=through, chunk_size=chunk_size,
                            purposes=(*PURPOSES, *(p.name for p in options.purposes)))
    return Rendering(rows, options, chunk_size)


def write_export(store: Store, stream: BinaryIO, options: ExportOptions = ExportOptions(),
                 lead_filter: LeadFilter | None = None, catalog: Catalog | None = None) -> int:
    """Write the export to an open binary stream; returns the number of leads written."""
    rendering = iter_export(store, options, lead_filter, catalog)
    for block in rendering:
        stream.write(block)
    return rendering.rows
