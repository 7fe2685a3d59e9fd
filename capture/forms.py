"""The shape of a download request: which fields, which limits, which messages.

The fields and limits are the contract in docs/architecture.md. The form lives on static
pages, possibly on another origin, where a session-bound CSRF token cannot work (the Origin
allow-list in ``views`` protects it instead).

The checks are plain functions over a table of fields rather than a ``wtforms.Form``: every
visitor's post runs them, and building and validating the 19-field form cost four to seven
times as much as these functions (docs/performance.md). The rules are the ones the WTForms
form had: a text field is trimmed of spaces, then its length and characters are checked, then
its own rule, and it reports its first problem; every field is checked, so all mistakes are
reported at once.

Checkboxes are compared to their exact values (WTForms' BooleanField would count a posted
``"0"`` or ``"off"`` as ticked), and a consent nobody gave must never be recorded as given.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import email_validator
from werkzeug.datastructures import MultiDict

from capture import store
from capture.catalog import Catalog, ConsentText, Resource

TERMS_VALUE = "accepted"
MARKETING_VALUE = "yes"

TERMS_REQUIRED = "You must accept the terms to get the download."
STALE_PAGE = "This page is out of date. Reload it and submit again."
EMAIL_REQUIRED = "Enter your email address."
UNKNOWN_RESOURCE = "This resource is not available any more."

#: Text fields a visitor sees, in the order of the form.
VISIBLE = ("email", *store.PROFILE_FIELDS, "terms", "marketing_opt_in")


#: Every field in the order of the form: its label in messages, and its limit in characters
#: (None for the two checkboxes, which are only compared with their exact value).
FIELDS: dict[str, tuple[str, int | None]] = {
    "email": ("Email", store.EMAIL_MAX),
    "first_name": ("First name", store.NAME_MAX),
    "last_name": ("Last name", store.NAME_MAX),
    "company": ("Company", store.COMPANY_MAX),
    "job_title": ("Job title", store.JOB_TITLE_MAX),
    "company_size": ("Company size", store.CHOICE_MAX),
    "industry": ("Industry", store.CHOICE_MAX),
    "terms": ("Terms", None),
    "marketing_opt_in": ("Marketing emails", None),
    "resource_id": ("Resource", store.RESOURCE_ID_MAX),
    "terms_sha256": ("Terms version", 64),
    "marketing_sha256": ("Marketing consent version", 64),
    "utm_source": ("Campaign source", store.UTM_MAX),
    "utm_medium": ("Campaign medium", store.UTM_MAX),
    "utm_campaign": ("Campaign name", store.UTM_MAX),
    "utm_term": ("Campaign term", store.UTM_MAX),
    "utm_content": ("Campaign content", store.UTM_MAX),
    "referrer": ("Referrer", store.URL_MAX),
    "landing_page": ("Landing page", store.URL_MAX),
}

#: Unicode's control characters (category Cc: C0, DEL and C1) and lone surrogates (Cs), found
#: with one search instead of a unicodedata.category call per character.
UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def strip_spaces(value: str | None) -> str:
    """Trim spaces a phone keyboard or a paste added; other whitespace is left to the checks."""
    return (value or "").strip(" ")


def text_problem(label: str, limit: int, value: str) -> str | None:
    """Why a value cannot be stored as one line of text, or None: too long, control characters
    (NUL, tab, line breaks…), lone surrogates.

    PostgreSQL refuses NUL where SQLite stores it, csv.writer passes it through and a lone
    surrogate cannot even be encoded: refusing them here keeps every store and export alike.
    """
    if len(value) > limit:
        return f"{label} must be at most {limit} characters."
    found = UNSTORABLE.search(value)
    if found is None:
        return None
    if unicodedata.category(found.group()) == "Cc":
        return f"{label} must be one line of text, without tabs or other control characters."
    return f"{label} contains characters that cannot be stored."


def choice_problem(value: str, choices: tuple[str, ...], message: str) -> str | None:
    return message if value and value not in choices else None


#: Each field's own rule, run once its text is fine: (value, catalog) → message or None.
RULES: dict[str, Callable[[str | None, Catalog], str | None]] = {
    "company_size": lambda value, catalog: choice_problem(
        value, catalog.settings.company_sizes, "Choose a company size from the list."),
    "industry": lambda value, catalog: choice_problem(
        value, catalog.settings.industries, "Choose an industry from the list."),
    "terms": lambda value, catalog: None if value == TERMS_VALUE else TERMS_REQUIRED,
    "resource_id": lambda value, catalog: None if catalog.get(value) else UNKNOWN_RESOURCE,
}


def normalized_email(value: str, check_deliverability: bool) -> tuple[str | None, str | None]:
    """The address as email-validator normalizes it, or the message saying what is wrong."""
    if not value:
        return None, EMAIL_REQUIRED
    try:
        return email_validator.validate_email(
            value, check_deliverability=check_deliverability).normalized, None
    except email_validator.EmailNotValidError as e:
        return None, str(e)


@dataclass
class Checked:
    """The outcome of checking one post: what to store, or what to tell the visitor."""

    values: dict[str, str]
    errors: dict[str, list[str]] = field(default_factory=dict)
    form_error: str | None = None
    resource: Resource | None = None
    submission: dict | None = None

    @property
    def ok(self) -> bool:
        return self.submission is not None

    @property
    def status(self) -> int:
        """201 stored, 409 the page showed words we do not know, 422 a field needs fixing."""
        if self.ok:
            return 201
        return 409 if self.form_error == STALE_PAGE else 422


def shown_text(posted: str, current: tuple[ConsentText, ...], kind: str,
               known_text: Callable[[str], ConsentText | None]) -> ConsentText | None:
    """The consent words behind a posted hash: the catalog's now, or ones recorded before."""
    for text_ in current:
        if posted == text_.sha256:
            return text_
    if len(posted) != 64:
        return None
    recorded = known_text(posted)
    return recorded if recorded is not None and recorded.kind == kind else None


