"""Who may use the workspace and the API, in a request: sessions, guards, CSRF and sign-in limits.

People sign in with email and password and get a session: a row on the server
(capture.staff.sessions) whose key is in the signed cookie, checked on every workspace
request, so signing out, a new password or a disabled account ends it for every copy of the
cookie. Scripts send ``Authorization: Bearer <token>``. Guard a page with
:func:`login_required` and an API route with :func:`api_token_required`. The accounts and
their rules are in capture.staff.accounts.

Failed sign-ins and failed API tokens are counted per client in Redis or the database
(capture.staff.limits), shared by every worker and host: past the limit, sign-in answers 429
whether the next password is right or not, and so does the API for every token. CSRF tokens
(Flask-WTF) guard every form post under ``/workspace/``; the public ``/submit`` form lives on
a static site on another origin where a session-bound token cannot work (see
capture.web.views).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Flask,
    Request,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_wtf.csrf import CSRFError, CSRFProtect

from capture.db.models import StaffSession, User
from capture.db.store import get_store
from capture.errors import WORKSPACE, Problem, answer
from capture.leads.attribution import ip_prefix
from capture.staff import limits, sessions
from capture.staff.accounts import ROLES, has_role, user_for_token
from capture.staff.limits import CountsUnavailable, LimitReached, client_key, get_counts

#: The blueprint of the workspace pages (capture.staff.workspace).
WORKSPACE_BLUEPRINT = "workspace"
#: The cookie's only sign-in value: the key of the session's row (capture.staff.sessions).
SESSION_KEY = "session_key"

TOO_MANY = ("Too many failed sign-ins from your network address. Wait a minute, then try again. "
            "If you have forgotten your password, ask an admin to set a new one.")
TOO_MANY_TOKENS = ("Too many requests with API tokens that are not valid came from your network "
                   "address. Wait a minute, then try again with a valid token.")
COUNTS_DOWN = ("Sign-in is not possible just now: the service cannot reach where it counts failed "
               "sign-ins (Redis or the database). Try again in a minute; if it keeps failing, whoever "
               "runs Leadgate will find why in the service's log.")

V = TypeVar("V", bound=Callable[..., Any])


def lifetime() -> sessions.Lifetime:
    """How long sessions last, from the settings."""
    return sessions.Lifetime(absolute=current_app.config["PERMANENT_SESSION_LIFETIME"],
                             idle=current_app.config["SESSION_IDLE_SECONDS"])


def sign_in(user: User) -> None:
    """Start a fresh session for the user (nothing carried over from before signing in; a
    session this browser had is ended)."""
    previous = session.get(SESSION_KEY)
    if isinstance(previous, str):
        sessions.end(get_store(), sessions.session_id(previous))
    session.clear()
    session[SESSION_KEY] = sessions.start(get_store(), user, lifetime(), request.user_agent.string,
                                          ip_prefix(request.remote_addr))
    session.permanent = True
    g.pop("user", None)
    g.pop("staff_session", None)


def sign_out() -> None:
    """End this session on the server (a copy of the cookie opens nothing after) and forget it."""
    staff_session = current_session()
    if staff_session is not None:
        sessions.end(get_store(), staff_session.id)
    session.clear()


def current_user() -> User | None:
    """The signed-in member of staff (from the session or an API token), or None."""
    if "user" not in g:
        # Nobody until the database says otherwise: a page that reports the database's
        # failure must not fail again asking who is signed in.
        g.user, g.staff_session = None, None
        key = session.get(SESSION_KEY)
        found = sessions.resume(get_store(), key, lifetime()) if isinstance(key, str) else None
        if found is None and key is not None:
            session.clear()
        if found is not None:
            g.staff_session, g.user = found
    return g.user


def current_session() -> StaffSession | None:
    """The session row of this request's sign-in (None for API tokens and visitors)."""
    current_user()
    return g.get("staff_session")


