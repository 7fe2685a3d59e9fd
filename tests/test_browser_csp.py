"""The security headers in a real browser: headless Debian Chromium (Playwright) against
`leadgate serve`, watching the console for Content-Security-Policy violations while a visitor
opens a landing page, sends the form with the page script, opens the thank-you page and the
download, and staff sign in to the workspace. A hash missing for one of Material's inline
scripts, an inline style left in a template or a fetch the policy does not allow shows here."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from live import LiveServer

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STAFF_EMAIL = "csp.check@example.com"
STAFF_PASSWORD = "correct horse battery staple"

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError("Chromium is required on CI: .ci/run installs Debian's chromium package")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("csp")) as live:
        subprocess.run([live.leadgate, "user", "add", STAFF_EMAIL, "--role", "sales", "--password-stdin"],
                       input=STAFF_PASSWORD + "\n", env=live.env, cwd=live.cwd, text=True,
                       capture_output=True, check=True, timeout=60)
        yield live


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Violations(list):
    """Every CSP refusal the browser reports on a page, from the console and the DOM event."""

    def watch(self, page) -> None:
        page.on("console", lambda m: self.append(f"console: {m.text}")
                if "Content Security Policy" in m.text or "Refused to" in m.text else None)
        page.add_init_script("""
            document.addEventListener('securitypolicyviolation', e => console.error(
                'Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI));
        """)


def test_no_page_a_visitor_or_staff_sees_breaks_its_policy(server, browser):
    violations = Violations()
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    violations.watch(page)
    try:
        landing = f"{server.url}/resources/telling-leads-from-prospects/"
        response = page.goto(landing)
        assert "script-src" in response.headers["content-security-policy"]
        # Material's own scripts ran: the palette script sets the body's scheme attribute.
        page.wait_for_function("document.body.getAttribute('data-md-color-scheme') !== null")

        page.get_by_label("Work email").fill("csp.visitor@example.com")
        page.get_by_label("First name").fill("Cyd")
        page.locator("input[name=terms]").check()
        with page.expect_response(lambda r: r.url.endswith("/submit")) as posted:
            page.locator("form[data-leadgate-form] button[type=submit]").click()
        answer = posted.value.json()
        assert posted.value.status == 201, answer
        page.locator("a[href*='/download/']").wait_for(timeout=15_000)  # the script showed the link

        page.goto(answer["thanks_url"])
        assert "Thank you" in page.title()
        page.goto(f"{server.url}/no-such-page")  # an error in the site's shell

        page.goto(f"{server.url}/workspace/login")
        page.get_by_label("Email").fill(STAFF_EMAIL)
        page.get_by_label("Password").fill(STAFF_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/workspace/")
        page.goto(f"{server.url}/workspace/nowhere")
        page.wait_for_timeout(300)  # late reports of the last page
    finally:
        context.close()
    assert violations == []
