"""One way to fail: :class:`Problem` says what went wrong, :func:`answer` says it to whoever asked.

Every refusal of the service is a Problem (status, title, message for a person), raised or
built from an HTTP error or a database failure, and answered in one place:

- JSON ``{"ok": false, "title", "error", "errors"?}`` for ``/api/…`` and for the page script
  (``Accept: application/json``);
- HTML for people: visitors get the page inside the built site's shell (its header,
  navigation, fonts and colour scheme), staff get it in the workspace's layout, in staff words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import (
    Flask,
    Response,
    current_app,
    jsonify,
    make_response,
    render_template,
    request,
    url_for,
)
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from capture.shells import MESSAGE_PAGE, MESSAGE_REGION, in_site_shell, site_link

API = "/api/"
WORKSPACE = "/workspace/"

#: What each status means to a visitor.
VISITOR: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be understood. Reload the page and try again."),
    403: ("Not allowed", "This form cannot be sent from the page it was on."),
    404: ("Page not found", "There is nothing at this address. The link may be mistyped or incomplete."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    409: ("This page is out of date", "This page is out of date. Reload it and submit again."),
    410: ("No longer available", "This resource is no longer available."),
    413: ("Too much data", "The form sent more data than the service accepts. Shorten the fields and try again."),
    422: ("Please check the form", "Some fields need your attention."),
    429: ("Too many requests", "Too many requests from your network address. Wait a minute, then try again."),
    500: ("Something went wrong", "The service failed to answer. Please try again in a few minutes."),
    503: ("Please try again shortly",
          "Your details could not be saved just now. Nothing was stored; please submit again in a minute."),
}
#: What each status means to a member of staff (the workspace and the API).
STAFF: dict[int, tuple[str, str]] = {
    400: ("Bad request", "Some parameters are not valid."),
    401: ("Sign-in needed", "Send an API token: Authorization: Bearer <token>. "
                            "Create one with `leadgate token create EMAIL`."),
    403: ("Not allowed", "Your account may not do this."),
    404: ("Not found", "There is nothing at this address in the workspace."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Too much data", "The request is larger than the service accepts."),
    429: ("Too many requests", "Too many requests. Wait a minute, then try again."),
    500: ("Something went wrong", "The service failed to answer. Try again; if it keeps failing, "
                                  "whoever runs Leadgate will find the details in its log."),
    503: ("The database is not answering", "Nothing was changed. Try again in a minute; if it keeps "
          "failing, whoever runs Leadgate can check it with `leadgate db current` and the service's log."),
}


@dataclass
class Problem(Exception):
    """A request that cannot be served, with what to tell the person who sent it."""

    status: int
    message: str | None = None
    title: str | None = None
    #: Where to go next (HTML pages): a URL and its words.
    link: tuple[str, str] | None = None
    #: Messages per field or parameter, for forms and APIs.
    errors: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message or self.status)


def for_staff() -> bool:
    return request.path.startswith((WORKSPACE, API))


def wants_json() -> bool:
    """``/api/`` and the page script get JSON; browsers posting the form prefer HTML."""
    if request.path.startswith(API):
        return True
    accept = request.headers.get("Accept", "").lower()
    if "json" not in accept and "application/*" not in accept:
        return False  # what every browser sends: no need to parse the header
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def answer(problem: Problem) -> Response:
    """The one answer to a Problem, in the asker's format and words."""
    staff = for_staff()
    default_title, default_message = (STAFF if staff else VISITOR).get(problem.status) or (
        HTTP_STATUS_CODES.get(problem.status, "Error"), "The request could not be served.")
    title, message = problem.title or default_title, problem.message or default_message
    if wants_json():
        body: dict[str, object] = {"ok": False, "title": title, "error": message}
        if problem.errors:
            body["errors"] = dict(problem.errors)
        response = jsonify(body)
    elif staff:
        url, text = problem.link or (url_for("workspace.leads"), "Back to the leads")
        response = make_response(render_template(
            "workspace/error.html", title=title, message=message, errors=problem.errors,
            link_url=url, link_text=text))
    else:
        url, text = problem.link or (site_link(), "Browse the resources")
        content = render_template("message_region.html", title=title, message=message,
                                  link_url=url, link_text=text)
        response = make_response(in_site_shell(MESSAGE_REGION, MESSAGE_PAGE, title, content))
    response.status_code = problem.status
    response.headers.update(problem.headers)
    if problem.status == 503:
        response.headers.setdefault("Retry-After", "60")
    return response


def _http_error(e: HTTPException) -> Response:
    """Werkzeug's refusals (404, 405, 413…), in our words, with their headers (Allow…)."""
    headers = {name: value for name, value in e.get_headers() if name.lower() != "content-type"}
    return answer(Problem(e.code or 500, headers=headers))


def _database_error(e: SQLAlchemyError) -> Response:
    """Nothing half-stored: every transaction rolled back when the error left it."""
    current_app.logger.exception("database error: %s", e)
    return answer(Problem(503))


def init_app(app: Flask) -> None:
    app.register_error_handler(Problem, answer)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SQLAlchemyError, _database_error)
