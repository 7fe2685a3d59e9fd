"""Staff as the tests act them: an account added with the CLI, a browser that signs in.

Test modules import it as ``from staff import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import re

from flask.testing import FlaskCliRunner, FlaskClient

PASSWORD = "correct horse battery"
EMAIL = "sam.sales@example.com"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_user(runner: FlaskCliRunner, email: str = EMAIL, role: str = "sales",
             password: str = PASSWORD):
    """`leadgate user add EMAIL --role ROLE --password-stdin`, as a script runs it."""
    return runner.invoke(args=["user", "add", email, "--role", role, "--password-stdin"],
                         input=password + "\n")


def csrf_token(client: FlaskClient, path: str = "/workspace/login") -> str:
    """The CSRF token a workspace page hands this browser."""
    page = client.get(path)
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def sign_in(client: FlaskClient, email: str = EMAIL, password: str = PASSWORD, **kwargs):
    """Fill in and send the sign-in form."""
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    return client.post("/workspace/login", data=data, **kwargs)


def signed_in(client: FlaskClient, runner: FlaskCliRunner, email: str = EMAIL, role: str = "sales") -> None:
    """An account added and signed in on this client."""
    assert add_user(runner, email, role).exit_code == 0
    assert sign_in(client, email).status_code == 303
