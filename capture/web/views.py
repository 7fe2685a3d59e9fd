"""The visitor's routes: the form post, the thank-you page and the download.

Views parse the request, call a named function and answer: people get HTML pages, the page
script (``Accept: application/json``) JSON in the shapes of docs/architecture.md; refusals are
Problems (capture.errors). What decides lives in capture.web.forms, capture.web.links,
capture.leads and capture.spool.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
)
from sqlalchemy.exc import SQLAlchemyError

from capture.catalog import Resource, get_catalog
from capture.db.store import get_store
from capture.errors import Problem, wants_json
from capture.fields import BY_NAME
from capture.leads.attribution import ip_prefix, is_site_page, origin_of, source_fields
from capture.leads.queries import known_consent_text
from capture.leads.submission import NewSubmission
from capture.mail.links import TokenExpired, masked, read_emailed, sign_emailed
from capture.shells import MESSAGE_PAGE, MESSAGE_REGION, in_site_shell, site_link
from capture.spam import limits, signals
from capture.spam.token import get_tokens
from capture.spool import SpoolError, get_spool
from capture.web.forms import Checked, check_submission
from capture.web.links import (
    DownloadClaim,
    LinkExpired,
    LinkInvalid,
    public_url,
    read_download,
    sign_download,
    valid_for,
)

SUBMIT = "/submit"
#: Where the page script gets a form token when it shows the form (capture.spam.token).
FORM_TOKEN = "/form-token"
#: The privacy notice's page on the site (content/privacy.md).
PRIVACY_URL = "privacy/"

bp = Blueprint("capture", __name__)
# The form's own 429 (capture.spam.limits), whatever the app answers for other refusals.
bp.register_error_handler(limits.TooManyPosts, limits.refused)


def own_origin() -> str:
    return origin_of(request.host_url) or ""


def allowed_origin(origin: str) -> bool:
    """Exact match only: https://site.example.com.evil.net is not https://site.example.com."""
    origin = origin.strip().lower()
    return origin == own_origin() or origin in current_app.config["ALLOWED_ORIGINS"]


def form_page(checked: Checked) -> Response:
    """The landing page again, with what the visitor typed and a message beside each field.

    Its hidden source fields carry what the post brought, or what the Referer recovers when
    the page script did not run: the corrected post comes from this page, at /submit, whose
    own address says nothing of the campaign. Its form token is a new one: the visitor filled
    the form in once already, so it counts as shown a minimum ago, and correcting one field
    is never too fast.
    """
    resource = checked.resource
    values = {**checked.values, **visit_source(checked.values),
              "form_token": get_tokens().issue(shown_before=current_app.config["FORM_MIN_SECONDS"])}
    catalog = get_catalog()
    content = render_template(
        "leadgate/form.html", resource=resource, settings=catalog.settings, fields=BY_NAME,
        action=public_url("capture.submit"), values=values,
        errors=checked.errors, form_error=checked.form_error,
        privacy_url=site_link(PRIVACY_URL) if catalog.has_privacy_notice else None)
    return make_response(in_site_shell("form", resource.url, resource.title, content), checked.status)


def private(response: Response) -> Response:
    """Pages and files behind a personal token: not cached, not indexed, token not leaked."""
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def invalid_answer(checked: Checked) -> Response:
    """Field messages as JSON for the script, or the form again for a person."""
    if wants_json():
        raise Problem(checked.status, checked.form_error, errors=checked.errors)
    if checked.resource is None:
        raise Problem(checked.status, checked.errors["resource_id"][0])
    return form_page(checked)


def site_page(url: str) -> bool:
    """A page of the site: this origin, an allowed one, or under SITE_URL."""
    config = current_app.config
    return is_site_page(url, own_origin(), config["ALLOWED_ORIGINS"], config["SITE_URL"])


def visit_source(posted: Mapping[str, str]) -> dict[str, str]:
    """The source fields of this visit: as posted, or recovered from a Referer of the site."""
    return source_fields(posted, request.referrer, site_page)


def from_request(checked: Checked) -> NewSubmission:
    """The checked fields plus what the request tells: the source, the browser, the network."""
    return NewSubmission(**{
        **checked.submission,
        **visit_source(checked.submission),
        # The page that showed the form, when the browser says and it is one of the site's.
        "page": request.referrer if request.referrer and site_page(request.referrer) else "",
        "user_agent": request.user_agent.string,
        "ip_prefix": ip_prefix(request.remote_addr),
    })