def check_submission(formdata: MultiDict, catalog: Catalog, *,
                     known_text: Callable[[str], ConsentText | None] = lambda sha256: None,
                     check_deliverability: bool = False) -> Checked:
    """Validate a post against the catalog; the fields of a NewSubmission when it is valid."""
    # Text is trimmed; a checkbox is kept as posted, and only when it was posted.
    values = {name: strip_spaces(formdata.get(name)) if limit else formdata[name]
              for name, (_, limit) in FIELDS.items() if limit or name in formdata}
    errors: dict[str, list[str]] = {}
    email = None
    for name, (label, limit) in FIELDS.items():
        value = values.get(name)
        problem = text_problem(label, limit, value) if limit else None
        if problem is None and name == "email":
            email, problem = normalized_email(value, check_deliverability)
        elif problem is None and name in RULES:
            problem = RULES[name](value, catalog)
        if problem is not None:
            errors[name] = [problem]
    resource = catalog.get(values["resource_id"])
    checked = Checked(values=values, errors=errors, resource=resource)
    if resource is None:
        return checked
    terms = shown_text(values["terms_sha256"], (resource.terms, catalog.settings.terms), "terms",
                       known_text)
    marketing = shown_text(values["marketing_sha256"], (catalog.settings.marketing,), "marketing",
                           known_text)
    if terms is None or marketing is None:
        checked.form_error = STALE_PAGE
        return checked
    if errors:
        return checked
    checked.submission = {
        "email": email,
        "resource_id": resource.id,
        "terms": terms,
        "marketing": marketing,
        "marketing_opt_in": values.get("marketing_opt_in") == MARKETING_VALUE,
        **{name: values[name] for name in (*store.PROFILE_FIELDS, *store.SOURCE_FIELDS)},
    }
    return checked
