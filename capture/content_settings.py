"""The site-wide settings of ``content/leadgate.yml``, read and checked: the form's lists, the
consent texts and further purposes of consent, the controller, retention, disqualification
reasons and currency. The site build and the service read them through capture.catalog, so
they cannot disagree; every problem names the file and the field.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from email_validator import EmailNotValidError, validate_email

from capture.fields import Field, purpose_fields

SETTINGS_FILE = "leadgate.yml"
#: Longest consent text and version, here as in a resource's front matter.
CONSENT_LIMITS = {"consent_text": 2000, "consent_version": 40}
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
        for key, most in (("version", CONSENT_LIMITS["consent_version"]), ("text", CONSENT_LIMITS["consent_text"]),
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

