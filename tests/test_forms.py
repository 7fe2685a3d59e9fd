"""The rules of a download request, checked without a request: one table row per mistake."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from capture.catalog import ConsentText
from capture.web.forms import STALE_PAGE, TERMS_REQUIRED, UNKNOWN_RESOURCE, check_submission

CONTROL = "must be one line of text, without tabs or other control characters."


def check(catalog, data, **kwargs):
    return check_submission(MultiDict(data), catalog, **kwargs)


def test_valid_post_gives_what_to_store(catalog, form_post):
    checked = check(catalog, form_post(email="  Ann.Lee@EXAMPLE.com ", first_name=" Ann "))
    assert checked.ok and checked.status == 201
    data = checked.submission
    assert data["email"] == "Ann.Lee@example.com"  # domain lower-cased, local part kept
    assert data["first_name"] == "Ann"
    assert data["resource_id"] == "leads-vs-prospects"
    assert data["terms"] == catalog.settings.terms
    assert data["marketing"] == catalog.settings.marketing
    assert data["marketing_opt_in"] is False
    assert data["utm_source"] == "newsletter"


def test_only_email_and_terms_are_required(catalog, form_post):
    optional = ("first_name", "last_name", "company", "job_title", "company_size", "industry",
                "utm_source", "utm_medium", "utm_campaign", "referrer", "landing_page")
    checked = check(catalog, form_post(**{name: None for name in optional}))
    assert checked.ok, checked.errors


@pytest.mark.parametrize(("field", "value", "message"), [
    ("email", None, "Enter your email address."),
    ("email", "", "Enter your email address."),
    ("email", "   ", "Enter your email address."),
    ("email", "ann", "An email address must have an @-sign."),
    ("email", "ann@localhost", "The part after the @-sign is not valid. It should have a period."),
    ("email", "ann@@example.com", "The part after the @-sign contains invalid characters: '@'."),
    ("email", "a" * 243 + "@example.com", "Work email must be at most 254 characters."),
    ("email", "ann\x00@example.com", f"Work email {CONTROL}"),
    ("first_name", "A" * 101, "First name must be at most 100 characters."),
    ("first_name", "Ann\nLee", f"First name {CONTROL}"),
    ("first_name", "Ann\ud800", "First name contains characters that cannot be stored."),
    ("last_name", "L" * 101, "Last name must be at most 100 characters."),
    ("last_name", "Lee\tSmith", f"Last name {CONTROL}"),
    ("company", "C" * 201, "Company must be at most 200 characters."),
    ("company", "Acme\x00", f"Company {CONTROL}"),
    ("job_title", "J" * 151, "Job title must be at most 150 characters."),
    ("job_title", "Head\rof growth", f"Job title {CONTROL}"),
    ("company_size", "12", "Choose a company size from the list."),
    ("company_size", "1" * 101, "Company size (employees) must be at most 100 characters."),
    ("industry", "Crypto", "Choose an industry from the list."),
    ("industry", "Software\x1b", f"Industry {CONTROL}"),
    ("terms", None, TERMS_REQUIRED),
    ("terms", "", TERMS_REQUIRED),
    ("terms", "on", TERMS_REQUIRED),
    ("terms", "0", TERMS_REQUIRED),
    ("terms", "true", TERMS_REQUIRED),
    ("terms", "Accepted", TERMS_REQUIRED),
    ("resource_id", "no-such-resource", UNKNOWN_RESOURCE),
    ("resource_id", None, UNKNOWN_RESOURCE),
    ("resource_id", "r" * 65, "Resource must be at most 64 characters."),
    ("utm_source", "s" * 201, "Campaign source must be at most 200 characters."),
    ("utm_medium", "m" * 201, "Campaign medium must be at most 200 characters."),
    ("utm_campaign", "c" * 201, "Campaign name must be at most 200 characters."),
    ("utm_term", "t" * 201, "Campaign term must be at most 200 characters."),
    ("utm_content", "c" * 201, "Campaign content must be at most 200 characters."),
    ("utm_source", "news\x00letter", f"Campaign source {CONTROL}"),
    ("referrer", "https://a.example/" + "r" * 1990, "Referrer must be at most 2000 characters."),
    ("landing_page", "https://a.example/" + "p" * 1990, "Landing page must be at most 2000 characters."),
    ("landing_page", "https://a.example/\n", f"Landing page {CONTROL}"),
])
def test_bad_field_is_refused_with_a_message(catalog, form_post, field, value, message):
    checked = check(catalog, form_post(**{field: value}))
    assert not checked.ok
    assert checked.status == 422
    assert checked.errors[field] == [message]
    assert list(checked.errors) == [field]


def test_every_mistake_is_reported_at_once(catalog, form_post):
    checked = check(catalog, form_post(email="nope", company="C" * 201, terms=None))
    assert set(checked.errors) == {"email", "company", "terms"}


def test_one_post_leaves_nothing_behind_for_the_next(catalog, form_post):
    """Each thread's form is bound once and reused: no value, error or address carries over."""
    full = check(catalog, form_post(email="ann@example.com", first_name="Ann", company="Acme",
                                    marketing_opt_in="yes"))
    assert full.ok
    wrong = check(catalog, form_post(email="nope", first_name=None, company="C" * 201,
                                     marketing_opt_in=None))
    assert set(wrong.errors) == {"email", "company"}
    assert wrong.values["first_name"] == ""
    assert wrong.submission is None
    bare = check(catalog, form_post(email="bob@example.com", first_name=None, company=None,
                                    marketing_opt_in=None))
    assert bare.ok and bare.errors == {}
    assert bare.submission["email"] == "bob@example.com"
    assert (bare.submission["first_name"], bare.submission["company"]) == ("", "")
    assert bare.submission["marketing_opt_in"] is False
    # What an earlier check returned is not changed by a later one.
    assert full.submission["first_name"] == "Ann" and set(wrong.errors) == {"email", "company"}


