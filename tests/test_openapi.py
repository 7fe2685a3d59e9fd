"""The OpenAPI description at /api/openapi.json: valid, true to the routes and to the form's
contract (schemathesis against a live server with it: tests/test_schemathesis.py)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from openapi_spec_validator import validate

from capture.fields import BY_NAME, FIELDS, SPAM_FIELDS
from capture.leads.filters import ARGS
from capture.web.forms import UNSTORABLE
from capture.web.openapi import ONE_LINE, PATH, UNDESCRIBED

JSON = {"Accept": "application/json"}
METHODS = ("get", "post", "put", "patch", "delete", "options")

#: Routes that are not an API: the staff's HTML workspace (its pages, forms and static files;
#: its CSV is the same export as /api/leads.csv, behind a session rather than a token), the
#: service's own static files and the built site that `leadgate serve` adds.
WORKSPACE = "/workspace/"
NOT_API_ENDPOINTS = {"static", "site.page"}


@pytest.fixture
def app(make_app):
    """Form limits off: these tests post far more than a person would (the limits have their own tests)."""
    return make_app(RATE_LIMIT="off")


def operations(document: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item if method in METHODS}


def routes(app: Flask, *, api_only: bool = False) -> set[tuple[str, str]]:
    """(path in OpenAPI's spelling, method) of every rule, less HEAD and automatic OPTIONS;
    ``api_only`` leaves out the workspace and the static files and site pages."""
    found = set()
    for rule in app.url_map.iter_rules():
        if api_only and (rule.rule.startswith(WORKSPACE) or rule.endpoint in NOT_API_ENDPOINTS):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        methods = set(rule.methods or ()) - {"HEAD"}
        if getattr(rule, "provide_automatic_options", False):
            methods.discard("OPTIONS")
        found |= {(path, method.lower()) for method in methods}
    return found


@pytest.fixture
def document(client) -> dict:
    client.environ_base.pop("HTTP_ORIGIN")
    response = client.get(PATH)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_the_description_is_valid_openapi_3_1(document) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises, naming the part at fault


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_every_described_operation_is_a_route(app, document) -> None:
    missing = operations(document) - routes(app)
    assert not missing, f"described but not served: {sorted(missing)}"


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_every_public_route_is_described(make_app, document, tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    app = make_app(SITE_DIR=str(site))  # with the built site's routes, which are left out
    public = routes(app, api_only=True)
    missing = public - operations(document)
    assert not missing, f"served but not described in {PATH}: {sorted(missing)}"
    assert ("/submit", "post") in public and ("/api/leads.csv", "get") in public


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_the_description_is_cacheable_and_needs_no_sign_in(client) -> None:
    client.environ_base.pop("HTTP_ORIGIN")
    first = client.get(PATH)
    assert first.status_code == 200 and "Authorization" not in first.request.headers
    assert "public" in first.headers["Cache-Control"] and "max-age" in first.headers["Cache-Control"]
    again = client.get(PATH, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and not again.data


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_the_form_body_is_the_field_contract(document, catalog) -> None:
    post = document["paths"]["/submit"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {"application/x-www-form-urlencoded", "multipart/form-data"}
    schema = content["application/x-www-form-urlencoded"]["schema"]
    assert list(schema["properties"]) == [f.name for f in FIELDS]
    assert schema["required"] == ["email", "terms", "resource_id", "terms_sha256", "marketing_sha256"]
    assert schema["properties"]["terms"]["enum"] == ["accepted"]
    assert schema["properties"]["marketing_opt_in"]["enum"] == ["yes"]
    assert schema["properties"]["resource_id"]["enum"] == [r.id for r in catalog]
    assert {"201", "303", "400", "403", "409", "413", "415", "422", "429", "503"} == set(post["responses"])


def _text_fields(document: dict) -> list[tuple[str, int]]:
    properties = document["paths"]["/submit"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"]["schema"]["properties"]
    return [(name, p["maxLength"]) for name, p in properties.items()
            if "maxLength" in p and not {"enum", "format"} & set(p)]


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_each_described_limit_is_the_one_the_form_keeps(
        client, document, form_post: Callable[..., dict[str, str]]) -> None:
    """A value of exactly maxLength is taken, one character more is refused naming the field:
    the description and the form read one limit."""
    fields = _text_fields(document)
    assert {name for name, _ in fields} >= {"first_name", "company", "utm_source", "referrer"}
    for name, limit in fields:
        assert limit == BY_NAME[name].limit
        taken = client.post("/submit", data=form_post(**{name: "a" * limit}), headers=JSON)
        assert taken.status_code == 201, (name, taken.get_json())
        if name in SPAM_FIELDS:
            continue  # never refused: a bot learns nothing from the answer
        refused = client.post("/submit", data=form_post(**{name: "a" * (limit + 1)}), headers=JSON)
        assert refused.status_code == 422, name
        assert list(refused.get_json()["errors"]) == [name]


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_refusals_have_the_described_error_shape(client, document) -> None:
    """The Error schema is what the one error handler writes."""
    schema = document["components"]["schemas"]["Error"]
    body = client.post("/submit", data={"email": "ann@"}, headers=JSON).get_json()
    assert set(schema["required"]) <= set(body) <= set(schema["properties"])
    assert body["ok"] is False and body["errors"]["email"]


def test_the_described_text_rule_is_the_forms() -> None:
    """The fields' pattern refuses exactly the characters the form refuses (surrogates aside,
    which no JSON string holds)."""
    one_line = re.compile(ONE_LINE)
    for code in [*range(0x3000), 0xFEFF, 0xFF1D, 0x1D538]:
        if 0xD800 <= code <= 0xDFFF:
            continue
        assert (one_line.fullmatch(chr(code)) is None) == (UNSTORABLE.search(chr(code)) is not None), hex(code)


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_every_export_parameter_is_described(document) -> None:
    parameters = {p["name"]: p for p in document["paths"]["/api/leads.csv"]["get"]["parameters"]}
    assert set(ARGS) | {"columns", "format", "excel", "sort", "dir", "limit", "cursor"} == set(parameters)
    assert not [name for name, p in parameters.items() if p["description"] == UNDESCRIBED]
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1}
