"""Issue 12's "done when", as a new user meets it: email turned on in the demo with a local SMTP
server; a visitor gets the resource by email, confirms, unsubscribes with one click; then the
person exports and erases themselves, and the ledger showed every step.

`leadgate serve --demo` runs in a child process with its own instance folder (database, secret
key, spool), and its own worker sends: nothing here runs a Worker. The SMTP server is aiosmtpd on
127.0.0.1 (tests/mailsink.py). The commands run as a user types them, with the demo's settings.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest

from capture.catalog import load_catalog
from live import BIN, ROOT, ChildServer, free_port
from mailsink import Sink, running_sink

pytestmark = pytest.mark.slow

#: A person takes longer than this to fill the form in; the test waits it out.
FORM_MIN_SECONDS = 1
SENDER = "Demo Marketing <hello@example.com>"
ADDRESS = "nia.okafor@example.com"
RESOURCE = "telling-leads-from-prospects"
TITLE = "Telling leads from prospects: a field guide for marketing and sales"
#: The worker's poll interval is 1 s; an email is in the sink within a few.
MAIL_WAIT = 20


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    yield from running_sink()


class Demo(ChildServer):
    """`leadgate serve --demo` with email on, and the `leadgate` commands beside it."""

    def __init__(self, workdir: Path, sink: Sink):
        self.instance = workdir / "instance"
        port = free_port()
        # Only what a user would export in their shell: no secret key, no database URL (the demo's
        # own, in the instance folder), no base URL (the demo's address).
        settings = {"LEADGATE_INSTANCE_PATH": str(self.instance), "LEADGATE_SMTP_URL": sink.url,
                    "LEADGATE_MAIL_FROM": SENDER, "LEADGATE_EMAIL_DELIVERY": "true",
                    "LEADGATE_DOUBLE_OPT_IN": "true", "LEADGATE_FORM_MIN_SECONDS": str(FORM_MIN_SECONDS)}
        super().__init__([str(BIN / "leadgate"), "serve", "--demo", "--port", str(port),
                          "--site-dir", str(workdir / "site")], port, workdir / "serve.log", env=settings,
                         own_settings_only=True)

    def leadgate(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """A `leadgate` command as the user types it beside the demo, in the same shell."""
        return subprocess.run([str(BIN / "leadgate"), *args], env=self.env, cwd=self.cwd, capture_output=True,
                              text=True, check=check, timeout=60, input=input)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, sink: Sink) -> Iterator[Demo]:
    with Demo(tmp_path_factory.mktemp("email-demo"), sink) as server:
        yield server


class FormReader(HTMLParser):
    """The download form of a landing page: where it posts and what its fields hold."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        #: Each box's name and the value it sends when ticked.
        self.boxes: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and "data-leadgate-form" in a:
            self.action = a["action"]
        elif tag == "input" and a.get("name"):
            if a.get("type") == "checkbox":
                self.boxes[a["name"]] = a.get("value", "on")
            else:
                self.fields[a["name"]] = a.get("value", "")


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are answers to check (the form's 303), not to follow."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


OPENER = urllib.request.build_opener(NoRedirects)


def http(method: str, url: str, data: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request as a browser or a mail program sends it; redirects are not followed."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with OPENER.open(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as answer:
        return answer.code, dict(answer.headers), answer.read()


def text(html: bytes) -> str:
    """A page's words, tags dropped and spaces squeezed, as a reader sees them."""
    words = re.sub(r"<(script|style)\b.*?</\1>", " ", html.decode(), flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", " ", words).split())


def links(message: EmailMessage) -> list[str]:
    return re.findall(r"https?://\S+", message.get_body(("plain",)).get_content())


def mail_to(sink: Sink, address: str, subject: str) -> EmailMessage:
    """The email to address with this subject, once the demo's worker has sent it."""
    deadline = time.monotonic() + MAIL_WAIT
    while time.monotonic() < deadline:
        for message in sink.received:
            if message["To"].addresses[0].addr_spec.lower() == address.lower() and message["Subject"] == subject:
                return message
        time.sleep(0.1)
    raise AssertionError(f"no email {subject!r} to {address} within {MAIL_WAIT} s; the sink holds "
                         f"{[(m['To'], m['Subject']) for m in sink.received]}")


def request_resource(demo: Demo, address: str, first_name: str, last_name: str) -> str:
    """A visitor on a landing page: the form filled in, both boxes ticked, sent as a browser
    without scripts sends it after the page script fetched its token. Returns the thank-you
    page's address."""
    landing = f"{demo.url}/resources/{RESOURCE}/"
    status, _, page = http("GET", landing)
    assert status == 200
    form = FormReader()
    form.feed(page.decode())
    assert {"terms", "marketing_opt_in"} <= set(form.boxes)
    origin = {"Origin": demo.url, "Referer": landing}
    status, _, token = http("GET", f"{demo.url}/form-token", headers=origin)
    assert status == 200
    time.sleep(FORM_MIN_SECONDS + 0.2)  # reading the page, typing
    fields = {**form.fields, **form.boxes}  # both boxes ticked
    fields.update(email=address, first_name=first_name, last_name=last_name, company="Acme Analytics",
                  form_token=json.loads(token)["token"], landing_page=landing)
    status, headers, _ = http("POST", urllib.parse.urljoin(landing, form.action), fields, origin)
    assert status == 303, status
    return urllib.parse.urljoin(demo.url, headers["Location"])


def instance_files_holding(folder: Path, *needles: str) -> list[str]:
    """Files of the instance folder (the database, its WAL, the spool, …) holding any needle, in
    UTF-8 or in UTF-16 (how SQLite may keep text)."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            for needle in needles:
                if needle.lower().encode() in data or needle.lower().encode("utf-16-le") in data:
                    found.append(f"{path.name}: {needle}")
    return found


def test_with_email_on_in_the_demo_a_person_gets_the_resource_confirms_unsubscribes_exports_and_erases_themselves(
        demo, sink):
    status, _, page = http("GET", request_resource(demo, "Nia.Okafor@Example.com", "Nia", "Okafor"))
    thanks = text(page)
    assert status == 200
    assert f"We are sending the link to {TITLE} to N…@example.com" in thanks
    assert "/download/" not in thanks

    # The demo's own worker sends both: the resource, and the request to confirm the opt-in.
    delivery = mail_to(sink, ADDRESS, f"Your copy of {TITLE}")
    confirmation = mail_to(sink, ADDRESS, "Please confirm your subscription")
    assert delivery["From"].addresses[0].addr_spec == "hello@example.com"
    [download] = [url for url in links(delivery) if "/download/" in url]
    assert download.startswith(demo.url + "/")
    status, headers, pdf = http("GET", download)
    assert status == 200 and pdf.startswith(b"%PDF-") and headers["Content-Type"] == "application/pdf"

    # The confirmation link shows a page with a button (a mail scanner's GET confirms nothing).
    [confirm] = [url for url in links(confirmation) if "/confirm/" in url]
    status, _, page = http("GET", confirm)
    assert status == 200 and "Yes, subscribe me" in text(page)
    status, _, page = http("POST", confirm, {}, {"Origin": demo.url})
    assert status == 200 and "Subscription confirmed" in text(page)

    # RFC 8058: the mail program posts List-Unsubscribe=One-Click to the header's URL, no page.
    assert delivery["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = delivery["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(demo.url + "/unsubscribe/")
    status, _, answer = http("POST", unsubscribe, {"List-Unsubscribe": "One-Click"})
    assert (status, answer) == (200, b"Unsubscribed.\n")

    # The ledger shows every step: the exact words, agreed to, confirmed and withdrawn, and how.
    marketing_words = load_catalog(ROOT / "content").settings.marketing.text
    proof = demo.leadgate("consent", "proof", ADDRESS).stdout
    marketing = proof[proof.index("Marketing emails (marketing): withdrawn"):]
    assert re.findall(r"Z  (\w+)  version .*?method: (\w+)", marketing, re.DOTALL) == [
        ("given", "form"), ("confirmed", "confirmation_link"), ("withdrawn", "one_click")]
    assert marketing.count(f"words:  {marketing_words}\n") == 3
    assert "Address confirmed" in proof

    # Access: everything held, as JSON: the submission, the ledger with its words, the emails sent.
    held = json.loads(demo.leadgate("privacy", "export", ADDRESS).stdout)
    assert [(s["resource_id"], s["first_name"], s["last_name"]) for s in held["submissions"]] == [
        (RESOURCE, "Nia", "Okafor")]
    assert [(e["kind"], e["event"], e["method"], e["text"]) for e in held["consent_events"]
            if e["kind"] == "marketing"] == [("marketing", "given", "form", marketing_words),
                                              ("marketing", "confirmed", "confirmation_link", marketing_words),
                                              ("marketing", "withdrawn", "one_click", marketing_words)]
    assert [(e["kind"], e["message_id"]) for e in held["emails"] if e["sent_at"]] == [
        ("delivery", delivery["Message-ID"]), ("confirmation", confirmation["Message-ID"])]
    assert len(held["downloads"]) == 1

    # Erasure: then no lead to prove anything of, and no trace in the instance folder's files
    # (the database, its WAL, the spool, …) while the demo still runs.
    erased = demo.leadgate("privacy", "erase", ADDRESS, "--yes").stdout
    assert "Database files: clean." in erased
    gone = demo.leadgate("consent", "proof", ADDRESS, check=False)
    assert gone.returncode == 1 and f"There is no lead with the address {ADDRESS}" in gone.stderr
    assert demo.leadgate("privacy", "export", ADDRESS, check=False).returncode == 1
    assert (demo.instance / "leadgate.db").is_file() and (demo.instance / "leadgate.db-wal").is_file()
    assert instance_files_holding(demo.instance, ADDRESS, "Okafor") == []
