"""The shape of a download request: which fields, which limits, which messages.

The fields and limits are the contract in docs/architecture.md. The form is a plain
``wtforms.Form``: it lives on static pages, possibly on another origin, where a session-bound
CSRF token cannot work (the Origin allow-list in ``views`` protects it instead).

Checkboxes are compared to their exact values: WTForms' BooleanField counts a posted ``"0"``
or ``"off"`` as ticked, and a consent nobody gave must never be recorded as given.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import email_validator
from werkzeug.datastructures import MultiDict
from wtforms import Form, StringField
from wtforms.validators import InputRequired, StopValidation, ValidationError

from capture.catalog import Catalog, ConsentText, Resource
from capture.content_settings import Purpose
from capture.errors import VISITOR
from capture.scoring.domains import DISPOSABLE, domain_of, kind_of_domain
from capture.fields import (
    CHECKBOX,
    FIELDS,
    MARKETING_VALUE,
    PROFILE_FIELDS,
    SOURCE_FIELDS,
    SPAM_FIELDS,
    TERMS_VALUE,
    Field,
    limit,
)

TERMS_REQUIRED = "You must accept the terms to get the download."
#: The page showed consent words the service does not know (answered 409).
STALE_PAGE = VISITOR[409][1]
EMAIL_REQUIRED = "Enter your email address."
UNKNOWN_RESOURCE = "This resource is not available any more."
THROW_AWAY = "{domain} gives out throw-away addresses; use your work address to get the download."


def max_length(limit: int) -> Callable[[Form, StringField], None]:
    def check(form: Form, field: StringField) -> None:
        if field.data and len(field.data) > limit:
            raise StopValidation(f"{field.label.text} must be at most {limit} characters.")
    return check


#: Unicode's control characters (category Cc: C0, DEL and C1) and lone surrogates (Cs), found
#: with one search rather than a unicodedata.category call per character of every field.
UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def single_line(form: Form, field: StringField) -> None:
    """Refuse control characters (NUL, tab, line breaks…) and lone surrogates.

    PostgreSQL refuses NUL where SQLite stores it, csv.writer passes it through and a lone
    surrogate cannot even be encoded: refusing them here keeps every store and export alike.
    """
    found = UNSTORABLE.search(field.data or "")
    if found is None:
        return
    if unicodedata.category(found.group()) == "Cc":
        raise StopValidation(
            f"{field.label.text} must be one line of text, without tabs or other control characters.")
    raise StopValidation(f"{field.label.text} contains characters that cannot be stored.")


def strip_spaces(value: str | None) -> str:
    """Trim spaces a phone keyboard or a paste added; other whitespace is left to the checks."""
    return (value or "").strip(" ")


def text(label: str, limit: int, *validators: Callable) -> StringField:
    return StringField(label, validators=[*validators, max_length(limit), single_line],
                       filters=[strip_spaces])


def contract_field(spec: Field) -> StringField:
    """The WTForms field of one field of the contract (capture.fields)."""
    if spec.kind == CHECKBOX:
        return StringField(spec.label)  # compared to its one value, in LeadForm
    required = [InputRequired(EMAIL_REQUIRED)] if spec.required else []
    return text(spec.label, limit(spec.name), *required)


class LeadForm(Form):
    """One download request, validated against a catalog; its fields are the contract's,
    added below the class."""

    def __init__(self, formdata: MultiDict, catalog: Catalog, check_deliverability: bool = False,
                 refuse_disposable: bool = True):
        super().__init__(formdata)
        self.catalog = catalog
        self.check_deliverability = check_deliverability
        #: DISPOSABLE_EMAILS=refuse; with suspect the post is judged by capture.spam instead.
        self.refuse_disposable = refuse_disposable
        self.normalized_email: str | None = None

    def load(self, formdata: MultiDict) -> None:
        """Take in the next post: every field processed anew, nothing kept from the last one."""
        self.normalized_email = None
        self.process(formdata)

    def validate_email(self, field: StringField) -> None:
        if not field.data:
            raise ValidationError(EMAIL_REQUIRED)
        try:
            result = email_validator.validate_email(
                field.data, check_deliverability=self.check_deliverability)
        except email_validator.EmailNotValidError as e:
            raise ValidationError(str(e)) from None
        if self.refuse_disposable and kind_of_domain(result.ascii_domain) == DISPOSABLE:
            raise ValidationError(THROW_AWAY.format(domain=domain_of(result.normalized)))
        self.normalized_email = result.normalized

    def validate_company_size(self, field: StringField) -> None:
        if field.data and field.data not in self.catalog.settings.company_sizes:
            raise ValidationError("Choose a company size from the list.")

    def validate_industry(self, field: StringField) -> None:
        if field.data and field.data not in self.catalog.settings.industries:
            raise ValidationError("Choose an industry from the list.")

    def validate_terms(self, field: StringField) -> None:
        if field.data != TERMS_VALUE:
            raise ValidationError(TERMS_REQUIRED)

    def validate_resource_id(self, field: StringField) -> None:
        if self.catalog.get(field.data or "") is None:
            raise ValidationError(UNKNOWN_RESOURCE)

    @property
    def resource(self) -> Resource | None:
        return self.catalog.get(self.resource_id.data or "")

    @property
    def marketing_ticked(self) -> bool:
        return self.marketing_opt_in.data == MARKETING_VALUE


# WTForms' FormMeta takes fields set on the class like declared ones. The spam fields are read
# by capture.spam alone: a filled honeypot or a bad token never earns a message a bot could read.
for _spec in FIELDS:
    if _spec.name not in SPAM_FIELDS:
        setattr(LeadForm, _spec.name, contract_field(_spec))


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


#: A further purpose's box posted beside words the service cannot tell (answered 409).
STALE = "stale"


def _purpose_choice(formdata: MultiDict, purpose: Purpose,
                    known_text: Callable[[str], ConsentText | None]) -> tuple[ConsentText, bool] | str | None:
    """(the words shown, ticked) for a further purpose; None when the page did not show its box
    (built before the purpose was added: nothing was asked, so nothing is recorded), STALE
    when it names words the service does not know."""
    box, digest = purpose.fields
    posted = formdata.get(digest.name) or ""
    ticked = formdata.get(box.name) == box.value
    if not posted:
        return STALE if ticked else None
    shown = shown_text(posted, (purpose.text,), purpose.name, known_text)
    return STALE if shown is None else (shown, ticked)


_bound = threading.local()


def bound_form(catalog: Catalog, check_deliverability: bool, refuse_disposable: bool = True) -> LeadForm:
    """This thread's LeadForm, its fields bound once and reloaded for each post.

    Binding the fields (a Field object each, its label, its validators checked) costs WTForms
    more than processing and validating them (docs/performance.md). ``Form.process`` resets
    every field's data and errors.
    """
    form = getattr(_bound, "form", None)
    if (form is None or form.catalog is not catalog or form.check_deliverability != check_deliverability
            or form.refuse_disposable != refuse_disposable):
        form = _bound.form = LeadForm(None, catalog, check_deliverability, refuse_disposable)
    return form


def check_submission(formdata: MultiDict, catalog: Catalog, *,
                     known_text: Callable[[str], ConsentText | None] = lambda sha256: None,
                     check_deliverability: bool = False, refuse_disposable: bool = True) -> Checked:
    """Validate a post against the catalog; the fields of a NewSubmission when it is valid."""
    form = bound_form(catalog, check_deliverability, refuse_disposable)
    form.load(formdata)
    valid = form.validate()
    checked = Checked(
        values={f.name: f.data for f in form if isinstance(f.data, str)},
        errors={name: list(errs) for name, errs in form.errors.items()},
        resource=form.resource,
    )
    resource = form.resource
    if resource is None:
        return checked
    terms = shown_text(form.terms_sha256.data, (resource.terms, catalog.settings.terms), "terms",
                       known_text)
    marketing = shown_text(form.marketing_sha256.data, (catalog.settings.marketing,), "marketing",
                           known_text)
    purposes = [_purpose_choice(formdata, purpose, known_text) for purpose in catalog.settings.purposes]
    checked.values.update({purpose.fields[0].name: formdata.get(purpose.fields[0].name) or ""
                           for purpose in catalog.settings.purposes})
    if terms is None or marketing is None or STALE in purposes:
        checked.form_error = STALE_PAGE
        return checked
    if not valid:
        return checked
    checked.submission = {
        "email": form.normalized_email,
        "resource_id": resource.id,
        "terms": terms,
        "marketing": marketing,
        "marketing_opt_in": form.marketing_ticked,
        "purposes": tuple(choice for choice in purposes if choice is not None),
        **{name: form[name].data for name in (*PROFILE_FIELDS, *SOURCE_FIELDS)},
    }
    return checked
