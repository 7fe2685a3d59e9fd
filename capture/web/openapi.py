"""The OpenAPI 3.1 description of the public capture endpoint and the staff API.

Served at ``GET /api/openapi.json`` (no sign-in: it describes, it holds no data) and checked
against the real routes by tests/test_openapi.py, which also runs schemathesis against a live
server with it. Nothing here is typed twice: the form's request body is made from the field
contract (capture.fields: names, limits, required, the checkboxes' one value), the export's
parameters from the filter's and the export's own names (capture.leads.filters,
capture.leads.export), the stage move's from capture.staff.api, and the error body is the one
:func:`capture.errors.answer` writes. The catalog (when given) adds what a page would post
today: its resource ids, company sizes, industries and consent hashes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from capture.catalog import SLUG, Catalog, get_catalog
from capture.fields import CHECKBOX, CHOICE, EMAIL, FIELDS, RESOURCE_ID_MAX, UTM_MAX, Field
from capture.leads import stages
from capture.leads.export import COLUMNS, FALSE, FORMATS, TRUE, export_columns
from capture.leads.filters import ARGS, DAY, Q_MAX, RANGES, TYPE_MAX
from capture.leads.queries import LEAD_SORTS
from capture.mail.links import ONE_CLICK_FIELD, ONE_CLICK_VALUE
from capture.staff.api import MOVE_FIELDS
from capture.web.routing import ROW_ID_MAX

PATH = "/api/openapi.json"
#: Hidden fields the landing page always sends, without which a post is refused (an unknown
#: resource, 422; consent words the service cannot tell, 409): required here, though nobody fills them.
PAGE_SENDS = ("resource_id", "terms_sha256", "marketing_sha256")
#: Text without control characters (C0, DEL, C1), which the form refuses
#: (capture.web.forms.UNSTORABLE, checked against this by tests/test_openapi.py). Its lone
#: surrogates need no rule here: no JSON string or UTF-8 text can hold one.
ONE_LINE = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
#: The words of a parameter that has none of its own yet.
UNDESCRIBED = "See docs/export.md."
#: Browsers and proxies may keep the description this long; its ETag revalidates it after.
MAX_AGE = 300

bp = Blueprint("openapi", __name__)

JSON, HTML, FORM, MULTIPART = ("application/json", "text/html", "application/x-www-form-urlencoded",
                               "multipart/form-data")
ERROR = {"$ref": "#/components/schemas/Error"}
#: gunicorn's own answer to a request line over 4,094 bytes (a long token or query string).
URI_TOO_LONG = {"description": "The address is longer than the HTTP server reads.",
                "content": {HTML: {"schema": {"type": "string"}}}}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "string"}}}


def _error(description: str, *, html: bool = False, headers: dict | None = None) -> dict[str, Any]:
    """A refusal: the JSON body of capture.errors (and the page a browser gets, for visitors)."""
    content: dict[str, Any] = {JSON: {"schema": ERROR}}
    if html:
        content[HTML] = {"schema": {"type": "string"}}
    answer: dict[str, Any] = {"description": description, "content": content}
    if headers:
        answer["headers"] = headers
    return answer


def _field_schema(spec: Field, catalog: Catalog | None) -> dict[str, Any]:
    """One form field as a string schema: its label, rule and limit from the contract."""
    schema: dict[str, Any] = {"type": "string", "title": spec.label, "description": spec.rule}
    if spec.kind == CHECKBOX:
        schema["enum"] = [spec.value]
        return schema
    schema["maxLength"] = spec.limit
    schema["pattern"] = ONE_LINE
    if spec.kind == EMAIL:
        schema["format"] = "email"
    if catalog is not None:
        settings = catalog.settings
        if spec.kind == CHOICE:
            choices = settings.company_sizes if spec.name == "company_size" else settings.industries
            schema["enum"] = ["", *choices]  # empty: not told
        elif spec.name == "resource_id":
            schema["enum"] = [r.id for r in catalog]
        elif spec.name in ("terms_sha256", "marketing_sha256"):
            # What a page built today sends; a page built before may send the hash of words
            # shown then, accepted once the service has recorded them (else 409).
            now = ({settings.terms.sha256, *(r.terms.sha256 for r in catalog)}
                   if spec.name == "terms_sha256" else {settings.marketing.sha256})
            schema["enum"] = sorted(now)
            schema["description"] += (": one of these today; the hash of words shown before "
                                      "is accepted while the service has them on record")
    return schema


def _purpose_schemas(catalog: Catalog | None) -> dict[str, Any]:
    """The two fields of each further purpose of consent of the settings (capture.fields.purpose_fields)."""
    schemas: dict[str, Any] = {}
    for purpose in catalog.settings.purposes if catalog is not None else ():
        box, digest = purpose.fields
        schemas[box.name] = _field_schema(box, None)
        schemas[digest.name] = {**_field_schema(digest, None), "enum": [purpose.text.sha256]}
        schemas[digest.name]["description"] += (": this one today; the hash of words shown before is "
                                                "accepted while the service has them on record")
    return schemas


def submission_schema(catalog: Catalog | None = None) -> dict[str, Any]:
    """The form post's body, field by field from capture.fields, then the further purposes'."""
    return {
        "type": "object",
        "properties": {**{spec.name: _field_schema(spec, catalog) for spec in FIELDS},
                       **_purpose_schemas(catalog)},
        "required": [spec.name for spec in FIELDS if spec.required or spec.name in PAGE_SENDS],
        "additionalProperties": {"type": "string", "description": "Ignored."},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def export_parameters(catalog: Catalog | None = None) -> list[dict[str, Any]]:
    """The parameters of ``GET /api/leads.csv``: the lead filter's, the export's, the order's,
    and the page (``limit``, ``cursor``). Meanings: docs/export.md."""
    day = {"type": "string", "format": "date", "pattern": f"^{DAY.pattern}$"}
    text = {"type": "string", "maxLength": UTM_MAX}
    filters: dict[str, tuple[dict[str, Any], str]] = {
        "q": ({"type": "string", "maxLength": Q_MAX}, "Part of the email, first or last name or company."),
        "from": (day, "The lead sent a form on or after this UTC day."),
        "to": (day, "The lead sent a form on or before this UTC day."),
        "resource": ({"type": "string", "maxLength": RESOURCE_ID_MAX, "pattern": SLUG.pattern},
                     "A resource id the lead requested."),
        "type": ({"type": "string", "maxLength": TYPE_MAX}, "A resource type the lead requested."),
        "utm_source": (text, "Campaign source of one of the lead's posts, any case."),
        "utm_medium": (text, "Campaign medium of one of the lead's posts, any case."),
        "utm_campaign": (text, "Campaign name of one of the lead's posts, any case."),
        "marketing": ({"type": "string", "enum": ["yes", "no"]}, "The lead's latest marketing choice."),
        "stage": ({"type": "string", "enum": list(stages.STAGES)}, "The lead's stage now."),
        "mql_from": (day, "The lead became an MQL on or after this UTC day."),
        "mql_to": (day, "The lead became an MQL on or before this UTC day."),
    }
    for name in RANGES:
        filters[name] = ({"type": "integer", "minimum": 0, "maximum": 100},
                         f"{'Lowest' if name.endswith('_min') else 'Highest'} {RANGES[name]}, included.")
    # A filter added later is still described, plainly, until it gets its words here (a test
    # asks for them).
    parameters = [_query(name, *filters.get(name, ({"type": "string"}, UNDESCRIBED))) for name in ARGS]
    parameters += [
        _query("columns", {"type": "string"},
               f"Comma-separated columns, or all. Columns: "
               f"{', '.join(export_columns(catalog.settings.purposes) if catalog else COLUMNS)}."),
        _query("format", {"type": "string", "enum": list(FORMATS)}, "csv (default) or jsonl."),
        _query("excel", {"type": "string", "enum": sorted(TRUE | FALSE)},
               "Start the CSV with a UTF-8 BOM so Excel reads it as UTF-8."),
        _query("sort", {"type": "string", "enum": list(LEAD_SORTS)}, "Order of the rows (default: by id)."),
        _query("dir", {"type": "string", "enum": ["asc", "desc"]}, "Direction of the order."),
        _query("limit", {"type": "integer", "minimum": 1}, "At most this many leads in this answer."),
        _query("cursor", {"type": "string"},
               "Where the previous page ended: the next page starts after it."),
    ]
    return parameters


def _move_body() -> dict[str, Any]:
    properties: dict[str, Any] = {
        name: {"type": "string", "maxLength": limit} for name, limit in MOVE_FIELDS.items()}
    properties["stage"].update(enum=list(stages.STAGES), description="The stage to move to.")
    return {"type": "object", "properties": properties, "required": ["stage"]}


def _token_path(description: str) -> dict[str, Any]:
    return {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
            "description": description}


def _mail_link(summary: str, get: str, post: str, *, expires: bool) -> dict[str, Any]:
    """An email's link: GET shows a page with one button, POST acts (capture.web.mail_links)."""
    refusals: dict[str, Any] = {"404": _error("Not a token of this link.", html=True), "414": URI_TOO_LONG}
    if expires:
        refusals["410"] = _error("The link expired.", html=True)
    text = {"schema": {"type": "string"}}
    token = [_token_path("The signed token of the email's link.")]
    name = summary.split()[0].lower()
    body = {"required": False, "content": {FORM: {"schema": ONE_CLICK}, MULTIPART: {"schema": ONE_CLICK}}}
    return {
        "get": {"operationId": f"{name}Page", "summary": f"{summary}: a page with one button",
                "tags": ["capture"], "parameters": token,
                "responses": {"200": {"description": get, "content": {HTML: text}}, **refusals}},
        "post": {"operationId": name, "summary": summary, "tags": ["capture"], "parameters": token,
                 "requestBody": body,
                 "responses": {"200": {"description": post, "content": {HTML: text, "text/plain": text}},
                               "413": _error("The body is larger than the service accepts.", html=True),
                               **refusals}},
    }


