"""The built site's inline scripts as Content-Security-Policy hashes, in one file the service
and nginx both read.

MkDocs Material writes two small inline scripts into every page (the page's scope and palette,
and a fix that opens a linked tab); their text depends only on the page's depth in the site.
Rather than allow every inline script (``'unsafe-inline'``, which would let an injected one
run too), the policy names exactly these by their SHA-256: the leadgate plugin hashes every
inline script of every built page and writes them to ``<site_dir>/leadgate-csp.conf`` as an
nginx ``set`` line, which capture.web.headers reads for the pages the service sends. A script
added to a theme override is hashed by the next build like Material's own. Data blocks
(``<script type="application/json">``) are never run and need no hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

FILE = "leadgate-csp.conf"
VARIABLE = "$leadgate_script_hashes"
INLINE_SCRIPT = re.compile(r"<script(?P<attrs>(?:\s[^>]*)?)>(?P<body>.*?)</script\s*>", re.S | re.I)
SRC = re.compile(r"\ssrc\s*=", re.I)
TYPE = re.compile(r"""\stype\s*=\s*["']?([^"'\s>]+)""", re.I)
#: Script types a browser runs; any other type is a data block.
RUN = {"", "text/javascript", "application/javascript", "module"}
HASH = re.compile(r"'sha256-[A-Za-z0-9+/]+=*'")


def script_hashes(html: str) -> set[str]:
    """``'sha256-…'`` of every inline script a browser would run in this page."""
    found = set()
    for m in INLINE_SCRIPT.finditer(html):
        attrs = m.group("attrs")
        if SRC.search(attrs):
            continue
        kind = TYPE.search(attrs)
        if (kind.group(1).lower() if kind else "") not in RUN:
            continue
        digest = hashlib.sha256(m.group("body").encode("utf-8")).digest()
        found.add(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")
    return found


def write_hashes(site_dir: str | Path, hashes: Iterable[str]) -> Path:
    """``<site_dir>/leadgate-csp.conf``: an nginx line the service parses too."""
    path = Path(site_dir) / FILE
    listed = " ".join(sorted(hashes))
    path.write_text(
        "# Written by `leadgate build`: the inline scripts of the built pages as CSP hashes.\n"
        "# nginx includes this file (docs/nginx.conf); the capture service reads it from SITE_DIR.\n"
        f'set {VARIABLE} "{listed}";\n', encoding="utf-8")
    return path


def read_hashes(site_dir: str | Path | None) -> tuple[str, ...]:
    """The hashes a build wrote; none without a built site or its file."""
    if not site_dir:
        return ()
    try:
        text = (Path(site_dir) / FILE).read_text(encoding="utf-8")
    except OSError:
        return ()
    return tuple(sorted(set(HASH.findall(text))))
