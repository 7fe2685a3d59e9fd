"""Who may use the workspace and the API, in a request: sessions, guards, CSRF and sign-in limits.

People sign in with email and password and get a session cookie (settings in
capture.config); scripts send ``Authorization: Bearer <token>``. Guard a page with
:func:`login_required` and an API route with :func:`api_token_required`. The accounts and
their rules are in capture.staff.accounts.

Failed sign-ins are counted by Flask-Limiter (storage ``RATELIMIT_STORAGE_URI``): after
:data:`SIGN_IN_LIMIT_PER_ACCOUNT` failures for one address from one network address, or
:data:`SIGN_IN_LIMIT_PER_CLIENT` from one network address, sign-in answers 429 until the
minute is over, whether the next password is right or not. CSRF tokens (Flask-WTF) guard
every form post under ``/workspace/``; the public ``/submit`` form lives on a static site on
another origin where a session-bound token cannot work (see capture.web.views).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Flask,
    Request,
    Response,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError, CSRFProtect

from capture.db.models import User
from capture.db.store import get_store
from capture.errors import WORKSPACE, Problem, answer
from capture.staff.accounts import ROLES, get_user, has_role, user_for_token

#: The blueprint of the workspace pages (capture.staff.workspace), the only one with rate limits.
WORKSPACE_BLUEPRINT = "workspace"
SESSION_USER = "user_id"
SESSION_PASSWORD = "password_mark"

SIGN_IN_LIMIT_PER_ACCOUNT = "5 per minute"
SIGN_IN_LIMIT_PER_CLIENT = "20 per minute"

TOO_MANY = ("Too many failed sign-ins from your network address. Wait a minute, then try again. "
            "If you have forgotten your password, ask an admin to set a new one.")

V = TypeVar("V", bound=Callable[..., Any])

#: One per process, configured per app by init_app (Flask-Limiter's app factory pattern);
#: only the sign-in view has limits.
limiter = Limiter(key_func=lambda: request.remote_addr or "unknown", headers_enabled=True)


def _password_mark(user: User) -> str:
    """Ties a session to the password it was opened with: a new password ends old sessions."""
    return hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:16]


def sign_in(user: User) -> None:
    """Start a fresh session for the user (nothing carried over from before signing in)."""
    session.clear()
    session[SESSION_USER] = user.id
    session[SESSION_PASSWORD] = _password_mark(user)
    session.permanent = True


def sign_out() -> None:
    session.clear()


def current_user() -> User | None:
    """The signed-in member of staff (from the session or an API token), or None."""
    if "user" not in g:
        # Nobody until the database says otherwise: a page that reports the database's
        # failure must not fail again asking who is signed in.
        g.user = None
        user_id = session.get(SESSION_USER)
        user = get_user(get_store(), user_id) if isinstance(user_id, int) else None
        if user is not None and (user.disabled or session.get(SESSION_PASSWORD) != _password_mark(user)):
            session.clear()
            user = None
        g.user = user
    return g.user


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
    user = user_for_token(get_store(), token.strip())
    if user is None:
        return answer(Problem(401, "This API token is not valid, or has been revoked.", headers={
            "WWW-Authenticate": 'Bearer realm="leadgate", error="invalid_token"'}))
    if not has_role(user, role):
        return answer(Problem(403, f"This API token's account may not do this (it needs {role})."))
    g.user = user
    return None


def _account_key() -> str:
    """Sign-in attempts are counted per network address and typed address together."""
    return f"{request.remote_addr or 'unknown'}|{request.form.get('email', '').strip().lower()[:254]}"


def _failed(response: Response) -> bool:
    """The sign-in page answers 422 when it refuses the credentials."""
    return response.status_code == 422


def limit_failed_sign_ins(view: V) -> V:
    """Refuse sign-in POSTs (429) from a client with too many recent failures."""
    per_account = limiter.limit(SIGN_IN_LIMIT_PER_ACCOUNT, key_func=_account_key, methods=["POST"],
                                deduct_when=_failed, scope="sign-in-account")
    per_client = limiter.limit(SIGN_IN_LIMIT_PER_CLIENT, methods=["POST"], deduct_when=_failed,
                               scope="sign-in-client")
    return per_client(per_account(view))


def _csrf_refused(e: CSRFError) -> Response:
    return answer(Problem(400, "This form has expired or did not come from the workspace. "
                               "Reload the page and try again.", title="Form expired"))


def _too_many(e: RateLimitExceeded) -> Response:
    return answer(Problem(429, TOO_MANY, title="Too many sign-in attempts",
                          link=(url_for("workspace.login"), "Back to sign-in")))


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


def _limit_the_workspace_only(app: Flask) -> None:
    """Flask-Limiter hooks every request of an app; run its hooks for the workspace alone.

    The sign-in page is the only one with limits, yet the limiter's three hooks were a large
    part of what the framework spent on each form post (docs/performance.md). They move from the app's scope to the workspace blueprint's in
    Flask's hook registries. A limit on a route outside the workspace needs them back.
    """
    registries = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    had = [list(registry.get(None, ())) for registry in registries]
    limiter.init_app(app)
    for registry, before in zip(registries, had):
        added = [hook for hook in registry.get(None, ()) if hook not in before]
        registry[None] = before
        registry.setdefault(WORKSPACE_BLUEPRINT, []).extend(added)


def init_app(app: Flask) -> None:
    """Rate limits, sessions and CSRF (workspace only) and the pages for their refusals."""
    _limit_the_workspace_only(app)
    app.session_interface = WorkspaceSessions()
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf = CSRFProtect(app)

    @app.before_request
    def protect_workspace() -> None:
        if request.path.startswith(WORKSPACE):
            csrf.protect()

    app.register_error_handler(CSRFError, _csrf_refused)
    app.register_error_handler(RateLimitExceeded, _too_many)
