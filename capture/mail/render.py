"""Emails rendered from templates a marketer may override, and text made safe for headers.

The templates are ``capture/templates/mail/<kind>.txt`` and ``<kind>.html``; a file of the same
name in ``content/emails/`` wins (a Jinja ChoiceLoader), so a marketer changes the words
without touching the code (docs/email.md lists the variables). The plain-text template sets
the subject: ``{% set subject = "…" %}``. Whatever a template does, every email carries its
unsubscribe link and the postal address: when an overridden part leaves the link out, the
standard footer is added to it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

EXTENSION = "leadgate.mail.templates"
#: Where a marketer's templates are, in the content folder.
OVERRIDES = "emails"
BUILT_IN = Path(__file__).resolve().parent.parent / "templates" / "mail"
#: The subject when a template sets none.
SUBJECTS = {"delivery": "Your copy of {title}", "confirmation": "Please confirm your subscription"}
#: Line breaks, other control and format characters (bidi overrides, zero-width), and Unicode's
#: line and paragraph separators: nothing of these belongs in a header.
NOT_IN_HEADERS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+")
#: Longest text put in a header (the subject column holds 300).
HEADER_MAX = 250


def clean(value: str) -> str:
    """Text fit for a header: control characters and line breaks become spaces, runs of
    spaces one, and it is cut at HEADER_MAX."""
    return " ".join(NOT_IN_HEADERS.sub(" ", value or "").split())[:HEADER_MAX]


def environment(app: Flask) -> Environment:
    """The app's email templates (content/emails/ first), made once."""
    env = app.extensions.get(EXTENSION)
    if env is None:
        env = Environment(
            loader=ChoiceLoader([FileSystemLoader(Path(app.config["CONTENT_DIR"]) / OVERRIDES),
                                 FileSystemLoader(BUILT_IN)]),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            keep_trailing_newline=True)
        app.extensions[EXTENSION] = env
    return env


def render(app: Flask, kind: str, values: dict[str, Any]) -> tuple[str, str, str]:
    """The subject, the plain text and the HTML of an email of ``kind``."""
    env = environment(app)
    text_module = env.get_template(f"{kind}.txt").make_module(values)
    text = str(text_module)
    html = env.get_template(f"{kind}.html").render(values)
    unsubscribe = values["unsubscribe_url"]
    if unsubscribe not in text:
        text = text.rstrip("\n") + "\n\n" + env.get_template("_footer.txt").render(values)
    if unsubscribe not in html:
        footer = env.get_template("_footer.html").render(values)
        at = html.lower().rfind("</body>")
        html = html[:at] + footer + html[at:] if at >= 0 else html + footer
    resource = values.get("resource")
    subject = getattr(text_module, "subject", "") or SUBJECTS[kind].format(title=getattr(resource, "title", ""))
    return subject, text.lstrip("\n"), html
