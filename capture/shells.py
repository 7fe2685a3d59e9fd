"""The built site's pages as shells for the pages the service renders.

A built landing page marks its form with ``<!--leadgate:form-->…<!--/leadgate:form-->`` and
the thank-you page its link with ``<!--leadgate:thanks-->…<!--/leadgate:thanks-->``
(docs/architecture.md). The service swaps that region for what it rendered, and adds a
``<base>`` so the page's relative links (styles, scripts, navigation) resolve as they do at
the page's own address, not at ``/submit`` or ``/thanks/<token>``.
"""

from __future__ import annotations

import re
from pathlib import Path

from markupsafe import escape

HEAD = re.compile(r"<head(\s[^>]*)?>", re.I)


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
