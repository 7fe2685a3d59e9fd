"""Staff accounts and tokens as people use them: the CLI, the sign-in page, scripts with a token."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from select import select as readable

import pytest
from flask import g
from sqlalchemy import select
from staff import CSRF_FIELD, EMAIL, PASSWORD, add_user, csrf_token, sign_in, signed_in

from capture import create_app
from capture.staff.auth import api_token_required, login_required
from capture.db.models import ApiToken, User

OTHER_NETWORK = {"REMOTE_ADDR": "198.51.100.7"}
LEADGATE = str(Path(sys.executable).parent / "leadgate")


def users(store) -> list[User]:
    with store.read() as s:
        return list(s.scalars(select(User)))


# --- Accounts from the command line ----------------------------------------------------------

def test_add_user_then_sign_in_and_out(runner, client):
    result = add_user(runner, "Sam.Sales@Example.com", "sales")
    assert result.exit_code == 0, result.output
    assert result.output == "Added sam.sales@example.com (sales).\n"

    response = sign_in(client, "SAM.SALES@example.com")
    assert response.status_code == 303
    assert response.headers["Location"] == "/workspace/"
    page = client.get("/workspace/").get_data(as_text=True)
    assert "Signed in as sam.sales@example.com (sales)" in page

    response = client.post("/workspace/logout", data={"csrf_token": csrf_token(client, "/workspace/")})
    assert response.status_code == 303
    assert response.headers["Location"] == "/workspace/login"
    after = client.get("/workspace/")
    assert after.status_code == 302
    assert after.headers["Location"].startswith("/workspace/login")


@pytest.fixture
def leadgate_env(database_url, content_dir, tmp_path) -> dict[str, str]:
    """The environment of `leadgate` run as a process, on the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADGATE_")}
    return {**env, "LEADGATE_DATABASE_URL": database_url, "LEADGATE_CONTENT_DIR": str(content_dir),
            "LEADGATE_INSTANCE_PATH": str(tmp_path / "instance")}


def on_a_terminal(args: list[str], env: dict[str, str], answers: list[str]) -> tuple[int, str]:
    """`leadgate ARGS` on a pseudo-terminal, as a person types: each answer after its prompt,
    then Ctrl+D at any further prompt. Returns the exit code and what the terminal showed."""
    prompts = (b"Password:", b"Repeat for confirmation:")
    main, terminal = pty.openpty()
    # A session of its own: no controlling terminal, so getpass asks on standard input, the pty.
    process = subprocess.Popen([LEADGATE, *args], stdin=terminal, stdout=terminal, stderr=terminal,
                               env=env, start_new_session=True)
    os.close(terminal)
    shown, typed = b"", 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if not readable([main], [], [], 0.1)[0]:
                continue
            try:
                chunk = os.read(main, 1024)
            except OSError:  # EIO: the command has closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if sum(shown.count(p) for p in prompts) > typed:
                # The next answer; once they are all given, Ctrl+D, as a person who gives up.
                os.write(main, answers[typed].encode() + b"\n" if typed < len(answers) else b"\x04")
                typed += 1
    finally:
        os.close(main)
    return process.wait(timeout=30), shown.decode().replace("\r\n", "\n")


@pytest.mark.slow  # a `leadgate` process of its own
def test_password_is_asked_twice_and_hashed(leadgate_env, store):
    code, shown = on_a_terminal(["user", "add", EMAIL, "--role", "admin"], leadgate_env,
                                [PASSWORD, PASSWORD])
    assert code == 0, shown
    assert "Password:" in shown and "Repeat for confirmation:" in shown
    assert f"Added {EMAIL} (admin)." in shown
    assert PASSWORD not in shown
    [user] = users(store)
    assert user.role == "admin"
    assert user.password_hash.startswith("scrypt:")
    assert PASSWORD not in user.password_hash


@pytest.mark.slow  # a `leadgate` process of its own
def test_passwords_that_differ_add_nobody(leadgate_env, store):
    code, shown = on_a_terminal(["user", "add", EMAIL, "--role", "sales"], leadgate_env,
                                ["first-password-1", "second-password-2"])
    assert code == 1
    assert "Error: The two entered values do not match." in shown
    assert shown.rstrip().endswith("Aborted!")
    assert users(store) == []


