"""The resources under ``content/``, read once and shared by the site build and the service.

Both sides read resources through this module so the form the build renders and the rules
the service enforces cannot disagree (which types exist, which select options are valid,
which consent text a page showed).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from capture.content_settings import (
    CONSENT_LIMITS,
    SETTINGS_FILE,
    CatalogError,
    ConsentText,
    Settings,
    load_settings,
)

RESOURCES_DIR = "resources"
#: The privacy notice: a page of the content folder like any other, at the site's ``privacy/``.
PRIVACY_PAGE = "privacy.md"

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)

#: Front-matter keys that MkDocs or Material give a meaning to; allowed beside ours.
PAGE_KEYS = frozenset({"hide", "description", "template", "icon", "status", "search", "subtitle"})
REQUIRED = ("id", "title", "type", "summary", "file")
OPTIONAL = ("tags", "cover", "consent_text", "consent_version")
LIMITS = {"id": 64, "title": 200, "summary": 500, "tag": 40, **CONSENT_LIMITS}
MAX_TAGS = 20
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".svg", ".gif"})
@dataclass(frozen=True)
class Resource:
    id: str
    title: str
    type: str
    summary: str
    file: Path
    source: Path
    src_uri: str
    body: str
    terms: ConsentText
    tags: tuple[str, ...] = ()
    cover: str | None = None

    @property
    def download_name(self) -> str:
        return f"{self.id}.pdf"

    @property
    def url(self) -> str:
        """Directory-style URL of the landing page, relative to the site root."""
        return self.src_uri[: -len(".md")] + "/"


@dataclass(frozen=True)
class Catalog:
    content_dir: Path
    settings: Settings
    resources: dict[str, Resource] = field(default_factory=dict)

    def get(self, resource_id: str) -> Resource | None:
        return self.resources.get(resource_id)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources.values())

    def __len__(self) -> int:
        return len(self.resources)

    def choices(self) -> tuple[list[str], list[str]]:
        """The resource types and resource ids a filter may name (LeadFilter.from_args)."""
        return list(self.settings.resource_types), list(self.resources)

    def gated_files(self) -> set[Path]:
        return {r.file for r in self}

    @property
    def has_privacy_notice(self) -> bool:
        """Whether the content publishes the privacy notice (at the site's ``privacy/``)."""
        return (self.content_dir / PRIVACY_PAGE).is_file()

    def consent_texts(self) -> Iterator[tuple[str, str, ConsentText]]:
        """Every consent wording the site shows, with the file and the field it comes from."""
        yield SETTINGS_FILE, "consent.terms", self.settings.terms
        yield SETTINGS_FILE, "consent.marketing", self.settings.marketing
        for purpose in self.settings.purposes:
            yield SETTINGS_FILE, f"consent.{purpose.name}", purpose.text
        for resource in self:
            if resource.terms != self.settings.terms:
                yield resource.src_uri, "consent_text", resource.terms


def split_front_matter(text: str) -> tuple[str | None, str]:
    """Return (yaml text or None, body) the way MkDocs splits a page."""
    m = FRONT_MATTER.match(text)
    if not m:
        return None, text
    return m.group(1) or "", text[m.end() :]


def read_page(path: Path, where: str) -> tuple[dict[str, Any], str]:
    """Parse one Markdown file's front matter strictly: bad YAML is an error, not an empty dict."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CatalogError([(where, "file", "is not UTF-8 text")]) from None
    raw, body = split_front_matter(text)
    if raw is None:
        return {}, body
    try:
        meta = yaml.safe_load(raw) or {}
    except yaml.YAMLError as e:
        raise CatalogError([(where, "front matter", f"is not valid YAML ({e})")]) from None
    if not isinstance(meta, dict):
        raise CatalogError([(where, "front matter", "must be a mapping of field: value")])
    return meta, body


def _text(meta: dict[str, Any], key: str, where: str, problems: list) -> str | None:
    value = meta.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append((where, key, "is missing"))
        return None
    if not isinstance(value, str):
        problems.append((where, key, f"must be text, not {type(value).__name__}"))
        return None
    value = value.strip()
    limit = LIMITS.get(key)
    if limit and len(value) > limit:
        problems.append((where, key, f"is longer than {limit} characters"))
    return value


def _resource(path: Path, content_dir: Path, settings: Settings, problems: list) -> Resource | None:
    where = path.relative_to(content_dir).as_posix()
    meta, body = read_page(path, where)
    before = len(problems)
    for key in sorted(set(meta) - set(REQUIRED) - set(OPTIONAL) - PAGE_KEYS):
        problems.append((where, key, "unknown field (allowed: " + ", ".join(REQUIRED + OPTIONAL) + ")"))
    rid, title, rtype, summary, file_ = (_text(meta, k, where, problems) for k in REQUIRED)
    if rid is not None and not SLUG.match(rid):
        problems.append((where, "id", f"'{rid}' must be lower-case letters, digits and single hyphens"))
    if rtype is not None and rtype not in settings.resource_types:
        problems.append((where, "type", f"unknown type '{rtype}' (allowed: {', '.join(settings.resource_types)})"))

    gated = None
    if file_ is not None:
        gated = (path.parent / file_).resolve()
        if not gated.is_relative_to(content_dir.resolve()):
            problems.append((where, "file", f"'{file_}' is outside the content folder"))
        elif not gated.is_file():
            problems.append((where, "file", f"'{file_}' does not exist"))
        elif gated.suffix.lower() != ".pdf" or not gated.read_bytes()[:5] == b"%PDF-":
            problems.append((where, "file", f"'{file_}' is not a PDF"))

    tags: tuple[str, ...] = ()
    raw_tags = meta.get("tags", [])
    if not isinstance(raw_tags, list) or not all(isinstance(t, str) and t.strip() for t in raw_tags):
        problems.append((where, "tags", "must be a list of text values"))
    elif len(raw_tags) > MAX_TAGS:
        problems.append((where, "tags", f"at most {MAX_TAGS} tags"))
    elif any(len(t) > LIMITS["tag"] for t in raw_tags):
        problems.append((where, "tags", f"each tag must be at most {LIMITS['tag']} characters"))
    else:
        tags = tuple(dict.fromkeys(t.strip() for t in raw_tags))

    cover = meta.get("cover")
    if cover is not None:
        if not isinstance(cover, str) or not cover.strip():
            problems.append((where, "cover", "must be a path to an image"))
            cover = None
        else:
            image = (path.parent / cover).resolve()
            if not image.is_file() or not image.is_relative_to(content_dir.resolve()):
                problems.append((where, "cover", f"'{cover}' does not exist in the content folder"))
            elif image.suffix.lower() not in IMAGE_SUFFIXES:
                problems.append((where, "cover", f"'{cover}' is not an image ({', '.join(sorted(IMAGE_SUFFIXES))})"))
            else:
                cover = image.relative_to(content_dir.resolve()).as_posix()

    terms = settings.terms
    if "consent_text" in meta:
        text = _text(meta, "consent_text", where, problems)
        version = meta.get("consent_version")
        if version is not None:
            version = _text(meta, "consent_version", where, problems)
        if text:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            terms = ConsentText("terms", version or f"{rid}-{digest[:12]}", text)
    elif "consent_version" in meta:
        problems.append((where, "consent_version", "only makes sense with consent_text"))

    if len(problems) > before:
        return None
    return Resource(
        id=rid, title=title, type=rtype, summary=summary, file=gated, source=path,
        src_uri=where, body=body, terms=terms, tags=tags, cover=cover,
    )


def load_catalog(content_dir: Path | str, resources_dir: str = RESOURCES_DIR) -> Catalog:
    """Read every resource page; raise one CatalogError listing every problem found."""
    content_dir = Path(content_dir)
    if not content_dir.is_dir():
        raise CatalogError([(str(content_dir), "folder", "the content folder does not exist")])
    settings = load_settings(content_dir)
    problems: list[tuple[str, str, str]] = []
    resources: dict[str, Resource] = {}
    seen: dict[str, str] = {}
    folder = content_dir / resources_dir
    for path in sorted(folder.rglob("*.md")) if folder.is_dir() else []:
        if path == folder / "index.md":
            continue  # the catalog page's own intro; the site build lists the resources below it
        try:
            res = _resource(path, content_dir, settings, problems)
        except CatalogError as e:
            problems.extend(e.problems)
            continue
        if res is None:
            continue
        if res.id in seen:
            problems.append((res.src_uri, "id", f"duplicate id '{res.id}' (also used by {seen[res.id]})"))
            continue
        seen[res.id] = res.src_uri
        resources[res.id] = res
    if problems:
        raise CatalogError(problems)
    return Catalog(content_dir=content_dir, settings=settings, resources=resources)


#: Where an app keeps its catalog (capture.catalog.get_catalog).
EXTENSION = "leadgate.catalog"


def get_catalog() -> Catalog:
    """The current app's resources, read from CONTENT_DIR on first use (commands such as
    export never need them)."""
    from flask import current_app

    if EXTENSION not in current_app.extensions:
        current_app.extensions[EXTENSION] = load_catalog(current_app.config["CONTENT_DIR"])
    return current_app.extensions[EXTENSION]


def get_settings() -> Settings:
    """The current app's settings: its catalog's once read, else leadgate.yml alone (an export
    needs the purposes of consent, never the resources)."""
    from flask import current_app

    catalog = current_app.extensions.get(EXTENSION)
    return catalog.settings if catalog is not None else load_settings(Path(current_app.config["CONTENT_DIR"]))
