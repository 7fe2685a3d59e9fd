"""The download form's fields, defined once.

Each field's name, label, limit and kind live here and nowhere else: the WTForms form
(capture.web.forms), the table columns (capture.db.models), the form template's ``maxlength``
(``capture/templates/leadgate/form.html``, given these as ``fields``), the export's column
descriptions (capture.leads.export) and the table in docs/architecture.md (checked by a test)
all read them. Limits are in characters.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Kinds of field, as the template renders them and the docs describe them.
EMAIL, TEXT, CHOICE, CHECKBOX, HIDDEN = "email", "text", "choice", "checkbox", "hidden"
#: A field people never see nor reach (capture.spam): filled, it holds the post as spam.
HONEYPOT = "honeypot"


@dataclass(frozen=True)
class Field:
    name: str
    #: What a person reads beside the field and in its error messages.
    label: str
    kind: str
    #: Most characters accepted; None for checkboxes, which are compared to one exact value.
    limit: int | None
    #: The one-line rule for the docs.
    rule: str
    #: The browser's autofill hint for visible inputs.
    autocomplete: str = ""
    #: A checkbox's one accepted value.
    value: str = ""
    #: The download needs it (the email address, the terms).
    required: bool = False


FIELDS: tuple[Field, ...] = (
    Field("email", "Work email", EMAIL, 254, "required, checked by email-validator, stored normalized",
          "email", required=True),
    Field("first_name", "First name", TEXT, 100, "optional", "given-name"),
    Field("last_name", "Last name", TEXT, 100, "optional", "family-name"),
    Field("company", "Company", TEXT, 200, "optional", "organization"),
    Field("job_title", "Job title", TEXT, 150, "optional", "organization-title"),
    Field("company_size", "Company size (employees)", CHOICE, 100,
          "optional, one of `company_sizes` in content/leadgate.yml"),
    Field("industry", "Industry", CHOICE, 100, "optional, one of `industries` in content/leadgate.yml"),
    Field("terms", "Terms", CHECKBOX, None, "required, the value must be exactly `accepted`",
          value="accepted", required=True),
    Field("marketing_opt_in", "Marketing emails", CHECKBOX, None,
          "optional and unticked; ticked only when exactly `yes`", value="yes"),
    Field("resource_id", "Resource", HIDDEN, 64, "a resource id of the catalog"),
    Field("terms_sha256", "Terms version", HIDDEN, 64, "SHA-256 of the terms text the page showed"),
    Field("marketing_sha256", "Marketing consent version", HIDDEN, 64,
          "SHA-256 of the marketing text the page showed"),
    Field("utm_source", "Campaign source", HIDDEN, 200, "filled by the page script"),
    Field("utm_medium", "Campaign medium", HIDDEN, 200, "filled by the page script"),
    Field("utm_campaign", "Campaign name", HIDDEN, 200, "filled by the page script"),
    Field("utm_term", "Campaign term", HIDDEN, 200, "filled by the page script"),
    Field("utm_content", "Campaign content", HIDDEN, 200, "filled by the page script"),
    Field("referrer", "Referrer", HIDDEN, 2000, "filled by the page script"),
    Field("landing_page", "Landing page", HIDDEN, 2000, "filled by the page script"),
    Field("form_token", "Form token", HIDDEN, 200,
          "signed and timestamped by the service when the form is shown; fetched by the page script"),
    Field("website", "Website", HONEYPOT, 200,
          "hidden from people; a post that fills it is held as spam (never refused: a bot learns nothing)"),
)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

TERMS_VALUE = BY_NAME["terms"].value
MARKETING_VALUE = BY_NAME["marketing_opt_in"].value
#: The value of a further purpose's box, as the marketing box's.
PURPOSE_VALUE = MARKETING_VALUE
SHA256_LENGTH = BY_NAME["marketing_sha256"].limit


def purpose_fields(purpose: str, label: str) -> tuple[Field, Field]:
    """The two fields of a further purpose of consent (``consent.<purpose>`` in leadgate.yml):
    its optional box and the SHA-256 of the words the page showed beside it."""
    return (
        Field(f"consent_{purpose}", label, CHECKBOX, None,
              "optional and unticked; ticked only when exactly `yes`", value=PURPOSE_VALUE),
        Field(f"{purpose}_sha256", f"{label} consent version", HIDDEN, SHA256_LENGTH,
              f"SHA-256 of the {purpose} text the page showed; without it the box was not shown"),
    )

#: What a person tells about themselves: kept on each submission, the newest on the lead.
PROFILE_FIELDS = ("first_name", "last_name", "company", "job_title", "company_size", "industry")
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
#: Where a submission came from.
SOURCE_FIELDS = (*UTM_FIELDS, "referrer", "landing_page")
#: What the spam checks read and nothing stores (capture.spam).
SPAM_FIELDS = ("form_token", "website")


def limit(name: str) -> int:
    """The limit of a text field (a KeyError for unknown names, a TypeError for checkboxes)."""
    value = BY_NAME[name].limit
    if value is None:
        raise TypeError(f"{name} is a checkbox: it has a value, not a length")
    return value


EMAIL_MAX = limit("email")
RESOURCE_ID_MAX = limit("resource_id")
UTM_MAX = limit("utm_source")
URL_MAX = limit("referrer")
