"""The resources under ``content/``, read once and shared by the site build and the service.

Both sides read resources through this module so the form the build renders and the rules
the service enforces cannot disagree (which types exist, which select options are valid,
which consent text a page showed).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import yaml
from email_validator import EmailNotValidError, validate_email

from capture.fields import Field, purpose_fields

SETTINGS_FILE = "leadgate.yml"
RESOURCES_DIR = "resources"
#: The privacy notice: a page of the content folder like any other, at the site's ``privacy/``.
PRIVACY_PAGE = "privacy.md"

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)

#: Front-matter keys that MkDocs or Material give a meaning to; allowed beside ours.
PAGE_KEYS = frozenset({"hide", "description", "template", "icon", "status", "search", "subtitle"})
REQUIRED = ("id", "title", "type", "summary", "file")
OPTIONAL = ("tags", "cover", "consent_text", "consent_version")
LIMITS = {"id": 64, "title": 200, "summary": 500, "tag": 40, "consent_text": 2000, "consent_version": 40}
MAX_TAGS = 20
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".svg", ".gif"})
#: ``controller`` fields in leadgate.yml and their limits; ``address`` is optional.
CONTROLLER_LIMITS = {"name": 200, "email": 254, "address": 500}
MAX_RETENTION_MONTHS = 120
#: Longest disqualification reason (stage_changes.reason holds more: a reason typed by hand).
REASON_LIMIT = 100
MAX_REASONS = 50
#: A further purpose of consent in leadgate.yml (beside terms and marketing): lower-case letters
#: and digits, so its form fields (``consent_<name>``, ``<name>_sha256``) and export columns
#: (``<name>_state``…) can never be read as another's.
PURPOSE_NAME = re.compile(r"^[a-z][a-z0-9]{0,19}$")
#: The purposes every site has; further ones are optional boxes (capture.fields.purpose_fields).
FIXED_PURPOSES = ("terms", "marketing")
PURPOSE_LABEL_MAX = 100
#: The words of a consent text that point at the privacy notice; the form links them to it.
NOTICE_WORDS = re.compile(r"\bprivacy (?:notice|policy)\b", re.IGNORECASE)

DEFAULT_SETTINGS: dict[str, Any] = {
    "resource_types": ["ebook", "whitepaper", "tip-sheet", "report"],
    "company_sizes": ["1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+"],
    "industries": [
        "Software",
        "Financial services",
        "Healthcare",
        "Manufacturing",
        "Retail and e-commerce",
        "Education",
        "Public sector",
        "Other",
    ],
    "consent": {
        "terms": {
            "version": "terms-2026-11",
            "text": "I agree that my details are stored to send me this resource, "
            "as described in the privacy notice.",
        },
        "marketing": {
            "version": "marketing-2026-11",
            "text": "Send me occasional emails about new resources and events. "
            "I can unsubscribe at any time.",
        },
    },
    "controller": None,
    "retention_months": 24,
    "disqualification_reasons": ["not a buyer", "competitor", "student", "no budget", "no response",
                                 "duplicate"],
    "currency": "EUR",
}


class CatalogError(Exception):
    """Content that cannot be published; each problem names the file and the field."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{path}: {fld}: {msg}" for path, fld, msg in problems))


@dataclass(frozen=True)
class ConsentText:
    """One wording of a consent box; the SHA-256 proves later which words were shown."""

    kind: str
    version: str
    text: str

    @cached_property  # read several times by every form post
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @cached_property
    def notice_mention(self) -> tuple[str, str, str] | None:
        """(before, the words naming the privacy notice, after), so the form can link those
        words without changing the text the visitor agrees to; None when it names no notice."""
        m = NOTICE_WORDS.search(self.text)
        return (self.text[: m.start()], m.group(), self.text[m.end() :]) if m else None


@dataclass(frozen=True)
class Purpose:
    """A further purpose of consent from leadgate.yml: an optional box, never ticked in advance
    and never a condition of the download (GDPR Art. 7(4))."""

    name: str
    #: How the form contract, the export and the proof name it ("Partner offers").
    label: str
    text: ConsentText

    @cached_property
    def fields(self) -> tuple[Field, Field]:
        """Its box (``consent_<name>``) and the hidden hash of its words (``<name>_sha256``)."""
        return purpose_fields(self.name, self.label)