def test_values_come_back_for_the_form(catalog, form_post):
    checked = check(catalog, form_post(email="nope", first_name="Ann"))
    assert checked.values["email"] == "nope"
    assert checked.values["first_name"] == "Ann"
    assert checked.resource.id == "leads-vs-prospects"


@pytest.mark.parametrize(("posted", "ticked"), [
    ("yes", True),
    (None, False),
    ("", False),
    ("0", False),
    ("off", False),
    ("false", False),
    ("on", False),
    ("Yes", False),
    ("true", False),
])
def test_marketing_counts_only_an_exact_yes(catalog, form_post, posted, ticked):
    checked = check(catalog, form_post(marketing_opt_in=posted))
    assert checked.ok
    assert checked.submission["marketing_opt_in"] is ticked


def test_resource_with_its_own_consent_text(catalog, form_post, content_dir):
    from conftest import write_resource
    from capture.catalog import load_catalog

    write_resource(content_dir, "pricing", """
        id: pricing
        title: Pricing guide
        type: report
        summary: What it costs.
        file: pricing.pdf
        consent_text: I agree that Acme shares my details with its reseller.
        consent_version: pricing-1
    """, pdf="pricing.pdf")
    catalog = load_catalog(content_dir)
    resource = catalog.get("pricing")
    checked = check(catalog, form_post("pricing", terms_sha256=resource.terms.sha256))
    assert checked.ok
    assert checked.submission["terms"].version == "pricing-1"


@pytest.mark.parametrize("field", ["terms_sha256", "marketing_sha256"])
@pytest.mark.parametrize("value", [None, "", "0" * 64, "not-a-hash"])
def test_unknown_consent_text_means_the_page_is_out_of_date(catalog, form_post, field, value):
    checked = check(catalog, form_post(**{field: value}))
    assert not checked.ok
    assert checked.status == 409
    assert checked.form_error == STALE_PAGE


def test_consent_text_recorded_earlier_is_still_accepted(catalog, form_post):
    old = ConsentText("terms", "terms-2025-01", "I agree to the old terms.")
    recorded = {old.sha256: old}
    checked = check(catalog, form_post(terms_sha256=old.sha256), known_text=recorded.get)
    assert checked.ok
    assert checked.submission["terms"] == old


def test_recorded_text_of_the_other_kind_does_not_count(catalog, form_post):
    marketing = catalog.settings.marketing
    checked = check(catalog, form_post(terms_sha256=marketing.sha256),
                    known_text={marketing.sha256: marketing}.get)
    assert checked.status == 409
