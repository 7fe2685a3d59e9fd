"""Security headers on every answer: a walk over the URL map, with and without a signed-in
member of staff, every error page (404, 405, 413, 415, 500, the workspace's), the built site's
pages and Material's inline scripts, and docs/nginx.conf sending the same."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from capture.site.csp import FILE, read_hashes, script_hashes
from capture.web.headers import CACHEABLE, visitor_csp
from staff import signed_in
from test_build import build_site

ROOT = Path(__file__).resolve().parent.parent
JSON = {"Accept": "application/json"}
NGINX = ROOT / "docs" / "nginx.conf"


def fetch(client, path: str):
    """GET path, its body read and the response closed (files are served from disk)."""
    response = client.get(path)
    response.get_data()
    response.close()
    return response


def directives(csp: str) -> dict[str, list[str]]:
    """A Content-Security-Policy as {directive: sources}."""
    parsed = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def assert_secure(response, *, framed_by: list[str] | None = None, cacheable: bool = False) -> None:
    """What every answer must carry; framed_by None means no frame at all."""
    headers = response.headers
    where = f"{response.request.method} {response.request.path} ({response.status_code})"
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") in ("strict-origin-when-cross-origin", "no-referrer",
                                              "same-origin"), where
    csp = headers.get("Content-Security-Policy")
    assert csp, where
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    policy = directives(csp)
    assert "script-src" in policy or policy.get("default-src") == ["'none'"], where
    expected = ["'none'"] if framed_by is None else ["'self'", *framed_by]
    assert policy["frame-ancestors"] == expected, where
    if not cacheable:
        assert "no-store" in headers.get("Cache-Control", ""), where


# --- A walk over the URL map -------------------------------------------------------------------

SAMPLE = {"token": "not-a-token", "lead_id": "1", "path": "no-such-page", "filename": "nothing.css",
          "user_id": "1", "token_id": "1", "held_id": "1", "id": "1", "session_id": "1"}


def every_route(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) for each rule of the app and each method it takes."""
    routes = []
    for rule in app.url_map.iter_rules():
        values = {name: SAMPLE.get(name, "1") for name in rule.arguments}
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted((rule.methods or set()) - {"OPTIONS"}):
            routes.append((rule.endpoint, method, path))
    return routes


@pytest.mark.parametrize("staff", [False, True], ids=["anonymous", "signed-in"])
def test_every_route_answers_with_the_security_headers(app, runner, staff):
    client = app.test_client()
    if staff:
        signed_in(client, runner, role="admin")
    routes = every_route(app)
    assert len(routes) > 15
    seen = set()
    for endpoint, method, path in routes:
        response = client.open(path, method=method, headers=JSON if method == "POST" else {})
        response.close()
        seen.add(response.status_code)
        cacheable = endpoint in CACHEABLE and endpoint != "site.page" and response.status_code < 400
        assert_secure(response, cacheable=cacheable)
    assert {200, 404} <= seen  # pages, and refusals of made-up ids and tokens


def test_the_workspace_and_api_keep_their_strict_policy(client, runner):
    signed_in(client, runner)
    for path in ("/workspace/", "/workspace/nowhere", "/api/leads.csv", "/workspace/leads.csv"):
        response = client.get(path)
        response.close()
        policy = directives(response.headers["Content-Security-Policy"])
        assert policy["default-src"] == ["'none'"] and "script-src" not in policy, path
        assert response.headers["X-Frame-Options"] == "DENY"
        assert_secure(response)


# --- Error pages ---------------------------------------------------------------------------------

@pytest.fixture
def failing_app(make_app):
    """An app whose /readyz fails inside: the 500 page, as a bug would produce it."""
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    def broken() -> None:
        raise RuntimeError("a bug")
    app.view_functions["health.readyz"] = broken
    return app


def test_error_pages_carry_the_headers(app, failing_app, form_post):
    client = app.test_client()
    answers = {
        404: client.get("/no-such-page"),
        405: client.get("/submit"),
        413: client.post("/submit", data=b"x" * (65 * 1024), content_type="application/x-www-form-urlencoded"),
        415: client.post("/submit", data=b"{}", content_type="application/json"),
        400: client.get("/healthz", headers={"Host": "evil.example"}),
        500: failing_app.test_client().get("/readyz"),
    }
    for status, response in answers.items():
        assert response.status_code == status
        assert_secure(response)


def test_the_workspace_error_pages_carry_the_headers(client, runner):
    answers = [client.get("/workspace/nowhere"),
               client.post("/workspace/login", data={"email": "x@example.com", "password": "x"}),  # no CSRF
               client.get("/workspace/", headers={"Host": "evil.example"})]
    signed_in(client, runner)
    answers.append(client.get("/workspace/leads/999999"))
    for response in answers:
        assert response.status_code >= 400
        assert_secure(response)
        assert response.headers["X-Robots-Tag"] == "noindex"


# --- Personal pages --------------------------------------------------------------------------