#: RFC 8058's one-click body, which the unsubscribe link's POST also accepts.
ONE_CLICK = {"type": "object", "properties": {ONE_CLICK_FIELD: {"const": ONE_CLICK_VALUE}}}
MAIL_LINKS = {
    "/confirm/{token}": _mail_link("Confirm an address (double opt-in)", "The page with the button.",
                                   "Confirmed (the same page however often it is sent).", expires=True),
    "/unsubscribe/{token}": _mail_link(
        "Unsubscribe from marketing emails", "The page with the button.",
        "Unsubscribed, the same however often: a page, or with the body List-Unsubscribe=One-Click "
        "(RFC 8058) a line of text.", expires=False),
}


def describe(catalog: Catalog | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document; ``catalog`` adds the values a page would post today."""
    form = submission_schema(catalog)
    staff_refusals = {
        "401": _error("No API token, or one that is not valid any more.",
                      headers={"WWW-Authenticate": {"schema": {"type": "string"}}}),
        "403": _error("The token's account may not do this."),
        "429": _error("Too many requests with this token, or too many failed tokens from this "
                      "address.", headers=RETRY_AFTER),
        "503": _error("The database is not answering, or every export slot is busy.",
                      headers=RETRY_AFTER),
    }
    paths: dict[str, Any] = {
        "/submit": {
            "post": {
                "operationId": "submit",
                "summary": "Request a gated resource (the landing page's form)",
                "description": (
                    "A browser without JavaScript gets 303 to the thank-you page; the page script "
                    "(Accept: application/json) gets 201 with the links. Fields: the contract in "
                    "docs/architecture.md."),
                "tags": ["capture"],
                "requestBody": {"required": True, "content": {
                    FORM: {"schema": form}, MULTIPART: {"schema": form}}},
                "responses": {
                    "201": {"description": "Stored (or spooled): the links to the resource, or (with "
                                           "EMAIL_DELIVERY) the masked address the link is emailed to.",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Submitted"}}}},
                    "303": {"description": "Stored: go to the thank-you page, which has the link.",
                            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}}},
                    "400": _error("The body cannot be read: a field sent twice, text that is not "
                                  "UTF-8.", html=True),
                    "403": _error("Posted from a page whose origin is not allowed.", html=True),
                    "409": _error("The page showed consent words the service does not know: "
                                  "reload it.", html=True),
                    "413": _error("The body is larger than the service accepts.", html=True),
                    "415": _error("The body is neither form-urlencoded nor multipart.", html=True),
                    "422": _error("Some fields need fixing: a message per field (for a browser, "
                                  "the form again with the messages).", html=True),
                    "429": _error("Too many posts from this address, network or email address.",
                                  html=True, headers=RETRY_AFTER),
                    "503": _error("Nothing could be stored just now; nothing was kept.", html=True,
                                  headers=RETRY_AFTER),
                },
            },
            "options": {
                "operationId": "submitPreflight",
                "summary": "CORS preflight for the page script",
                "tags": ["capture"],
                "responses": {"204": {"description": "Allowed methods; the CORS headers only for "
                                                     "an allowed Origin.",
                                      "headers": {"Allow": {"schema": {"type": "string"}}}}},
            },
        },
        "/form-token": {
            "get": {
                "operationId": "formToken",
                "summary": "A signed, timestamped token for the form (the page script asks when "
                           "the form is shown)",
                "tags": ["capture"],
                "responses": {
                    "200": {"description": "The token to post as form_token, and the fewest seconds "
                                           "before a post counts as a person's.",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/FormToken"}}}},
                    "429": _error("Too many requests from this address.", headers=RETRY_AFTER),
                },
            },
        },
        "/thanks/{token}": {
            "get": {
                "operationId": "thanks",
                "summary": "The thank-you page with the personal download link",
                "tags": ["capture"],
                "parameters": [_token_path("The signed token of the request.")],
                "responses": {
                    "200": {"description": "The page, in the site's shell.", "content": {HTML: {"schema": {"type": "string"}}}},
                    "404": _error("Not a token of this service.", html=True),
                    "410": _error("The link expired, or the resource is gone.", html=True),
                    "414": URI_TOO_LONG,
                },
            },
        },
        **MAIL_LINKS,
        "/download/{token}": {
            "get": {
                "operationId": "download",
                "summary": "The gated file; each request is recorded as a download",
                "tags": ["capture"],
                "parameters": [_token_path("The signed token of the request.")],
                "responses": {
                    "200": {"description": "The PDF, as an attachment.",
                            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
                    "404": _error("Not a token of this service.", html=True),
                    "410": _error("The link expired, the resource is gone or the lead was erased.", html=True),
                    "414": URI_TOO_LONG,
                    "503": _error("The download could not be recorded just now.", html=True, headers=RETRY_AFTER),
                },
            },
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process answers (for load balancers)",
                "tags": ["operations"],
                "responses": {"200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            },
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "The service can take posts: database (or spool) ready",
                "tags": ["operations"],
                "responses": {
                    "200": {"description": "Ready.", "content": {JSON: {"schema": {"$ref": "#/components/schemas/Ready"}}}},
                    "503": {"description": "Not ready, and why.",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Ready"}}}},
                },
            },
        },
        "/api/leads.csv": {
            "get": {
                "operationId": "exportLeads",
                "summary": "The leads matching a filter, streamed as CSV or JSON lines",
                "description": "Parameters and columns: docs/export.md. Every given filter must hold.",
                "tags": ["staff"],
                "security": [{"token": []}],
                "parameters": export_parameters(catalog),
                "responses": {
                    "200": {"description": "The rows, streamed (an attachment).", "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": {"type": "string"}}}},
                    "400": _error("Some parameters are not valid: a message per parameter."),
                    "414": URI_TOO_LONG,
                    **staff_refusals,
                },
            },
        },
        "/api/leads/{lead_id}/stage": {
            "post": {
                "operationId": "moveLead",
                "summary": "Move a lead to another stage (sales and admin tokens)",
                "tags": ["staff"],
                "security": [{"token": []}],
                "parameters": [{"name": "lead_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0,
                                           "maximum": ROW_ID_MAX}}],
                "requestBody": {"required": True, "content": {
                    JSON: {"schema": _move_body()}, FORM: {"schema": _move_body()}}},
                "responses": {
                    "200": {"description": "Moved: the lead now, and the change recorded.",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Moved"}}}},
                    "400": _error("The body is not a JSON object."),
                    "404": _error("There is no such lead."),
                    "405": _error("The lead id is not a whole number, and the built site is "
                                  "served beside the service (which takes only GET there)."),
                    "413": _error("The body is larger than the service accepts."),
                    "415": _error("The body is neither JSON nor form fields."),
                    "422": _error("The move is refused: a message under the field concerned."),
                    **staff_refusals,
                },
            },
        },
        PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "This description",
                "tags": ["staff"],
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1, JSON.",
                                      "content": {JSON: {"schema": {"type": "object"}}}},
                              "304": {"description": "Not modified (If-None-Match)."}},
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Leadgate",
            "version": "1",
            "summary": "The public capture endpoint and the staff API.",
            "description": "The form post of the landing pages and the endpoints around it, and the "
                           "staff API (an API token: `leadgate token create EMAIL`). Errors have "
                           "one JSON shape, `Error`.",
        },
        "tags": [{"name": "capture", "description": "What visitors' browsers and the page script call."},
                 {"name": "operations", "description": "Health checks."},
                 {"name": "staff", "description": "Scripts of the staff, with an API token."}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"token": {
                           "type": "http", "scheme": "bearer",
                           "description": "An API token: `leadgate token create EMAIL`."}}},
    }


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every refusal (capture.errors): a title, a message for a person, and "
                       "messages per field or parameter when some are at fault.",
        "properties": {
            "ok": {"const": False},
            "title": {"type": "string"},
            "error": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        },
        "required": ["ok", "title", "error"],
    },
    "Submitted": {
        "type": "object",
        "properties": {
            "ok": {"const": True},
            "download_url": {"type": "string", "format": "uri",
                             "description": "The personal link; absent with EMAIL_DELIVERY, when it is emailed."},
            "emailed_to": {"type": "string", "description": "With EMAIL_DELIVERY: the address the link is "
                                                            "emailed to, masked (a…@example.com)."},
            "thanks_url": {"type": "string", "format": "uri"},
            "link_valid_for": {"type": "string", "description": "The links' lifetime in words."},
            "resource": {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"}},
                         "required": ["id", "title"]},
        },
        "required": ["ok", "thanks_url", "link_valid_for", "resource"],
        "oneOf": [{"required": ["download_url"]}, {"required": ["emailed_to"]}],
    },
    "FormToken": {
        "type": "object",
        "properties": {"token": {"type": "string"}, "min_seconds": {"type": "number", "minimum": 0}},
        "required": ["token", "min_seconds"],
    },
    "Ready": {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "database": {"type": "string"}},
        "required": ["ok"],
    },
    "Moved": {
        "type": "object",
        "properties": {
            "ok": {"const": True},
            "lead": {"type": "object", "properties": {
                "id": {"type": "integer"}, "email": {"type": "string"},
                "stage": {"type": "string", "enum": list(stages.STAGES)},
                "score": {"type": ["integer", "null"]}}, "required": ["id", "email", "stage"]},
            "change": {"type": "object", "properties": {
                "from": {"type": "string"}, "to": {"type": "string"}, "by": {"type": "string"},
                "reason": {"type": ["string", "null"]}, "at": {"type": "string", "format": "date-time"}},
                "required": ["from", "to", "by", "at"]},
        },
        "required": ["ok", "lead", "change"],
    },
}


@bp.get(PATH)
def openapi() -> Response:
    """The description, with the current catalog's values; cacheable, revalidated by ETag."""
    body = json.dumps(describe(get_catalog()), indent=1, sort_keys=False).encode()
    response = current_app.response_class(body, mimetype=JSON)
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response.make_conditional(request)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