def safe_next(target: str | None) -> str | None:
    """A path on this service to return to after signing in; None for anything else."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def _guard(role: str | Callable[..., Any] | None, refusal: Callable[[str | None], Any]) -> Any:
    """A view decorator that answers ``refusal(role)`` instead of the view when it is not None.

    Called with a view instead of a role (``@login_required`` bare), it decorates it at once.
    """
    if callable(role):
        return _guard(None, refusal)(role)
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view: V) -> V:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            refused = refusal(role)
            return view(*args, **kwargs) if refused is None else refused
        return guarded  # type: ignore[return-value]
    return decorate


def login_required(role: str | Callable[..., Any] | None = None) -> Any:
    """Guard a workspace view: anonymous visitors go to the sign-in page, other roles get 403.

    ``@login_required``, ``@login_required()`` and ``@login_required(role="admin")`` all work.
    """
    return _guard(role, _session_refusal)


def api_token_required(role: str | Callable[..., Any] | None = None) -> Any:
    """Guard an API view: ``Authorization: Bearer <token>`` of a live token, else 401 JSON.

    Like :func:`login_required`, usable bare or with a role; a wrong role answers 403 JSON.
    The token's account is in ``g.user`` for the view.
    """
    return _guard(role, _token_refusal)


def _session_refusal(role: str | None) -> Response | None:
    user = current_user()
    if user is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("workspace.login", next=target))
    if not has_role(user, role):
        return answer(Problem(403, f"Your account ({user.role}) cannot open this page; it needs {role}."))
    return None


def _token_refusal(role: str | None) -> Response | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return answer(Problem(401, headers={"WWW-Authenticate": 'Bearer realm="leadgate"'}))
    client = client_key(request.remote_addr)
    try:
        get_counts().check_tokens(client)
    except LimitReached as e:
        return answer(Problem(429, TOO_MANY_TOKENS, headers={"Retry-After": str(e.retry_after)}))
    except CountsUnavailable as e:
        current_app.logger.error("API token refused: the failed token counts cannot be reached: %s", e)
        return answer(Problem(503, "The API cannot check tokens just now. Try again in a minute.",
                              headers={"Retry-After": "60"}))
    user = user_for_token(get_store(), token.strip())
    if user is None:
        try:
            get_counts().token_failed(client)
        except CountsUnavailable as e:
            # The 401 stands; the next request's check refuses while the counts are down.
            current_app.logger.error("a failed API token was not counted: %s", e)
        return answer(Problem(401, "This API token is not valid, or has been revoked.", headers={
            "WWW-Authenticate": 'Bearer realm="leadgate", error="invalid_token"'}))
    if not has_role(user, role):
        return answer(Problem(403, f"This API token's account may not do this (it needs {role})."))
    g.user = user
    return None


def _failed(response: Response) -> bool:
    """The sign-in page answers 422 when it refuses the credentials."""
    return response.status_code == 422


def limit_failed_sign_ins(view: V) -> V:
    """Refuse sign-in POSTs (429) from a client with too many recent failures.

    The attempt is counted before the view checks the password, and given back when the view
    signs the person in: a burst of requests on several workers cannot check more passwords
    than the limit, and signing in successfully never uses it up.
    """
    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        if request.method != "POST":
            return view(*args, **kwargs)
        try:
            attempt = get_counts().sign_in(request.form.get("email", ""), client_key(request.remote_addr))
        except LimitReached as e:
            return _too_many(e.retry_after)
        except CountsUnavailable as e:
            current_app.logger.error("sign-in refused: the failed sign-in counts cannot be reached: %s", e)
            return answer(Problem(503, COUNTS_DOWN, title="Sign-in unavailable",
                                  headers={"Retry-After": "60"}))
        response = make_response(view(*args, **kwargs))
        if not _failed(response):
            attempt.succeeded()
        return response
    return limited  # type: ignore[return-value]


def _csrf_refused(e: CSRFError) -> Response:
    return answer(Problem(400, "This form has expired or did not come from the workspace. "
                               "Reload the page and try again.", title="Form expired"))


def _too_many(retry_after: int) -> Response:
    return answer(Problem(429, TOO_MANY, title="Too many sign-in attempts",
                          link=(url_for("workspace.login"), "Back to sign-in"),
                          headers={"Retry-After": str(retry_after)}))


class WorkspaceSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened only for the workspace, which alone uses them.

    Flask opens the session of every request; for a form post that is a signing serializer
    built and the cookies parsed for nothing (docs/performance.md). Elsewhere ``session`` is Flask's NullSession: reading it finds it
    empty, writing to it raises.
    """

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if not request.path.startswith(WORKSPACE):
            return self.make_null_session(app)
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    """Sign-in limits, sessions and CSRF (workspace only) and the pages for their refusals."""
    limits.init_app(app)
    app.session_interface = WorkspaceSessions()
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf = CSRFProtect(app)

    @app.before_request
    def protect_workspace() -> None:
        if request.path.startswith(WORKSPACE):
            csrf.protect()

    app.register_error_handler(CSRFError, _csrf_refused)
