"""What each role may do: one table, read by every guard of the workspace and the API.

- ``sales`` find and work leads: read them, move them between stages, export them.
- ``marketing`` read everything (leads, the dashboard) and move nothing; they export contact
  data only while ``MARKETING_CAN_EXPORT`` is true (an admin's decision, default true).
- ``admin`` do all of that and read the export log (capture.staff.audit).
- Everyone reads the spam folder; sales and admin release or delete what it holds.
- Everyone reads the background jobs' page; admins retry a failed job.

Accounts and tokens are managed on the command line only (``leadgate user``, ``leadgate
token``): whoever can run those on the host holds the database and is an admin in fact. Only
admins erase a person from the workspace (capture.staff.privacy); a copy of a person's data is
an export of contact details (EXPORT). docs/security.md shows these decisions route by route, and
tests/test_roles.py checks every route against that table.

A view names the permission it needs under its sign-in guard::

    @bp.get("/workspace/audit")
    @auth.login_required
    @roles.needs(roles.EXPORT_LOG)

The account is the signed-in one or the API token's (``auth.current_user()``); a role without
the permission gets 403 in the asker's format (a page for staff, JSON for /api/).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request

from capture.db.models import User
from capture.errors import API, WORKSPACE, Problem
from capture.leads.stages import MOVER_ROLES, refusal_for_role
from capture.staff import auth

READ = "read"
MOVE = "move"
EXPORT = "export"
EXPORT_LOG = "export_log"
SPAM = "spam"
ERASE = "erase"
JOBS = "jobs"

#: Permission → the roles that have it.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    READ: ("sales", "marketing", "admin"),
    MOVE: MOVER_ROLES,
    EXPORT: ("sales", "marketing", "admin"),
    EXPORT_LOG: ("admin",),
    #: Release a post from the spam folder as a lead, or delete it: what becomes a lead is
    #: sales' call, as moving one is (capture.staff.spam).
    SPAM: ("sales", "admin"),
    #: Erase a person for good (capture.privacy.erasure): it cannot be undone.
    ERASE: ("admin",),
    #: Queue a failed background job again (capture.staff.jobs): running the service is an admin's.
    JOBS: ("admin",),
}
#: (permission, role) → the setting that must be true for the role to keep the permission.
SWITCHES: dict[tuple[str, str], str] = {(EXPORT, "marketing"): "MARKETING_CAN_EXPORT"}

V = TypeVar("V", bound=Callable[..., Any])


def may(user: User | None, permission: str) -> bool:
    """Whether this account may do this now (settings included); nobody signed in may not."""
    if user is None or user.role not in PERMISSIONS[permission]:
        return False
    switch = SWITCHES.get((permission, user.role))
    return switch is None or bool(current_app.config[switch])


def why_not(user: User, permission: str) -> str:
    """Why this account may not, in words for the person refused."""
    if permission == MOVE:
        return refusal_for_role(user.role) or "moving leads needs a sales or admin account"
    switch = SWITCHES.get((permission, user.role))
    if switch is not None and user.role in PERMISSIONS[permission]:
        return (f"an admin has turned exports off for {user.role} accounts "
                f"(LEADGATE_{switch}=false)")
    if permission == EXPORT_LOG:
        return "only admin accounts read the export log"
    if permission == ERASE:
        return "only admin accounts erase a person"
    if permission == SPAM:
        return "releasing or deleting held posts needs a sales or admin account"
    if permission == JOBS:
        return "only admin accounts retry failed jobs"
    return f"it needs one of these roles: {', '.join(PERMISSIONS[permission])}"


def needs(permission: str) -> Callable[[V], V]:
    """Refuse (403) an account without ``permission``; goes under login_required or
    api_token_required, which answer anonymous requests first."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: V) -> V:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = auth.current_user()
            if user is None:
                raise Problem(401)
            if not may(user, permission):
                reason = why_not(user, permission)
                if request.path.startswith(API):
                    raise Problem(403, f"This token belongs to {user.email}, a {user.role} account: {reason}.")
                raise Problem(403, f"Your account ({user.role}) cannot do this: {reason}.")
            return view(*args, **kwargs)
        return guarded  # type: ignore[return-value]
    return decorate


def page_permissions() -> dict[str, Any]:
    """``may("export")`` in workspace templates: a page shows only what its reader may use."""
    if not request.path.startswith(WORKSPACE):
        return {}
    return {"may": lambda permission: may(auth.current_user(), permission)}


def init_app(app: Flask) -> None:
    app.context_processor(page_permissions)