@dataclass(frozen=True)
class Controller:
    """Who is responsible for the leads' details (GDPR Art. 4(7)), as the privacy notice names them."""

    name: str
    email: str
    address: str | None = None


@dataclass(frozen=True)
class Settings:
    resource_types: tuple[str, ...]
    company_sizes: tuple[str, ...]
    industries: tuple[str, ...]
    terms: ConsentText
    marketing: ConsentText
    controller: Controller | None = None
    #: How long the privacy notice says details are kept. Nothing deletes them yet.
    retention_months: int = DEFAULT_SETTINGS["retention_months"]
    #: The reasons a lead may be disqualified for (capture.leads.stages.check_move).
    disqualification_reasons: tuple[str, ...] = tuple(DEFAULT_SETTINGS["disqualification_reasons"])
    #: ISO 4217 code of deal values and spend when none is given.
    currency: str = DEFAULT_SETTINGS["currency"]
    #: The further purposes of consent, in the order of leadgate.yml.
    purposes: tuple[Purpose, ...] = ()

    @property
    def purpose_labels(self) -> dict[str, str]:
        """The further purposes' labels by name, in order (how the proof names them)."""
        return {p.name: p.label for p in self.purposes}


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


def load_settings(content_dir: Path) -> Settings:
    """Site-wide lists and consent texts from ``content/leadgate.yml`` (defaults when absent)."""
    path = Path(content_dir) / SETTINGS_FILE
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise CatalogError([(SETTINGS_FILE, "file", f"is not valid YAML ({e})")]) from None
        if not isinstance(data, dict):
            raise CatalogError([(SETTINGS_FILE, "file", "must be a mapping")])
    unknown = set(data) - set(DEFAULT_SETTINGS)
    if unknown:
        raise CatalogError([(SETTINGS_FILE, k, "unknown setting") for k in sorted(unknown)])
    merged = {**DEFAULT_SETTINGS, **data}
    problems: list[tuple[str, str, str]] = []
    lists = {}
    for key in ("resource_types", "company_sizes", "industries"):
        value = merged[key]
        if not (isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value)):
            problems.append((SETTINGS_FILE, key, "must be a non-empty list of text values"))
            continue
        if any(len(v) > 100 for v in value):
            problems.append((SETTINGS_FILE, key, "values must be at most 100 characters"))
        lists[key] = tuple(value)
    if not isinstance(merged["consent"] or {}, dict):
        raise CatalogError([(SETTINGS_FILE, "consent", "must be a mapping of purpose: version and text")])
    consent = {**DEFAULT_SETTINGS["consent"], **(merged["consent"] or {})}
    texts = {}
    for kind in FIXED_PURPOSES:
        entry = consent.get(kind)
        if not (isinstance(entry, dict) and isinstance(entry.get("text"), str) and entry["text"].strip()
                and isinstance(entry.get("version"), str) and entry["version"].strip()):
            problems.append((SETTINGS_FILE, f"consent.{kind}", "needs a text and a version"))
            continue
        texts[kind] = ConsentText(kind, entry["version"].strip(), entry["text"].strip())
    purposes = _purposes(consent, problems)
    controller = _controller(merged["controller"], problems)
    months = merged["retention_months"]
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= MAX_RETENTION_MONTHS:
        problems.append((SETTINGS_FILE, "retention_months",
                         f"must be a whole number of months from 1 to {MAX_RETENTION_MONTHS}"))
    reasons = _reasons(merged["disqualification_reasons"], problems)
    currency = _currency(merged["currency"], problems)
    if problems:
        raise CatalogError(problems)
    return Settings(
        resource_types=lists["resource_types"],
        company_sizes=lists["company_sizes"],
        industries=lists["industries"],
        terms=texts["terms"],
        marketing=texts["marketing"],
        controller=controller,
        retention_months=months,
        disqualification_reasons=reasons,
        currency=currency,
        purposes=purposes,
    )


