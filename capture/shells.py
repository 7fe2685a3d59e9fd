"""The built site's pages as shells for the pages the service renders.

A built landing page marks its form with ``<!--leadgate:form-->…<!--/leadgate:form-->`` and
the thank-you page its link with ``<!--leadgate:thanks-->…<!--/leadgate:thanks-->``
(docs/architecture.md). The service swaps that region for what it rendered, and adds a
``<base>`` so the page's relative links (styles, scripts, navigation) resolve as they do at
the page's own address, not at ``/submit`` or ``/thanks/<token>``. Messages for visitors (an
error, a refusal) fill the thank-you page's region, under their own title.
"""

from __future__ import annotations

import re
from pathlib import Path

from flask import current_app, render_template
from markupsafe import Markup, escape

HEAD = re.compile(r"<head(\s[^>]*)?>", re.I)
#: ``<title>Page title - Site name</title>`` as Material writes it (the last " - " ends the page's).
TITLE = re.compile(r"<title>(.*)(\s-\s[^<]*)</title>", re.S)
#: Where Material repeats the page's title: the header's topic.
HEADER_TOPIC = 'data-md-component="header-topic"'
#: The page of the built site whose shell frames the service's messages, and its region.
MESSAGE_PAGE = "thanks/"
MESSAGE_REGION = "thanks"


def read_shell(site_dir: str | None, page_url: str) -> str | None:
    """The built ``<page_url>index.html``, or None without a built site or such a page."""
    if not site_dir:
        return None
    root = Path(site_dir).resolve()
    path = (root / page_url / "index.html").resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path.read_text(encoding="utf-8")


def fill(shell: str, region: str, content: str) -> str | None:
    """The shell with the marked region (markers included) replaced; None when unmarked."""
    start, end = f"<!--leadgate:{region}-->", f"<!--/leadgate:{region}-->"
    i = shell.find(start)
    j = shell.find(end, i + len(start)) if i >= 0 else -1
    if j < 0:
        return None
    return shell[:i] + content + shell[j + len(end):]


def with_base(html: str, href: str) -> str:
    """Add ``<base href>`` right after ``<head>`` unless the page already has one."""
    if re.search(r"<base[\s>]", html, re.I):
        return html
    m = HEAD.search(html)
    if m is None:
        return html
    return f'{html[:m.end()]}<base href="{escape(href)}">{html[m.end():]}'


def retitled(shell: str, title: str) -> str:
    """The shell with its page title replaced where the theme shows it: ``<title>`` and the
    header's topic (the site name after the last " - " stays)."""
    found = TITLE.search(shell)
    if found is None or not found.group(1).strip():
        return shell
    old, escaped = found.group(1).strip(), str(escape(title))
    shell = shell[:found.start()] + f"<title>{escaped}{found.group(2)}</title>" + shell[found.end():]
    start = shell.find(HEADER_TOPIC)
    end = shell.find("</div>", start)
    if start < 0 or end < 0:
        return shell
    topic = re.sub(r">(\s*)" + re.escape(old) + r"(\s*)<",
                   lambda m: f">{m.group(1)}{escaped}{m.group(2)}<", shell[start:end])
    return shell[:start] + topic + shell[end:]


def site_link(page_url: str = "") -> str:
    """A page of the built site, under SITE_URL, or BASE_URL when the service serves the site
    itself: never the request's Host."""
    config = current_app.config
    return (config["SITE_URL"] or config["BASE_URL"]) + page_url


def in_site_shell(region: str, page_url: str, title: str, content: str) -> str:
    """Rendered content inside a built page of the site when SITE_DIR has it (its region
    replaced, its title ours), else inside the service's own page."""
    shell = read_shell(current_app.config["SITE_DIR"], page_url)
    page = fill(retitled(shell, title), region, content) if shell else None
    if page is None:
        return render_template("page.html", title=title, content=Markup(content))
    return with_base(page, site_link(page_url))
