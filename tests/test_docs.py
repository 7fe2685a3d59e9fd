"""The docs a newcomer reads stay true: the room table names every module, the field table
is the field contract."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from capture.fields import FIELDS, purpose_fields

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def table_after(heading: str) -> list[list[str]]:
    """The rows of the first Markdown table after a heading, as lists of cell texts."""
    section = ARCHITECTURE.split(heading, 1)[1]
    block = []
    for line in section.splitlines():
        if line.startswith("|"):
            block.append(line)
        elif block:
            break
    assert block, f"no table after {heading}"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in block[2:]]


def only_a_docstring(path: Path) -> bool:
    """A package's ``__init__.py`` that only says what the room owns."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)


def test_every_module_has_a_line_in_the_room_table():
    named = {cells[0].strip("`") for cells in table_after("## Rooms")}
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "capture").rglob("*.py")
               if "versions" not in path.parts and not only_a_docstring(path)}
    assert sorted(modules - named) == [], "modules missing from docs/architecture.md's room table"
    assert sorted(named - modules) == [], "docs/architecture.md names modules that do not exist"


def test_every_room_says_what_it_owns():
    for package in (ROOT / "capture").iterdir():
        init = package / "__init__.py"
        if init.is_file():
            assert re.match(r'^"""[A-Z].+', init.read_text(encoding="utf-8")), f"{init} has no docstring"


def test_the_field_table_is_the_field_contract():
    rows = table_after("The form's fields, from")
    documented = [(name.strip("`"), label, kind, limit) for name, label, kind, limit, _rule in rows]
    assert documented == [(f.name, f.label, f.kind, str(f.limit) if f.limit is not None else "—")
                          for f in FIELDS]


def test_the_per_purpose_table_is_the_per_purpose_contract():
    rows = table_after("defined once by `capture.fields.purpose_fields`")
    documented = [(name.strip("`"), label, kind, limit, rule) for name, label, kind, limit, rule in rows]
    assert documented == [(f.name, f.label, f.kind, str(f.limit) if f.limit is not None else "—", f.rule)
                          for f in purpose_fields("<purpose>", "<label>")]


def test_the_form_template_takes_its_limits_from_the_contract():
    template = (ROOT / "capture" / "templates" / "leadgate" / "form.html").read_text(encoding="utf-8")
    assert not re.search(r'maxlength="\d', template), "a maxlength typed into form.html"


def test_the_table_of_moves_in_docs_stages_is_the_move_table():
    from capture.leads.stages import MOVES

    stages_doc = (ROOT / "docs" / "stages.md").read_text(encoding="utf-8")
    table: list[str] = []
    for line in stages_doc.split("## Allowed moves", 1)[1].splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    assert table[:2] == ["| from | may move to |", "|---|---|"]
    documented = {}
    for line in table[2:]:
        origin, targets = (cell.strip() for cell in line.strip("|").split("|"))
        documented[origin.strip("`")] = tuple(t.strip().strip("`") for t in targets.split(",")
                                              if t.strip() != "—")
    assert documented == MOVES
    assert list(documented) == list(MOVES)
