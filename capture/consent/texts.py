"""Consent texts are versioned content: a version's words never change once published.

The site build keeps every published (purpose, version) with its words, SHA-256 and the day
it was first published in ``content/consent-texts.yml`` (:data:`REGISTER_FILE`), and never
removes one: the words behind a version stay provable after leadgate.yml or a resource's
front matter moved on. A text whose version is in the register (or in the database's
``consent_texts``) with other words is a problem that stops the build and ``leadgate check``,
naming the file, the field and the version: changed words need a new version, or a person's
recorded "version 3" would stand for words they never saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from capture.catalog import ConsentText
from capture.db.models import ConsentTextRow
from capture.db.store import Store

REGISTER_FILE = "consent-texts.yml"
HEADER = """\
# Every consent text this site has published, kept for good: written by the site build
# (`leadgate build`), one entry per purpose and version, with the exact words and their
# SHA-256. Commit it with the content. Do not edit or remove entries: to change a consent
# text, give it a new version in leadgate.yml (or the resource's consent_version), and the
# next build adds it here. See docs/consent.md.
"""

#: A problem as the catalog reports them: (file, field, message).
Problem = tuple[str, str, str]


@dataclass(frozen=True)
class Published:
    """One published version of a consent text."""

    purpose: str
    version: str
    sha256: str
    words: str
    first_published: str

    def as_yaml(self) -> dict[str, str]:
        return {"purpose": self.purpose, "version": self.version, "sha256": self.sha256,
                "first_published": self.first_published, "words": self.words}


def load_register(content_dir: Path | str) -> tuple[list[Published], list[Problem]]:
    """The published texts (none when the file does not exist yet), and problems reading it."""
    path = Path(content_dir) / REGISTER_FILE
    if not path.exists():
        return [], []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        return [], [(REGISTER_FILE, "file", f"is not valid YAML ({e})")]
    entries = data.get("texts") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [(REGISTER_FILE, "texts", "must be a list of published texts")]
    published, problems = [], []
    for n, entry in enumerate(entries, 1):
        fields = ("purpose", "version", "sha256", "first_published", "words")
        if not (isinstance(entry, dict) and all(isinstance(entry.get(f), str) for f in fields)):
            problems.append((REGISTER_FILE, f"texts[{n}]", f"needs {', '.join(fields)} as text"))
            continue
        text = Published(*(entry[f] for f in ("purpose", "version", "sha256", "words", "first_published")))
        if hashlib.sha256(text.words.encode("utf-8")).hexdigest() != text.sha256:
            problems.append((REGISTER_FILE, f"texts[{n}]", f"the words of {text.purpose} version "
                             f"{text.version} do not match their sha256: the file was edited by hand"))
        published.append(text)
    return published, problems


def _changed(where: str, field: str, text: ConsentText, since: str) -> Problem:
    return (where, field, f"the words of {text.kind} version {text.version} differ from the words "
                          f"{since}: a published text keeps its words; give the new words a new version")


def conflicts(shown: Iterable[tuple[str, str, ConsentText]], published: list[Published]) -> list[Problem]:
    """Texts the site shows (file, field, text) whose version stands for other words: in the
    register, or in another file of the content."""
    known = {(p.purpose, p.version): p for p in published}
    seen: dict[tuple[str, str], tuple[str, ConsentText]] = {}
    problems = []
    for where, field, text in shown:
        key = (text.kind, text.version)
        old = known.get(key)
        if old is not None and old.sha256 != text.sha256:
            problems.append(_changed(where, field, text, f"first published on {old.first_published} "
                                                          f"(kept in {REGISTER_FILE})"))
        elif key in seen and seen[key][1].sha256 != text.sha256:
            problems.append(_changed(where, field, text, f"shown under the same version in {seen[key][0]}"))
        seen.setdefault(key, (where, text))
    return problems


def register(content_dir: Path | str, shown: Iterable[tuple[str, str, ConsentText]], today: date) -> list[Problem]:
    """Check the texts the site shows against the register, and add the new versions to it.
    Returns the problems; the file is written only when there are none and something is new
    (so that `mkdocs serve`, which watches the folder, does not rebuild for nothing)."""
    shown = list(shown)
    published, problems = load_register(content_dir)
    problems += conflicts(shown, published)
    if problems:
        return problems
    known = {(p.purpose, p.version) for p in published}
    new = []
    for _where, _field, text in shown:
        if (text.kind, text.version) not in known:
            known.add((text.kind, text.version))
            new.append(Published(text.kind, text.version, text.sha256, text.text, today.isoformat()))
    if new:
        write_register(content_dir, published + new)
    return []


def write_register(content_dir: Path | str, published: list[Published]) -> None:
    body: dict[str, Any] = {"texts": [p.as_yaml() for p in published]}
    text = HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
    path = Path(content_dir) / REGISTER_FILE
    temporary = path.with_suffix(".yml.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def stored_conflicts(store: Store, shown: Iterable[tuple[str, str, ConsentText]]) -> list[Problem] | None:
    """Texts the site shows whose version the database holds with other words (a post stored
    them); None when the database cannot be read (not created yet, unreachable)."""
    shown = list(shown)
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return None  # reading would create it
    try:
        with store.read() as s:
            rows = s.execute(select(ConsentTextRow.kind, ConsentTextRow.version, ConsentTextRow.sha256,
                                    ConsentTextRow.first_seen)).all()
    except SQLAlchemyError:
        return None
    stored: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        stored.setdefault((row.kind, row.version), []).append(row)
    problems = []
    for where, field, text in shown:
        other = [r for r in stored.get((text.kind, text.version), []) if r.sha256 != text.sha256]
        if other:
            first = min(r.first_seen for r in other)
            problems.append(_changed(where, field, text, f"the database stored for it on {first:%Y-%m-%d}"))
    return problems
