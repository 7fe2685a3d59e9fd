"""A write transaction's statements run the same through SQLAlchemy and on the driver's cursor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError, StatementError

from capture.db.models import ConsentTextRow

TEXTS = ConsentTextRow.__table__
AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
WAYS = pytest.mark.parametrize("direct", [True, False], ids=["driver", "sqlalchemy"])


def row(sha: str, text_: str = "words") -> dict:
    return {"sha256": sha, "kind": "terms", "version": "v1", "text": text_, "first_seen": AT}


def texts(store) -> list[tuple]:
    with store.read() as s:
        return list(s.execute(select(TEXTS.c.sha256, TEXTS.c.text, TEXTS.c.first_seen).order_by(TEXTS.c.sha256)))


@WAYS
def test_the_kinds_of_statement_a_write_uses(store, direct):
    """Many rows, one row, RETURNING, values written into the statement, and no values at all."""
    with store.writes(direct=direct) as tx:
        tx.run(insert(TEXTS), [row("a"), row("b"), row("c")])
        tx.run(insert(TEXTS), [])  # nothing to write: nothing happens
        returned = tx.rows(insert(TEXTS).returning(TEXTS.c.sha256, TEXTS.c.first_seen), row("d"))
        tx.run(update(TEXTS).where(TEXTS.c.sha256 == "a").values(text="changed"), {"version": "v2"})
        tx.run(delete(TEXTS).where(TEXTS.c.sha256 == "b"), {})
        counted = tx.rows(select(func.count().label("n")).select_from(TEXTS), {})
    assert returned == [{"sha256": "d", "first_seen": AT}]  # converted back: an aware UTC time
    assert counted == [{"n": 3}]
    assert texts(store) == [("a", "changed", AT), ("c", "words", AT), ("d", "words", AT)]


@WAYS
def test_a_value_the_column_refuses_is_sqlalchemy_s_error_and_nothing_is_kept(store, direct):
    with pytest.raises(StatementError, match="naive datetime"):
        with store.writes(direct=direct) as tx:
            tx.run(insert(TEXTS), row("a"))
            tx.run(insert(TEXTS), {**row("b"), "first_seen": datetime(2026, 5, 1)})
    assert texts(store) == []


@WAYS
def test_a_refusal_of_the_database_names_the_statement_and_rolls_back(store, direct):
    with pytest.raises(IntegrityError) as refused:
        with store.writes(direct=direct) as tx:
            tx.run(insert(TEXTS), row("a"))
            tx.run(insert(TEXTS), row("a"))
    assert "INSERT INTO consent_texts" in str(refused.value)
    assert "words" not in str(refused.value)  # the values (personal data in real writes) stay out
    assert texts(store) == []


def test_the_driver_refuses_what_it_cannot_run_before_touching_the_database(store):
    with pytest.raises(SQLAlchemyError, match="DriverWrites runs Core"):
        with store.writes() as tx:
            tx.run(text("DELETE FROM consent_texts"), {})
    with pytest.raises(SQLAlchemyError, match="expanding IN"):
        with store.writes() as tx:
            tx.run(delete(TEXTS).where(TEXTS.c.sha256.in_(["a", "b"])), {})


def test_statements_are_compiled_once_per_set_of_names(store):
    statement = insert(TEXTS)
    for sha in ("a", "b", "c"):
        with store.writes() as tx:
            tx.run(statement, row(sha))
    with store.writes() as tx:
        tx.run(statement, dict(reversed(list(row("d").items()))))  # the same names, another order
    assert [key for key in store._compiled if key[0] is statement] == [(statement, frozenset(row("a")))]


@WAYS
def test_statements_sent_together_run_in_order_and_each_gives_its_rows(store, direct):
    """The second statement sees what the first wrote in the same transaction, whether they go
    out together (PostgreSQL's pipeline) or one by one."""
    copy = insert(TEXTS).from_select(
        ["sha256", "kind", "version", "text", "first_seen"],
        select(TEXTS.c.sha256 + "-copy", TEXTS.c.kind, TEXTS.c.version, TEXTS.c.text, TEXTS.c.first_seen)
        .where(TEXTS.c.sha256 == bindparam("original"))).returning(TEXTS.c.sha256)
    with store.writes(direct=direct) as tx:
        first, second = tx.rows_together(
            (insert(TEXTS).returning(TEXTS.c.sha256), row("a")), (copy, {"original": "a"}))
    assert (first, second) == ([{"sha256": "a"}], [{"sha256": "a-copy"}])
    assert [sha for sha, _, _ in texts(store)] == ["a", "a-copy"]
