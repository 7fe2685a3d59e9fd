"""The routes of the capture service: parse the request, call a named function, answer.

People get HTML pages; the page script (``Accept: application/json``) gets JSON in the
shapes of docs/architecture.md. Everything that decides lives in forms, store, links and
attribution.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from capture.catalog import Resource, get_catalog
from capture.db import migrate
from capture.db.store import get_store
from capture.leads.fields import BY_NAME
from capture.leads.attribution import ip_prefix, is_site_page, origin_of, source_fields
from capture.leads.queries import known_consent_text
from capture.leads.submission import NewSubmission
from capture.spool import SpoolError, get_spool
from capture.web.forms import Checked, check_submission
from capture.web.links import DownloadClaim, LinkExpired, LinkInvalid, read_download, sign_download, valid_for
from capture.web.shells import fill, read_shell, with_base

THANKS_PAGE = "thanks/"
SUBMIT = "/submit"

bp = Blueprint("capture", __name__)

#: What each error means to a person; the same words go to the page script as form_error.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be understood. Reload the page and try again."),
    403: ("Not allowed", "This form cannot be sent from the page it was on."),
    404: ("Page not found", "There is nothing at this address. The link may be mistyped or incomplete."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    410: ("No longer available", "This resource is no longer available."),
    422: ("Resource not available", "This resource is not available any more."),
    413: ("Too much data", "The form sent more data than the service accepts. Shorten the fields and try again."),
    500: ("Something went wrong", "The service failed to answer. Please try again in a few minutes."),
    503: ("Please try again shortly",
          "Your details could not be saved just now. Nothing was stored; please submit again in a minute."),
}


def wants_json() -> bool:
    """The page script asks for JSON; browsers posting the form prefer HTML."""
    accept = request.headers.get("Accept", "").lower()
    if "json" not in accept and "application/*" not in accept:
        return False  # what every browser sends: no need to parse the header
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def own_origin() -> str:
    return origin_of(request.host_url) or ""


def allowed_origin(origin: str) -> bool:
    """Exact match only: https://site.example.com.evil.net is not https://site.example.com."""
    origin = origin.strip().lower()
    return origin == own_origin() or origin in current_app.config["ALLOWED_ORIGINS"]


def site_link(page_url: str = "") -> str:
    """A page of the built site, under SITE_URL (or on this host when it is empty)."""
    return (current_app.config["SITE_URL"] or "/") + page_url


def error_page(code: int, message: str | None = None, link_url: str | None = None,
               link_text: str | None = None) -> Response:
    title, default = ERRORS.get(code, ERRORS[500])
    message = message or default
    if wants_json():
        response = jsonify(ok=False, form_error=message)
    else:
        response = make_response(render_template(
            "error.html", title=title, message=message, link_url=link_url or site_link(),
            link_text=link_text or "Browse the resources"))
    response.status_code = code
    if code == 503:
        response.headers["Retry-After"] = "60"
    return response


def in_shell(region: str, page_url: str, title: str, content: str) -> str:
    """Rendered content inside the built page when SITE_DIR has it, else inside base.html."""
    shell = read_shell(current_app.config["SITE_DIR"], page_url)
    page = fill(shell, region, content) if shell else None
    if page is None:
        return render_template("page.html", title=title, content=Markup(content))
    return with_base(page, site_link(page_url))


def form_page(checked: Checked) -> Response:
    """The landing page again, with what the visitor typed and a message beside each field."""
    resource = checked.resource
    content = render_template(
        "leadgate/form.html", resource=resource, settings=get_catalog().settings, fields=BY_NAME,
        action=url_for(".submit", _external=True), values=checked.values,
        errors=checked.errors, form_error=checked.form_error)
    return make_response(in_shell("form", resource.url, resource.title, content), checked.status)


def private(response: Response) -> Response:
    """Pages and files behind a personal token: not cached, not indexed, token not leaked."""
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def invalid_answer(checked: Checked) -> Response:
    """Field messages as JSON for the script, or the form again for a person."""
    if wants_json():
        response = jsonify(ok=False, errors=checked.errors, form_error=checked.form_error)
        response.status_code = checked.status
        return response
    if checked.resource is None:
        return error_page(checked.status, checked.errors["resource_id"][0])
    return form_page(checked)


def from_request(checked: Checked) -> NewSubmission:
    """The checked fields plus what the request tells: the source, the browser, the network."""
    config = current_app.config
    return NewSubmission(**{
        **checked.submission,
        **source_fields(checked.submission, request.referrer, lambda referer: is_site_page(
            referer, own_origin(), config["ALLOWED_ORIGINS"], config["SITE_URL"])),
        "user_agent": request.user_agent.string,
        "ip_prefix": ip_prefix(request.remote_addr),
    })