def _purposes(consent: dict[str, Any], problems: list) -> tuple[Purpose, ...]:
    """The ``consent`` entries beside terms and marketing: each a name, a version, the words
    and a label."""
    purposes = []
    for name, entry in consent.items():
        if name in FIXED_PURPOSES:
            continue
        where = f"consent.{name}"
        if not (isinstance(name, str) and PURPOSE_NAME.match(name)):
            problems.append((SETTINGS_FILE, where, f"'{str(name)[:40]}' is not a purpose name: up to 20 "
                             "lower-case letters and digits, starting with a letter (such as partners)"))
            continue
        if not isinstance(entry, dict):
            problems.append((SETTINGS_FILE, where, "needs a version, a text and a label"))
            continue
        for key in sorted(set(entry) - {"version", "text", "label"}, key=str):
            problems.append((SETTINGS_FILE, f"{where}.{key}", "unknown field (allowed: version, text, label)"))
        values = {}
        for key, most in (("version", LIMITS["consent_version"]), ("text", LIMITS["consent_text"]),
                          ("label", PURPOSE_LABEL_MAX)):
            value = entry.get(key)
            if not (isinstance(value, str) and value.strip()):
                problems.append((SETTINGS_FILE, f"{where}.{key}", "is missing"))
            elif len(value.strip()) > most:
                problems.append((SETTINGS_FILE, f"{where}.{key}", f"is longer than {most} characters"))
            else:
                values[key] = value.strip()
        if len(values) == 3:
            purposes.append(Purpose(name, values["label"], ConsentText(name, values["version"], values["text"])))
    return tuple(purposes)


def _reasons(value: Any, problems: list) -> tuple[str, ...]:
    """``disqualification_reasons``: the words a rep picks from, each at most REASON_LIMIT long."""
    key = "disqualification_reasons"
    if not (isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value)):
        problems.append((SETTINGS_FILE, key, "must be a non-empty list of text values"))
        return ()
    reasons = tuple(dict.fromkeys(v.strip() for v in value))
    if len(reasons) > MAX_REASONS:
        problems.append((SETTINGS_FILE, key, f"at most {MAX_REASONS} reasons"))
    for reason in reasons:
        if len(reason) > REASON_LIMIT:
            problems.append((SETTINGS_FILE, key, f"'{reason[:40]}…' is longer than {REASON_LIMIT} characters"))
    return reasons


def _currency(value: Any, problems: list) -> str:
    """``currency``: a code of ISO 4217 (the list of Babel, which MkDocs Material installs)."""
    from babel.numbers import list_currencies

    code = value.strip().upper() if isinstance(value, str) else ""
    if code not in list_currencies():
        shown = f"'{str(value)[:20]}'" if value is not None else "nothing"
        problems.append((SETTINGS_FILE, "currency",
                         f"{shown} is not an ISO 4217 currency code such as EUR, USD or GBP"))
        return ""
    return code


def _controller(value: Any, problems: list) -> Controller | None:
    """The ``controller`` section: a name and an email address, a postal address if given."""
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append((SETTINGS_FILE, "controller", "must be a mapping with name, email and (optional) address"))
        return None
    before = len(problems)
    for key in sorted(set(value) - set(CONTROLLER_LIMITS), key=str):
        problems.append((SETTINGS_FILE, f"controller.{key}",
                         "unknown field (allowed: " + ", ".join(CONTROLLER_LIMITS) + ")"))
    fields: dict[str, str] = {}
    for key, limit in CONTROLLER_LIMITS.items():
        field_ = f"controller.{key}"
        text = value.get(key)
        if text is None or (isinstance(text, str) and not text.strip()):
            if key != "address":
                problems.append((SETTINGS_FILE, field_, "is missing"))
        elif not isinstance(text, str):
            problems.append((SETTINGS_FILE, field_, f"must be text, not {type(text).__name__}"))
        elif len(text.strip()) > limit:
            problems.append((SETTINGS_FILE, field_, f"is longer than {limit} characters"))
        else:
            fields[key] = text.strip()
    if "email" in fields:
        try:
            fields["email"] = validate_email(fields["email"], check_deliverability=False).normalized
        except EmailNotValidError as e:
            problems.append((SETTINGS_FILE, "controller.email", f"'{fields['email']}' is not an email address ({e})"))
    if len(problems) > before:
        return None
    return Controller(**fields)


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
