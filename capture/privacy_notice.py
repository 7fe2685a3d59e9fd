"""The privacy notice (``content/privacy.md``): its placeholders filled from leadgate.yml, and
the consent texts that point at a notice the site does not publish.

The site build and ``leadgate check`` both read the notice through here, so the notice and the
settings cannot name different people.
"""

from __future__ import annotations

import html
import re

from capture.catalog import PRIVACY_PAGE, SETTINGS_FILE, Catalog, CatalogError, Settings

#: ``{{ controller.name }}`` in the privacy notice; see fill_privacy_notice.
PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def notice_problems(catalog: Catalog, notice_published: bool) -> list[tuple[str, str, str]]:
    """Consent texts that point visitors at a privacy notice the site does not publish."""
    if notice_published:
        return []
    return [
        (where, field_, f"mentions the {consent.notice_mention[1]!r}, but there is no {PRIVACY_PAGE} "
                        "in the content folder: write the notice (docs/publishing.md) or change the text")
        for where, field_, consent in catalog.consent_texts() if consent.notice_mention
    ]


def _notice_values(settings: Settings) -> dict[str, str | None]:
    """What each placeholder of the privacy notice stands for; None where leadgate.yml has no value."""
    controller = settings.controller
    address = controller.address if controller else None
    return {
        "controller.name": controller.name if controller else None,
        "controller.email": controller.email if controller else None,
        # One line: the notice shows it inside a sentence or a list item.
        "controller.address": ", ".join(filter(None, (ln.strip() for ln in address.splitlines())))
        if address else None,
        "retention_months": str(settings.retention_months),
    }


def fill_privacy_notice(markdown: str, settings: Settings) -> str:
    """The privacy notice's Markdown with ``{{ controller.name }}``-style placeholders replaced
    by the values in leadgate.yml, so the notice and the settings cannot name different people.

    Plain text in, plain text out (no MkDocs needed); values are HTML-escaped because the
    Markdown they land in may hold HTML. Raises CatalogError for an unknown placeholder or a
    placeholder whose setting is not set.
    """
    values = _notice_values(settings)
    problems: dict[tuple[str, str, str], None] = {}

    def fill(m: re.Match) -> str:
        key = m.group(1)
        if key not in values:
            problems[(PRIVACY_PAGE, "body", f"unknown placeholder {m.group()} (allowed: "
                      + ", ".join(f"{{{{ {k} }}}}" for k in values) + ")")] = None
        elif values[key] is None and settings.controller is None:
            problems[(SETTINGS_FILE, "controller", f"is not set, but {PRIVACY_PAGE} shows {{{{ {key} }}}}: "
                      "add a controller section with the name and email of who is responsible")] = None
        elif values[key] is None:
            problems[(SETTINGS_FILE, key, f"is not set, but {PRIVACY_PAGE} shows {{{{ {key} }}}}: "
                      f"set it, or take the placeholder out of {PRIVACY_PAGE}")] = None
        else:
            return html.escape(values[key], quote=False)
        return m.group()

    filled = PLACEHOLDER.sub(fill, markdown)
    if problems:
        raise CatalogError(list(problems))
    return filled
