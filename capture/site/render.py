"""The HTML the plugin adds to pages, rendered from Jinja templates with autoescaping.

Everything here works on catalog records and plain URLs, not on MkDocs objects, so the
pages can be checked without running a build. Marketer-written text is always passed to a
template as text, never as markup, so it is escaped wherever it lands.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup

from capture.catalog import Resource, Settings
from capture.fields import BY_NAME

#: ``capture/templates``: the form fragment shared with the capture service.
SHARED_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
#: ``capture/site/templates``: the fragments only the site build uses.
SITE_TEMPLATES = Path(__file__).resolve().parent / "templates"
FORM_TEMPLATE = "leadgate/form.html"


@dataclass(frozen=True)
class Tag:
    """A tag as a page shows it: its text, its page's URL relative to that page, and its use."""

    label: str
    slug: str
    url: str
    count: int = 0


@dataclass(frozen=True)
class Item:
    """One resource as the catalog and tag pages list it."""

    resource: Resource
    url: str
    cover_url: str | None
    tags: tuple[Tag, ...]


def environment() -> jinja2.Environment:
    """The one Jinja environment for the plugin's fragments; strict so a typo fails the build."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(SITE_TEMPLATES), str(SHARED_TEMPLATES)]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def tag_slug(tag: str) -> str:
    """URL-safe name of a tag's page; tags that differ only in case or accents share one page."""
    plain = unicodedata.normalize("NFKD", tag).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")
    if not slug:
        slug = "tag-" + hashlib.sha256(tag.encode("utf-8")).hexdigest()[:8]
    # ``tags/index`` is the page listing every tag.
    return "index-tag" if slug == "index" else slug


def type_label(resource_type: str, plural: bool = False) -> str:
    """``tip-sheet`` -> ``Tip sheet`` (or ``Tip sheets``) for headings and buttons."""
    label = resource_type.replace("-", " ").replace("_", " ").strip()
    label = label[:1].upper() + label[1:]
    if plural and not label.endswith("s"):
        if label.endswith("y") and label[-2:-1] not in "aeiou":
            label = label[:-1] + "ies"
        else:
            label += "s"
    return label


def render_form(env: jinja2.Environment, resource: Resource, settings: Settings, action: str,
                privacy_url: str | None) -> Markup:
    """The empty download form, exactly as the service renders it with no values or errors;
    ``privacy_url`` (relative to the landing page, None without a notice) links the consent texts."""
    html = env.get_template(FORM_TEMPLATE).render(
        resource=resource, settings=settings, fields=BY_NAME, action=action, values={}, errors={},
        form_error=None, privacy_url=privacy_url,
    )
    return Markup(html)


def render_landing(env: jinja2.Environment, resource: Resource, body: str, form: Markup,
                   cover_url: str | None, tags: tuple[Tag, ...]) -> str:
    """A resource page: what it is, the marketer's copy (already HTML) and the form."""
    return env.get_template("pages/landing.html").render(
        resource=resource, type_label=type_label(resource.type), body=Markup(body), form=form,
        cover_url=cover_url, tags=tags,
    )


def group_by_type(items: list[Item], settings: Settings) -> list[tuple[str, str, list[Item]]]:
    """(type, heading, items) in the order ``leadgate.yml`` lists the types; empty types left out."""
    groups = []
    for rtype in settings.resource_types:
        members = sorted((i for i in items if i.resource.type == rtype), key=lambda i: i.resource.title.casefold())
        if members:
            groups.append((rtype, type_label(rtype, plural=True), members))
    return groups


def render_catalog(env: jinja2.Environment, intro: str, items: list[Item], settings: Settings,
                   tags: list[Tag]) -> str:
    """The catalog page: the intro (already HTML), a tag filter, then resources by type."""
    return env.get_template("pages/catalog.html").render(
        intro=Markup(intro), groups=group_by_type(items, settings), tags=tags,
    )


def render_tag(env: jinja2.Environment, tag: str, items: list[Item], settings: Settings,
               catalog_url: str, tags_url: str) -> str:
    """One tag's page, so filtering by tag works without JavaScript."""
    return env.get_template("pages/tag.html").render(
        tag=tag, groups=group_by_type(items, settings), catalog_url=catalog_url, tags_url=tags_url,
    )


def render_tag_index(env: jinja2.Environment, tags: list[Tag], catalog_url: str) -> str:
    """The page listing every tag with how many resources carry it."""
    return env.get_template("pages/tags.html").render(tags=tags, catalog_url=catalog_url)


def render_thanks(env: jinja2.Environment, catalog_url: str) -> str:
    """The thank-you region; the service swaps it for the visitor's download link."""
    return env.get_template("pages/thanks.html").render(catalog_url=catalog_url)
