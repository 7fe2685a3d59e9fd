"""Everything the site and the service read from ``content/``, checked at once: what
``leadgate check`` prints and ``leadgate serve`` refuses to start with.

It sits above the catalog and the scoring rules (both of which it reads), so neither has to
import the other to report the other's problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from capture.catalog import (
    PRIVACY_PAGE,
    Catalog,
    CatalogError,
    load_catalog,
    load_settings,
)
from capture.consent.texts import conflicts, load_register, stored_conflicts
from capture.db.store import Store
from capture.privacy_notice import fill_privacy_notice, notice_problems
from capture.scoring.apply import Scoring, load_scoring
from capture.scoring.rules import RulesError, load_rules


@dataclass
class Checked:
    """What `leadgate check` found in a content folder: every problem, one line each."""

    catalog: Catalog | None = None
    scoring: Scoring | None = None
    problems: list[str] = field(default_factory=list)


def _lines(problems: list[tuple[str, str, str]]) -> list[str]:
    return [f"{path}: {fld}: {message}" for path, fld, message in problems]


def check_content(content_dir: Path, store: Store | None = None) -> Checked:
    """Read everything the site and the service read from ``content_dir`` — the resources,
    leadgate.yml, the privacy notice, the published consent texts and scoring.yml — and keep
    every problem, not the first (`leadgate check`, `leadgate serve`). With ``store``, consent
    texts are also checked against the words the database stored under their versions.

    Settings come first because the rest is checked against them; when they cannot be read,
    the rules are still read (without the checks that need the settings), so one run shows
    the problems of both files.
    """
    checked = Checked()
    settings = None
    try:
        settings = load_settings(content_dir)
        checked.catalog = load_catalog(content_dir)
    except CatalogError as e:
        checked.problems += _lines(e.problems)
    catalog = checked.catalog
    if catalog is not None:
        published, problems = load_register(content_dir)
        checked.problems += _lines(problems + conflicts(catalog.consent_texts(), published))
        stored = stored_conflicts(store, catalog.consent_texts()) if store is not None else None
        checked.problems += _lines(stored or [])
        checked.problems += _lines(notice_problems(catalog, catalog.has_privacy_notice))
        if catalog.has_privacy_notice:
            try:
                fill_privacy_notice((content_dir / PRIVACY_PAGE).read_text(encoding="utf-8"), catalog.settings)
            except UnicodeDecodeError:
                checked.problems.append(f"{PRIVACY_PAGE}: file: is not UTF-8 text")
            except CatalogError as e:
                checked.problems += _lines(e.problems)
    try:
        if catalog is not None:
            checked.scoring = load_scoring(catalog)
        else:
            lists = {"resource_types": settings.resource_types, "industries": settings.industries,
                     "company_sizes": settings.company_sizes} if settings else {}
            load_rules(content_dir, **lists)
    except RulesError as e:
        checked.problems += e.problems
    return checked