@pytest.mark.slow  # a `leadgate` process of its own
@pytest.mark.parametrize("args", [["user", "add", EMAIL, "--role", "sales"], ["user", "password", EMAIL]])
def test_a_piped_password_needs_password_stdin(leadgate_env, runner, store, args):
    if args[1] == "password":
        assert add_user(runner).exit_code == 0
    before = [(u.email, u.password_hash) for u in users(store)]
    result = subprocess.run([LEADGATE, *args], env=leadgate_env, input="new-password-123\n" * 2,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "Error: standard input is not a terminal, so the password cannot be asked for: pass "
        "--password-stdin to read it from the first line of standard input."]
    assert [(u.email, u.password_hash) for u in users(store)] == before


@pytest.mark.parametrize(("email", "role", "password", "message"), [
    ("not-an-email", "sales", PASSWORD, "'not-an-email' is not an email address"),
    (EMAIL, "boss", PASSWORD, "Unknown role 'boss': use one of sales, marketing, admin."),
    (EMAIL, "sales", "short-pass", "The password must be at least 12 characters long (this one has 10)."),
    (EMAIL, "sales", " padded password ", "The password must not start or end with a space."),
])
def test_user_add_refuses_with_a_reason(runner, store, email, role, password, message):
    result = add_user(runner, email, role, password)
    assert result.exit_code == 1
    assert f"Error: {message}" in result.output
    assert users(store) == []


def test_one_account_per_address(runner):
    assert add_user(runner).exit_code == 0
    again = add_user(runner, EMAIL.upper(), "admin")
    assert again.exit_code == 1
    assert "There is already an account for sam.sales@example.com." in again.output


def test_user_list(runner):
    add_user(runner, "mia@example.com", "marketing")
    add_user(runner, "ada@example.com", "admin")
    lines = runner.invoke(args=["user", "list"]).output.splitlines()
    assert [line.split()[:2] for line in lines] == [["ada@example.com", "admin"],
                                                   ["mia@example.com", "marketing"]]


# --- Signing in ------------------------------------------------------------------------------

@pytest.mark.parametrize(("email", "password", "message"), [
    (EMAIL, "wrong password!", "Wrong email or password."),
    ("nobody@example.com", PASSWORD, "Wrong email or password."),
    ("not an address", PASSWORD, "Wrong email or password."),
    ("", PASSWORD, "Enter your email address."),
    (EMAIL, "", "Enter your password."),
])
def test_sign_in_refused_with_a_message(runner, client, email, password, message):
    add_user(runner)
    response = sign_in(client, email, password)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert f'value="{email}"' in page  # what was typed stays, the password does not
    assert client.get("/workspace/").status_code == 302


def test_disabled_account_cannot_sign_in_and_its_session_ends(runner, client):
    signed_in(client, runner)
    assert runner.invoke(args=["user", "disable", EMAIL]).output == f"{EMAIL} disabled.\n"
    assert client.get("/workspace/").status_code == 302
    refused = sign_in(client)
    assert refused.status_code == 422
    assert "This account is disabled" in refused.get_data(as_text=True)
    runner.invoke(args=["user", "enable", EMAIL])
    assert sign_in(client).status_code == 303


def test_new_password_ends_other_sessions(runner, client, make_app):
    signed_in(client, runner)
    result = runner.invoke(args=["user", "password", EMAIL, "--password-stdin"],
                           input="a new long password\n")
    assert result.output == f"New password set for {EMAIL}.\n"
    assert client.get("/workspace/").status_code == 302
    assert sign_in(client).status_code == 422
    assert sign_in(client, password="a new long password").status_code == 303
    short = runner.invoke(args=["user", "password", EMAIL, "--password-stdin"], input="short\n")
    assert "Error: The password must be at least 12 characters long" in short.output


def test_sign_in_returns_to_the_page_asked_for(runner, client):
    add_user(runner)
    response = client.get("/workspace/?q=acme")
    assert response.status_code == 302
    assert response.headers["Location"] == "/workspace/login?next=/workspace/?q%3Dacme"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/workspace/?q=acme"' in page
    token = csrf_token(client)
    done = client.post("/workspace/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token,
                                                 "next": "/workspace/?q=acme"})
    assert done.headers["Location"] == "/workspace/?q=acme"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/",
                                    "javascript:alert(1)"])
def test_sign_in_never_sends_people_to_another_site(runner, client, target):
    add_user(runner)
    token = csrf_token(client)
    done = client.post("/workspace/login", data={"email": EMAIL, "password": PASSWORD,
                                                 "csrf_token": token, "next": target})
    assert done.headers["Location"] == "/workspace/"


