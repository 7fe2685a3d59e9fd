"""URL converters every route shares: ``<int:…>`` takes only ids a database can hold.

Werkzeug's ``int`` converter takes any number of digits, and SQLite's driver cannot even
send a number above 2**63 - 1 (OverflowError, a 500): /api/leads/111633225281388757800452096/stage
did that, found by schemathesis (tests/test_schemathesis.py). Such an id names no row, so
the URL names no page: 404, like any other address nothing answers.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

#: The largest id SQLite stores (a signed 64-bit integer); PostgreSQL's serial ids are smaller.
ROW_ID_MAX = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """``int`` with an upper bound of :data:`ROW_ID_MAX` unless the rule gives its own."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = ROW_ID_MAX, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def init_app(app: Flask) -> None:
    """Before any blueprint: a rule reads its converters when it is added."""
    app.url_map.converters["int"] = RowIdConverter