def test_personal_pages_are_never_stored_framed_or_referred(client, form_post):
    answer = client.post("/submit", data=form_post(), headers=JSON)
    assert_secure(answer)
    thanks = client.get(answer.get_json()["thanks_url"].removeprefix("http://localhost"))
    download = client.get(answer.get_json()["download_url"].removeprefix("http://localhost"))
    download.close()
    again = client.post("/submit", data=form_post(email="nope"))  # the form, with what was typed
    for response in (thanks, download, again):
        assert_secure(response)
    for response in (thanks, download):
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "private, no-store"
    assert again.status_code == 422 and again.headers["Cache-Control"] == "no-store"


def test_the_fallback_page_has_no_inline_style(client):
    page = client.get("/no-such-page").get_data(as_text=True)
    assert "<style" not in page and "style=" not in page
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)
    css = client.get(stylesheet)
    text = css.get_data(as_text=True)
    css.close()
    assert css.status_code == 200 and ".leadgate-form" in text
    assert "no-store" not in css.headers.get("Cache-Control", "")
    assert_secure(css, cacheable=True)


# --- The built site ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("headers")
    content = root / "content"
    shutil.copytree(ROOT / "content", content)
    return build_site(content, root / "site")


def test_the_build_hashes_every_inline_script_of_every_page(built_site):
    listed = set(read_hashes(built_site))
    found = set()
    for page in built_site.rglob("*.html"):
        found |= script_hashes(page.read_text(encoding="utf-8"))
    assert found and found == listed
    # Data blocks are not scripts: Material's configuration is not hashed.
    assert not script_hashes('<script id="__config" type="application/json">{"base": "."}</script>')


FRAMERS = ["https://partner.example.org", "https://news.example.net"]


def test_site_pages_may_be_framed_by_the_allowed_origins_only(make_app, built_site, form_post):
    client = make_app(SITE_DIR=str(built_site), FRAME_ANCESTORS=",".join(FRAMERS)).test_client()
    hashes = read_hashes(built_site)
    for path in ("/", "/resources/", "/resources/telling-leads-from-prospects/"):
        page = fetch(client, path)
        assert page.status_code == 200, path
        assert_secure(page, framed_by=FRAMERS, cacheable=True)
        assert "no-store" not in page.headers.get("Cache-Control", "")
        policy = directives(page.headers["Content-Security-Policy"])
        assert set(hashes) <= set(policy["script-src"])
        assert script_hashes(page.get_data(as_text=True)) <= set(policy["script-src"])
    # What the service renders in the site's shell is never framed, and its scripts still run.
    missing = client.get("/no-such-page")
    assert_secure(missing)
    assert script_hashes(missing.get_data(as_text=True)) <= set(
        directives(missing.headers["Content-Security-Policy"])["script-src"])
    assert fetch(client, f"/{FILE}").status_code == 404


def test_a_rebuild_s_hashes_are_read_again(make_app, built_site, tmp_path):
    site = Path(shutil.copytree(built_site, tmp_path / "site"))
    client = make_app(SITE_DIR=str(site)).test_client()
    before = fetch(client, "/").headers["Content-Security-Policy"]
    conf = site / FILE
    conf.write_text(conf.read_text().replace('";', " 'sha256-bmV3LXNjcmlwdA=='\";"))
    os.utime(conf, ns=(1, 1))  # a new stamp even within the file system's time resolution
    after = fetch(client, "/").headers["Content-Security-Policy"]
    assert "'sha256-bmV3LXNjcmlwdA=='" in after and "'sha256-bmV3LXNjcmlwdA=='" not in before


# --- docs/nginx.conf ---------------------------------------------------------------------------

def nginx_site_headers() -> dict[str, str]:
    """The add_header lines of nginx.conf's site location."""
    text = NGINX.read_text(encoding="utf-8")
    block = text[text.index("location / {"):]
    block = block[:block.index("}")]
    return dict(re.findall(r'add_header\s+(\S+)\s+"([^"]*)"\s+always;', block))


def test_nginx_conf_is_balanced_and_every_directive_ends():
    text = "\n".join(line.split("#", 1)[0] for line in NGINX.read_text(encoding="utf-8").splitlines())
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "''", text)  # quoted values may hold anything
    depth = 0
    for statement in re.split(r"(?<=[;{}])", text):
        statement = statement.strip()
        if not statement:
            continue
        depth += statement.count("{") - statement.count("}")
        assert depth >= 0 and statement.endswith((";", "{", "}")), statement
    assert depth == 0


def test_nginx_sends_the_service_s_headers_with_the_site(built_site):
    headers = nginx_site_headers()
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    text = NGINX.read_text(encoding="utf-8")
    assert f"include /srv/leadgate/site/{FILE};" in text
    hashes = read_hashes(built_site)
    # The service with nginx.conf's settings: BASE_URL https://www.example.com/, the site on the
    # same host (SITE_URL empty), no other framers.
    service = visitor_csp(hashes, "", "https://www.example.com/", [])
    nginx = headers["Content-Security-Policy"].replace("$leadgate_script_hashes", " ".join(hashes))
    assert directives(nginx) == directives(service)