@bp.post(SUBMIT, provide_automatic_options=False)
def submit() -> Response:
    origin = request.headers.get("Origin")
    if origin is not None and not allowed_origin(origin):
        raise Problem(403)
    config = current_app.config
    checked = check_submission(
        request.form, get_catalog(), known_text=lambda sha256: known_consent_text(get_store(), sha256),
        check_deliverability=config["CHECK_DELIVERABILITY"],
        refuse_disposable=config["DISPOSABLE_EMAILS"] == "refuse")
    if not checked.ok:
        limits.get_limits().count()  # a post to fix counts for its address too
        return invalid_answer(checked)
    # A post held as spam is answered exactly as a clean one: a bot learns nothing.
    data = signals.judged(from_request(checked), site_page)
    try:
        get_spool().save(data)
    except SpoolError:
        raise Problem(503) from None
    resource = checked.resource
    secret = current_app.config["SECRET_KEY"]
    # With EMAIL_DELIVERY the link goes to the mailbox only: the answer names the address, masked.
    emailed = current_app.config["EMAIL_DELIVERY"]
    token = (sign_emailed(secret, resource.id, data.email) if emailed
             else sign_download(secret, DownloadClaim(data.uid, resource.id)))
    thanks_url = public_url("capture.thanks", token=token)
    if not wants_json():
        return redirect(thanks_url, 303)
    link = ({"emailed_to": masked(data.email)} if emailed
            else {"download_url": public_url("capture.download", token=token)})
    response = jsonify(
        ok=True, **link, thanks_url=thanks_url, link_valid_for=valid_for(current_app.config["DOWNLOAD_MAX_AGE"]),
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


@bp.get(FORM_TOKEN)
def form_token() -> Response:
    """A new form token for the form the page script is showing."""
    response = jsonify(token=get_tokens().issue(), min_seconds=current_app.config["FORM_MIN_SECONDS"])
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.after_request
def add_cors_headers(response: Response) -> Response:
    """Let allowed pages on other origins read the answers of /submit (errors included) and
    their form tokens."""
    if request.path in (SUBMIT, FORM_TOKEN):
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
        raise Problem(404) from None
    except LinkExpired as e:
        resource = get_catalog().get(e.claim.resource_id)
        if resource is None:
            raise Problem(410, "This download link has expired, and the resource is no longer available.") from None
        raise Problem(
            410, f"This download link for “{resource.title}” has expired. "
                 "Links stay valid for a limited time; request the resource again to get a new one.",
            link=(site_link(resource.url), f"Request {resource.title} again")) from None
    resource = get_catalog().get(claim.resource_id)
    if resource is None or not resource.file.is_file():
        raise Problem(410, "This resource is no longer available.")
    return claim, resource


def emailed_page(token: str) -> Response | None:
    """The thank-you page of a link sent by email (None: the token is a download token)."""
    try:
        emailed = read_emailed(current_app.config["SECRET_KEY"], token, current_app.config["DOWNLOAD_MAX_AGE"])
    except TokenExpired:
        raise Problem(410, "This page has expired. The link was sent by email.") from None
    if emailed is None:
        return None
    resource = get_catalog().get(emailed[0])
    if resource is None:
        raise Problem(410, "This resource is no longer available.")
    content = render_template(
        "thanks_region.html", resource=resource, emailed_to=emailed[1],
        link_valid_for=valid_for(current_app.config["DOWNLOAD_MAX_AGE"]), catalog_url=site_link())
    return private(make_response(in_site_shell(MESSAGE_REGION, MESSAGE_PAGE, "Thank you", content)))


@bp.get("/thanks/<token>")
def thanks(token: str) -> Response:
    emailed = emailed_page(token)
    if emailed is not None:
        return emailed
    _, resource = open_link(token)
    content = render_template(
        "thanks_region.html", resource=resource, emailed_to=None,
        # Absolute: the page's <base> is the site's thank-you page, which may be on another host.
        download_url=public_url("capture.download", token=token),
        link_valid_for=valid_for(current_app.config["DOWNLOAD_MAX_AGE"]), catalog_url=site_link())
    return private(make_response(in_site_shell(MESSAGE_REGION, MESSAGE_PAGE, "Thank you", content)))


@bp.get("/download/<token>")
def download(token: str) -> Response:
    claim, resource = open_link(token)
    if request.method == "HEAD":
        # A link checker or a preview asks what is there: the headers, nothing recorded.
        response = current_app.response_class(mimetype="application/pdf")
        response.content_length = resource.file.stat().st_size
        response.headers.set("Content-Disposition", "attachment", filename=resource.download_name)
        return private(response)
    try:
        known = get_spool().record_download(
            claim.submission_uid, resource.id, user_agent=request.user_agent.string,
            ip_prefix=ip_prefix(request.remote_addr))
    except SQLAlchemyError:
        current_app.logger.exception("download of submission %s not served", claim.submission_uid)
        raise Problem(503, "The download could not be started just now. "
                           "Nothing is wrong with your link: try it again in a minute.") from None
    if not known:
        raise Problem(410, "This download link is no longer valid. Request the resource again.",
                      link=(site_link(resource.url), f"Request {resource.title} again"))
    # Every request is a download to record, so no conditional or partial answers.
    return private(send_file(resource.file, mimetype="application/pdf", as_attachment=True,
                             download_name=resource.download_name, conditional=False, etag=False))


def refuse_a_known_flood() -> None:
    """Before every other hook, the body unread: an address or network this process saw go
    over a form limit is refused at once until its window ends (capture.spam.limits)."""
    if request.path == SUBMIT and request.method == "POST":
        limits.get_limits().check_known_refusal()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    # First of the app's hooks (capture.web.hygiene reads the whole body in its own).
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_a_known_flood)
