"""Staff accounts and API tokens: the rules (addresses, passwords, roles, token hashing) and
their rows.

Roles are ``sales``, ``marketing`` and ``admin``; an admin passes every role check.
Passwords are hashed with werkzeug's default (scrypt). API tokens are 256 random bits, so a
plain SHA-256 of a token is enough to find it and reveals nothing; only that hash and a short
prefix (to recognise a token in ``leadgate token list``) are stored. The token itself is
shown once, when created.
"""

from __future__ import annotations

import functools
import hashlib
import secrets

import email_validator
from sqlalchemy import false, select
from werkzeug.security import check_password_hash, generate_password_hash

from capture.db.models import ApiToken, User, utcnow
from capture.db.store import AlreadyExists, Store
from capture.staff.sessions import end_all

ROLES = ("sales", "marketing", "admin")
PASSWORD_MIN = 12
#: Marks Leadgate tokens, so a secret scanner (or a person) can tell what leaked.
TOKEN_PREFIX = "lg_"
#: Characters of a token kept for display: the marker and 6 random characters.
TOKEN_DISPLAY = len(TOKEN_PREFIX) + 6

WRONG_CREDENTIALS = "Wrong email or password."
ACCOUNT_DISABLED = "This account is disabled. Ask an admin to enable it again."


class AuthError(ValueError):
    """A request about accounts or tokens that cannot be done; the message says why."""


def normalize_email(email: str) -> str:
    """The one spelling an account is stored and found under: normalized, lower case."""
    try:
        result = email_validator.validate_email(email.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as e:
        raise AuthError(f"{email.strip()!r} is not an email address: {e}") from None
    return result.normalized.lower()


def check_password_rules(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise AuthError(f"The password must be at least {PASSWORD_MIN} characters long "
                        f"(this one has {len(password)}).")
    if password.strip() != password:
        raise AuthError("The password must not start or end with a space.")


def add_user(store: Store, email: str, password: str, role: str) -> User:
    """A new staff account, with the password hashed."""
    if role not in ROLES:
        raise AuthError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    address = normalize_email(email)
    check_password_rules(password)
    try:
        return _insert_user(store, address, generate_password_hash(password), role)
    except AlreadyExists as e:
        raise AuthError(str(e)) from None


def account(store: Store, email: str) -> User:
    """The account for an address typed in any case; AuthError when there is none."""
    address = normalize_email(email)
    return _found(_user_by_email(store, address), address)


def active_account(store: Store, email: str) -> User:
    """The enabled account a command acts for (``--by``); AuthError when there is none."""
    user = account(store, email)
    if user.disabled:
        raise AuthError(f"the account {user.email} is disabled.")
    return user


def set_password(store: Store, email: str, password: str) -> User:
    """Give an account a new password; every session of the account ends with the old one."""
    check_password_rules(password)
    address = normalize_email(email)
    return _found(_update_user(store, address, password_hash=generate_password_hash(password)), address)


def set_disabled(store: Store, email: str, disabled: bool) -> User:
    """Disable (every session of the account ends) or enable an account."""
    address = normalize_email(email)
    return _found(_update_user(store, address, disabled=disabled), address)


def _found(user: User | None, address: str) -> User:
    if user is None:
        raise AuthError(f"There is no account for {address} (see `leadgate user list`).")
    return user


@functools.cache
def _unused_hash() -> str:
    """A hash to check against when the address is unknown, so both cases take as long."""
    return generate_password_hash(secrets.token_hex(16))


def authenticate(store: Store, email: str, password: str) -> User:
    """The account these credentials open; AuthError with the message to show otherwise."""
    if not email.strip():
        raise AuthError("Enter your email address.")
    if not password:
        raise AuthError("Enter your password.")
    try:
        user = _user_by_email(store, normalize_email(email))
    except AuthError:
        user = None
    if user is None:
        check_password_hash(_unused_hash(), password)
        raise AuthError(WRONG_CREDENTIALS)
    if not check_password_hash(user.password_hash, password):
        raise AuthError(WRONG_CREDENTIALS)
    if user.disabled:
        raise AuthError(ACCOUNT_DISABLED)
    return user


def has_role(user: User, role: str | None) -> bool:
    return role is None or user.role in (role, "admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, email: str, name: str = "") -> tuple[ApiToken, str]:
    """A new API token for an account: the stored row and the token, which is never shown again."""
    user = account(store, email)
    if user.disabled:
        raise AuthError(f"The account {user.email} is disabled: enable it before giving it a token.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = _insert_token(store, user.id, name.strip(), hash_token(token), token[:TOKEN_DISPLAY])
    return row, token


def user_for_token(store: Store, token: str) -> User | None:
    """The owner of a live token (and the token marked as used), or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return _use_token(store, hash_token(token))


# --- Rows ------------------------------------------------------------------------------------

def _insert_user(store: Store, email: str, password_hash: str, role: str) -> User:
    """A new account; AlreadyExists when the address has one."""
    with store.write() as s:
        if s.scalars(select(User.id).where(User.email == email)).first() is not None:
            raise AlreadyExists(f"There is already an account for {email}.")
        user = User(email=email, password_hash=password_hash, role=role, created_at=utcnow(),
                    disabled=False)
        s.add(user)
    return user


def users(store: Store) -> list[User]:
    with store.read() as s:
        return list(s.scalars(select(User).order_by(User.email)))


def get_user(store: Store, user_id: int) -> User | None:
    with store.read() as s:
        return s.get(User, user_id)


def _user_by_email(store: Store, email: str) -> User | None:
    with store.read() as s:
        return s.scalars(select(User).where(User.email == email)).one_or_none()


def _update_user(store: Store, email: str, *, disabled: bool | None = None,
                password_hash: str | None = None) -> User | None:
    """Disable or enable an account, or set its password; None when there is no account.

    A new password or disabling ends the account's sessions in the same transaction: no
    moment exists where the change is made and an old session still opens pages.
    """
    with store.write() as s:
        user = s.scalars(select(User).where(User.email == email)).one_or_none()
        if user is None:
            return None
        if disabled is not None:
            user.disabled = disabled
        if password_hash is not None:
            user.password_hash = password_hash
        if disabled or password_hash is not None:
            end_all(s, user.id)
    return user


def _insert_token(store: Store, user_id: int, name: str, token_hash: str, prefix: str) -> ApiToken:
    with store.write() as s:
        token = ApiToken(user_id=user_id, name=name, token_hash=token_hash, prefix=prefix,
                         created_at=utcnow())
        s.add(token)
    return token


def tokens(store: Store) -> list[tuple[ApiToken, str]]:
    """Every token with its owner's email, oldest first, revoked ones included."""
    with store.read() as s:
        return [(token, email) for token, email in s.execute(
            select(ApiToken, User.email).join(User).order_by(ApiToken.id))]


def revoke_token(store: Store, token_id: int) -> ApiToken | None:
    """Revoke once (a second revoke keeps the first time); None when there is no such token."""
    with store.write() as s:
        token = s.get(ApiToken, token_id)
        if token is not None and token.revoked_at is None:
            token.revoked_at = utcnow()
    return token


def _use_token(store: Store, token_hash: str) -> User | None:
    """The owner of a live token, noting when it was used; None when unknown, revoked or
    the owner is disabled."""
    with store.write() as s:
        row = s.execute(
            select(ApiToken, User).join(User)
            .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None),
                   User.disabled == false())
        ).one_or_none()
        if row is None:
            return None
        token, user = row
        token.last_used_at = utcnow()
    return user