def test_session_cookie_is_http_only_and_same_site(runner, client):
    add_user(runner)
    cookie = sign_in(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_secure_behind_https(make_app, monkeypatch):
    monkeypatch.setenv("LEADGATE_SESSION_COOKIE_SECURE", "true")
    app = make_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    add_user(app.test_cli_runner())
    client = app.test_client()
    page = client.get("/workspace/login", base_url="https://localhost")
    assert "; Secure" in page.headers["Set-Cookie"]
    token = CSRF_FIELD.search(page.get_data(as_text=True)).group(1)
    # Over HTTPS Flask-WTF also wants a Referer from this host.
    response = client.post("/workspace/login", base_url="https://localhost",
                           headers={"Referer": "https://localhost/workspace/login"},
                           data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303
    assert "; Secure" in response.headers["Set-Cookie"]


# --- CSRF ------------------------------------------------------------------------------------

def test_staff_forms_without_a_csrf_token_are_refused(runner, client):
    add_user(runner)
    refused = client.post("/workspace/login", data={"email": EMAIL, "password": PASSWORD})
    assert refused.status_code == 400
    assert "This form has expired or did not come from the workspace." in refused.get_data(as_text=True)
    forged = client.post("/workspace/login", data={"email": EMAIL, "password": PASSWORD,
                                                   "csrf_token": "forged"})
    assert forged.status_code == 400

    assert sign_in(client).status_code == 303
    assert client.post("/workspace/logout").status_code == 400
    assert client.get("/workspace/").status_code == 200  # still signed in


def test_public_form_needs_no_csrf_token(client, form_post):
    assert client.post("/submit", data=form_post()).status_code == 303


# --- Failed sign-ins are rate limited --------------------------------------------------------

def test_five_failures_for_one_address_lock_it_for_a_minute(runner, client):
    add_user(runner)
    for _ in range(5):
        assert sign_in(client, password="wrong password!").status_code == 422
    locked = sign_in(client)  # even the right password waits now
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    assert int(locked.headers["Retry-After"]) <= 60
    assert sign_in(client, environ_base=OTHER_NETWORK).status_code == 303


def test_successful_sign_ins_do_not_count(runner, client):
    add_user(runner)
    for _ in range(8):
        assert sign_in(client).status_code == 303
        client.post("/workspace/logout", data={"csrf_token": csrf_token(client, "/workspace/")})


def test_twenty_failures_from_one_network_address_stop_it(runner, client):
    add_user(runner)
    for n in range(20):
        assert sign_in(client, f"guess{n}@example.com", "wrong password!").status_code == 422
    assert sign_in(client).status_code == 429
    assert sign_in(client, environ_base=OTHER_NETWORK).status_code == 303


# --- Every workspace and API route is closed to anonymous visitors ---------------------------

def test_every_workspace_and_api_route_refuses_anonymous_visitors(app, client):
    token = csrf_token(client)
    checked = set()
    for rule in app.url_map.iter_rules():
        # The sign-in page, its stylesheet and the API's description (no data) are for anyone.
        if not rule.rule.startswith(("/workspace", "/api/")) or rule.endpoint in (
                "workspace.login", "workspace.static", "openapi.openapi"):
            continue
        _, url = rule.build({name: "1" for name in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            data = None if method == "GET" else {"csrf_token": token}
            response = client.open(url, method=method, data=data)
            if rule.rule.startswith("/api/"):
                assert response.status_code == 401, (method, url)
                assert response.get_json()["ok"] is False
            else:
                assert response.status_code == 302, (method, url)
                assert response.headers["Location"].startswith("/workspace/login"), (method, url)
            checked.add(rule.endpoint)
    assert {"workspace.leads", "workspace.lead", "workspace.logout"} <= checked


# --- Roles and API tokens --------------------------------------------------------------------

@pytest.fixture
def guarded_app(make_app):
    """The app plus two routes that exist only in this test: one for admins, one for tokens."""
    app = make_app()

    @app.get("/workspace/admin-only")
    @login_required(role="admin")
    def admin_only():
        return "admin page"

    @app.get("/api/whoami")
    @api_token_required
    def whoami():
        return {"email": g.user.email}

    @app.get("/api/marketing-only")
    @api_token_required(role="marketing")
    def marketing_only():
        return {"ok": True}

    return app


def test_roles(guarded_app):
    runner, client = guarded_app.test_cli_runner(), guarded_app.test_client()
    signed_in(client, runner, "sam@example.com", "sales")
    refused = client.get("/workspace/admin-only")
    assert refused.status_code == 403
    assert "Your account (sales) cannot open this page; it needs admin." in refused.get_data(as_text=True)
    admin = guarded_app.test_client()
    signed_in(admin, runner, "ada@example.com", "admin")
    assert admin.get("/workspace/admin-only").get_data(as_text=True) == "admin page"


def create_token(runner, email: str = EMAIL, *args: str) -> str:
    result = runner.invoke(args=["token", "create", email, *args])
    assert result.exit_code == 0, result.output
    assert "shown only once" in result.stderr
    return result.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_create_list_use_and_revoke(guarded_app):
    runner, client = guarded_app.test_cli_runner(), guarded_app.test_client()
    add_user(runner)
    token = create_token(runner, EMAIL, "--name", "CRM sync")
    assert token.startswith("lg_") and len(token) > 40

    [line] = runner.invoke(args=["token", "list"]).output.splitlines()
    assert line.startswith(f"1  {token[:9]}…  {EMAIL}  CRM sync  created ")
    assert token not in line
    assert line.endswith("used never")

    response = client.get("/api/whoami", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json() == {"email": EMAIL}
    [line] = runner.invoke(args=["token", "list"]).output.splitlines()
    assert "used never" not in line

    assert runner.invoke(args=["token", "revoke", "1"]).output == "Token 1 revoked.\n"
    refused = client.get("/api/whoami", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.get_json() == {"ok": False, "title": "Sign-in needed",
                                  "error": "This API token is not valid, or has been revoked."}
    assert " revoked " in runner.invoke(args=["token", "list"]).output


def test_tokens_are_stored_as_hashes(guarded_app):
    runner = guarded_app.test_cli_runner()
    add_user(runner)
    token = create_token(runner)
    with guarded_app.extensions["leadgate.store"].read() as s:
        [row] = s.scalars(select(ApiToken))
    assert token not in (row.token_hash, row.prefix)
    assert len(row.token_hash) == 64


@pytest.mark.parametrize(("headers", "challenge"), [
    ({}, 'Bearer realm="leadgate"'),
    ({"Authorization": "Basic c2FtOnNlY3JldA=="}, 'Bearer realm="leadgate"'),
    ({"Authorization": "Bearer "}, 'Bearer realm="leadgate"'),
    ({"Authorization": "Bearer lg_not-a-real-token"}, 'Bearer realm="leadgate", error="invalid_token"'),
])
def test_api_without_a_valid_token_answers_401(guarded_app, headers, challenge):
    response = guarded_app.test_client().get("/api/whoami", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == challenge
    assert response.get_json()["ok"] is False


def test_api_refuses_tokens_of_disabled_accounts_and_other_roles(guarded_app):
    runner, client = guarded_app.test_cli_runner(), guarded_app.test_client()
    add_user(runner)
    token = create_token(runner)
    assert client.get("/api/marketing-only", headers=bearer(token)).status_code == 403
    runner.invoke(args=["user", "disable", EMAIL])
    assert client.get("/api/whoami", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize(("args", "message"), [
    (["token", "create", "nobody@example.com"],
     "There is no account for nobody@example.com (see `leadgate user list`)."),
    (["token", "revoke", "99"], "There is no token 99 (see `leadgate token list`)."),
    (["user", "disable", "nobody@example.com"], "There is no account for nobody@example.com"),
    (["user", "password", "nobody@example.com", "--password-stdin"],
     "There is no account for nobody@example.com (see `leadgate user list`)."),
])
def test_token_and_user_commands_name_what_is_missing(runner, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert message in result.output


def test_settings_from_the_environment(monkeypatch, content_dir, tmp_path):
    monkeypatch.setenv("LEADGATE_RATELIMIT_STORAGE_URI", "memory://")
    monkeypatch.setenv("LEADGATE_PERMANENT_SESSION_LIFETIME", "3600")
    app = create_app({"TESTING": True, "SECRET_KEY": "k" * 32, "CONTENT_DIR": str(content_dir),
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert app.permanent_session_lifetime.total_seconds() == 3600
    assert app.config["SESSION_COOKIE_SECURE"] is False
