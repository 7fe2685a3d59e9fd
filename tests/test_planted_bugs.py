"""Bugs planted on purpose in working code went unnoticed by the suite: the tests that catch
them, each checked against its planted bug (issue 11, "Proof").

(a) A full-width ``＝HYPERLINK(1)`` alone in a row, with a broken row pre-scan: caught by
    tests/test_export.py::test_full_width_formula_alone_in_a_row_is_neutralised.
(b) C1 controls and DEL in any text field must be refused like C0 controls: below.
(c) A root-absolute link to a gated file must fail the build like a relative one: below.

Also: a post from an outside origin gets no ``Access-Control-Allow-Origin``, and an id in a
URL too large for a database is a 404, not a 500 (found by tests/test_schemathesis.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SITE_ORIGIN
from sqlalchemy import func, select

from capture.db.models import HeldPost, Lead, Submission
from capture.fields import CHECKBOX, FIELDS, SPAM_FIELDS
from capture.web.routing import ROW_ID_MAX
from staff import signed_in
from test_api_export import create_token
from test_build import build_failure, write_notice

JSON = {"Accept": "application/json"}
EVIL = "https://evil.example"

# -- (b) C1 controls and DEL ------------------------------------------------------------------

#: Every field of the contract a person or a page fills with text and the service stores
#: (the spam fields are read, never stored, and never refused: capture.spam).
STORED_TEXT_FIELDS = [f for f in FIELDS if f.kind != CHECKBOX and f.name not in SPAM_FIELDS]
#: The consent hashes: a value that is no hash of known words means the page is out of date.
STALE_IF_WRONG = {"terms_sha256", "marketing_sha256"}
#: Where in a value each character goes: the issue's ``Ann\x85Lee`` and ``\x9b31m`` (CSI, a
#: terminal's escape), C1's first and last, and DEL.
CONTROLS = ["\x85", "\x9b", "\x80", "\x9f", "\x7f"]


@pytest.fixture
def app(make_app):
    """Form limits off: these tests post far more than a person would (the limits have their own tests)."""
    return make_app(RATE_LIMIT="off")


def stored_rows(store) -> tuple[int, int, int]:
    with store.read() as s:
        return tuple(s.scalar(select(func.count()).select_from(m))  # type: ignore[return-value]
                     for m in (Submission, Lead, HeldPost))


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
@pytest.mark.parametrize("field", STORED_TEXT_FIELDS, ids=lambda f: f.name)
def test_c1_controls_and_del_are_refused_in_every_text_field(client, store, form_post, field) -> None:
    valid = form_post(first_name="Ann", last_name="Lee")
    for control in CONTROLS:
        value = valid.get(field.name) or "AnnLee"
        # Within the limit, so the control character is all that is wrong (the hashes are full).
        keep = value[2:] if len(value) >= field.limit else value[1:]
        for bad in (value[:1] + control + keep, control + "31m"):
            response = client.post("/submit", data=form_post(**{field.name: bad}), headers=JSON)
            assert response.status_code == (409 if field.name in STALE_IF_WRONG else 422), (field.name, bad)
            assert response.get_json()["errors"][field.name] == [
                f"{field.label} must be one line of text, without tabs or other control characters."]
    assert stored_rows(store) == (0, 0, 0)


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_a_person_posting_c1_in_their_name_gets_the_form_back_with_the_message(client, store, form_post) -> None:
    response = client.post("/submit", data=form_post(first_name="Ann\x85Lee"))
    assert response.status_code == 422
    assert "First name must be one line of text" in response.get_data(as_text=True)
    assert stored_rows(store) == (0, 0, 0)


# -- (c) root-absolute links to gated files ---------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("link", [
    "[Get it](/resources/scoring.pdf)",
    '<a href="/resources/scoring.pdf">Get it</a>',
    "[Get it](/resources/scoring.pdf?download=1#page=2)",
    '<a href="/resources/%73coring.pdf">Get it</a>',
    "<a href=/resources/scoring.pdf>Get it</a>",
    '<object data="/resources/scoring.pdf" type="application/pdf"></object>',
    '<p><img alt="" srcset="/resources/scoring.pdf 2x"></p>',
])
def test_a_root_absolute_link_to_a_gated_file_fails_the_build(content_dir: Path, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture, link: str) -> None:
    write_notice(content_dir)
    (content_dir / "articles").mkdir()
    (content_dir / "articles" / "news.md").write_text(f"# News\n\n{link}\n", encoding="utf-8",)
    message = build_failure(content_dir, tmp_path, caplog)
    assert "articles/news.md: body: links to '/resources/" in message
    assert "the gated file of 'scoring'" in message
    assert not (tmp_path / "site" / "resources" / "scoring.pdf").exists()


# -- CORS: an outside origin reads nothing ----------------------------------------------------

@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_a_post_from_an_outside_origin_gets_no_cors_header(client, store, form_post) -> None:
    refused = client.post("/submit", data=form_post(), headers={**JSON, "Origin": EVIL})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert stored_rows(store) == (0, 0, 0)
    allowed = client.post("/submit", data=form_post(), headers=JSON)  # the site's own Origin
    assert allowed.status_code == 201
    assert allowed.headers["Access-Control-Allow-Origin"] == SITE_ORIGIN


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_a_preflight_from_an_outside_origin_gets_no_cors_header(client) -> None:
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    outside = client.options("/submit", headers={**asked, "Origin": EVIL})
    assert outside.status_code == 204
    assert not [h for h in outside.headers.keys() if h.lower().startswith("access-control-allow")]
    own = client.options("/submit", headers={**asked, "Origin": SITE_ORIGIN})
    assert own.headers["Access-Control-Allow-Origin"] == SITE_ORIGIN
    assert "POST" in own.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_a_form_token_asked_from_an_outside_origin_gets_no_cors_header(client) -> None:
    outside = client.get("/form-token", headers={"Origin": EVIL})
    assert outside.status_code == 200
    assert "Access-Control-Allow-Origin" not in outside.headers
    own = client.get("/form-token", headers={"Origin": SITE_ORIGIN})
    assert own.headers["Access-Control-Allow-Origin"] == SITE_ORIGIN


# -- Found by schemathesis: an id no database can hold ----------------------------------------

@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_a_lead_id_too_large_for_the_database_is_not_found(client, runner) -> None:
    """SQLite's driver raised OverflowError for ids above 2**63 - 1: a 500 for
    POST /api/leads/111633225281388757800452096/stage."""
    token = create_token(runner, "sam.sales@example.com")
    for lead_id in (ROW_ID_MAX + 1, 111633225281388757800452096):
        moved = client.post(f"/api/leads/{lead_id}/stage", json={"stage": "mql"},
                            headers={"Authorization": f"Bearer {token}"})
        assert moved.status_code == 404
        assert moved.get_json()["ok"] is False
    at_most = client.post(f"/api/leads/{ROW_ID_MAX}/stage", json={"stage": "mql"},
                          headers={"Authorization": f"Bearer {token}"})
    assert at_most.status_code == 404 and at_most.get_json()["error"] == f"There is no lead {ROW_ID_MAX}."


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_a_lead_page_with_an_id_too_large_is_not_found(client, runner) -> None:
    signed_in(client, runner)
    assert client.get(f"/workspace/leads/{ROW_ID_MAX + 1}").status_code == 404
    assert client.get(f"/workspace/leads/{ROW_ID_MAX}").status_code == 404