@bp.post(SUBMIT, provide_automatic_options=False)
def submit() -> Response:
    origin = request.headers.get("Origin")
    if origin is not None and not allowed_origin(origin):
        abort(403)
    checked = check_submission(
        request.form, get_catalog(), known_text=lambda sha256: known_consent_text(get_store(), sha256),
        check_deliverability=current_app.config["CHECK_DELIVERABILITY"])
    if not checked.ok:
        return invalid_answer(checked)
    data = from_request(checked)
    try:
        get_spool().save(data)
    except SpoolError:
        return error_page(503)
    resource = checked.resource
    token = sign_download(current_app.config["SECRET_KEY"], DownloadClaim(data.uid, resource.id))
    thanks_url = url_for(".thanks", token=token, _external=True)
    if not wants_json():
        return redirect(thanks_url, 303)
    response = jsonify(
        ok=True, download_url=url_for(".download", token=token, _external=True),
        thanks_url=thanks_url, link_valid_for=valid_for(current_app.config["DOWNLOAD_MAX_AGE"]),
        resource={"id": resource.id, "title": resource.title})
    response.status_code = 201
    return response


@bp.route(SUBMIT, methods=["OPTIONS"])
def preflight() -> Response:
    """CORS preflight; the allowed origin itself is added by add_cors_headers."""
    response = current_app.response_class(status=204)
    response.headers["Allow"] = "POST, OPTIONS"
    if allowed_origin(request.headers.get("Origin", "")):
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Accept, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


@bp.after_request
def add_cors_headers(response: Response) -> Response:
    """Let allowed pages on other origins read the answers of /submit, errors included."""
    if request.path == SUBMIT:
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin and origin.strip().lower() in current_app.config["ALLOWED_ORIGINS"]:
            response.headers["Access-Control-Allow-Origin"] = origin
    return response


def open_link(token: str) -> tuple[DownloadClaim, Resource]:
    """The claim and resource behind a link, or abort with a page saying what is wrong."""
    try:
        claim = read_download(current_app.config["SECRET_KEY"], token,
                              current_app.config["DOWNLOAD_MAX_AGE"])
    except LinkInvalid:
        abort(404)
    except LinkExpired as e:
        resource = get_catalog().get(e.claim.resource_id)
        if resource is None:
            abort(error_page(410, "This download link has expired, and the resource is no longer available."))
        abort(error_page(
            410, f"This download link for “{resource.title}” has expired. "
                 "Links stay valid for a limited time; request the resource again to get a new one.",
            link_url=site_link(resource.url), link_text=f"Request {resource.title} again"))
    resource = get_catalog().get(claim.resource_id)
    if resource is None or not resource.file.is_file():
        abort(error_page(410, "This resource is no longer available."))
    return claim, resource


@bp.get("/thanks/<token>")
def thanks(token: str) -> Response:
    _, resource = open_link(token)
    content = render_template(
        "thanks_region.html", resource=resource, download_url=url_for(".download", token=token),
        link_valid_for=valid_for(current_app.config["DOWNLOAD_MAX_AGE"]), catalog_url=site_link())
    return private(make_response(in_shell("thanks", THANKS_PAGE, "Thank you", content)))


@bp.get("/download/<token>")
def download(token: str) -> Response:
    claim, resource = open_link(token)
    known = get_spool().record_download(
        claim.submission_uid, resource.id, user_agent=request.user_agent.string,
        ip_prefix=ip_prefix(request.remote_addr))
    if not known:
        abort(error_page(410, "This download link is no longer valid. Request the resource again.",
                         link_url=site_link(resource.url), link_text=f"Request {resource.title} again"))
    # Every request is a download to record, so no conditional or partial answers.
    return private(send_file(resource.file, mimetype="application/pdf", as_attachment=True,
                             download_name=resource.download_name, conditional=False, etag=False))


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; says nothing of the database (that is /readyz)."""
    return current_app.response_class("ok", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready for traffic: the database answers and has the schema this code needs."""
    problem = migrate.problem(get_store().engine)
    if problem is not None:
        response = jsonify(ok=False, database=problem)
        response.status_code = 503
    else:
        response = jsonify(ok=True, database="ok")
    response.headers["Cache-Control"] = "no-store"
    return response


def handle_http_error(e: HTTPException) -> Response:
    response = error_page(e.code or 500)
    if e.code == 405 and getattr(e, "valid_methods", None):
        response.headers["Allow"] = ", ".join(e.valid_methods)
    return response


def handle_database_error(e: SQLAlchemyError) -> Response:
    """Nothing half-stored: the session rolled back when the error left it. Say "try again"."""
    current_app.logger.exception("database error: %s", e)
    return error_page(503)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    for code in (400, 403, 404, 405, 413, 500):
        app.register_error_handler(code, handle_http_error)
    app.register_error_handler(SQLAlchemyError, handle_database_error)
