"""Security headers on every answer of the service: visitors' pages, the workspace, the API and
the files of the built site, refusals and errors included. One ``after_request``, one table.

- **Content-Security-Policy** without ``'unsafe-inline'``. The service's own pages and the
  workspace have no inline scripts or styles. The built MkDocs Material site has two small
  inline scripts of its own (the page's scope and palette, and the open-the-linked-tab fix): the
  leadgate plugin hashes every inline script it finds in the built pages into
  ``<site_dir>/leadgate-csp.conf`` (capture.site.csp), which this module and nginx both read, so
  exactly those scripts run and nothing injected does. A rebuild writes new hashes; the
  service rereads the file when it changes.
- **frame-ancestors**: the built site's pages may be framed by the site itself and the
  FRAME_ANCESTORS origins; everything the service renders (forms with a visitor's values,
  thank-you and download pages, messages, the workspace) by nobody.
- **Cache-Control: no-store** on everything but the built site's files and the stylesheets:
  what the service renders is about one visitor or one lead, or says something about a request.
- **Referrer-Policy** ``strict-origin-when-cross-origin``; personal pages set ``no-referrer``
  themselves (capture.web.views.private), the workspace keeps ``same-origin``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request

from capture.errors import API, WORKSPACE
from capture.site.csp import read_hashes

EXTENSION = "leadgate.headers"
#: Endpoints whose answers are public files (and the API's description), cacheable like any static file.
CACHEABLE = frozenset({"site.page", "static", "workspace.static", "openapi.openapi"})

#: The workspace and the API: no scripts at all, one stylesheet, never framed.
STAFF_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
             "frame-ancestors 'none'; base-uri 'none'")
COMMON = {"X-Content-Type-Options": "nosniff"}
STAFF = {**COMMON, "Content-Security-Policy": STAFF_CSP, "Referrer-Policy": "same-origin",
         "X-Frame-Options": "DENY", "X-Robots-Tag": "noindex", "Cache-Control": "private, no-store"}


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute URL; None for a path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def visitor_csp(script_hashes: tuple[str, ...], site_url: str, base_url: str,
                frame_ancestors: list[str] | None) -> str:
    """The policy of visitors' pages. The site's files may come from SITE_URL's host, forms
    and the page script's requests go to BASE_URL; ``frame_ancestors`` None means never framed."""
    self_ = "'self'"
    site = [o for o in (origin(site_url),) if o]
    service = [o for o in (origin(base_url),) if o]
    own = " ".join(dict.fromkeys([self_, *site]))
    reach = " ".join(dict.fromkeys([self_, *service, *site]))
    frames = " ".join([self_, *frame_ancestors]) if frame_ancestors is not None else "'none'"
    return "; ".join([
        "default-src 'self'",
        " ".join(["script-src", own, *script_hashes]),
        f"style-src {own}",
        f"img-src {own} data:",
        f"font-src {own}",
        f"connect-src {reach}",
        f"form-action {' '.join(dict.fromkeys([self_, *service]))}",
        f"base-uri {reach}",
        "object-src 'none'",
        f"frame-ancestors {frames}",
    ])


@dataclass(frozen=True)
class Policies:
    """The header sets of one app for one version of the built site's script hashes."""

    stamp: object
    #: Pages of the built site: may be framed by FRAME_ANCESTORS.
    site: dict[str, str]
    #: What the service renders for visitors: never framed, never stored.
    rendered: dict[str, str]


def _stamp(site_dir: str | None) -> object:
    if not site_dir:
        return None
    try:
        return os.stat(os.path.join(site_dir, "leadgate-csp.conf")).st_mtime_ns
    except OSError:
        return None


def policies(app: Flask) -> Policies:
    """The app's header sets, made again when the built site's hashes file changes."""
    config = app.config
    stamp = _stamp(config.get("SITE_DIR"))
    made: Policies | None = app.extensions.get(EXTENSION)
    if made is not None and made.stamp == stamp:
        return made
    hashes = read_hashes(config.get("SITE_DIR")) if stamp is not None else ()
    csp = lambda frames: visitor_csp(hashes, config["SITE_URL"], config["BASE_URL"], frames)  # noqa: E731
    made = Policies(
        stamp=stamp,
        site={**COMMON, "Content-Security-Policy": csp(config["FRAME_ANCESTORS"]),
              "Referrer-Policy": "strict-origin-when-cross-origin"},
        rendered={**COMMON, "Content-Security-Policy": csp(None), "X-Frame-Options": "DENY",
                  "Referrer-Policy": "strict-origin-when-cross-origin", "Cache-Control": "no-store"})
    app.extensions[EXTENSION] = made
    return made


def secure(response: Response) -> Response:
    """Every answer's headers; a view's own (a private page's no-referrer) win."""
    if request.path.startswith((WORKSPACE, API)):
        chosen = STAFF
    else:
        made = policies(current_app)
        chosen = made.site if request.endpoint == "site.page" and response.status_code < 400 else made.rendered
    cacheable = request.endpoint in CACHEABLE and response.status_code < 400
    headers = response.headers
    # One pass over the few headers a response has: `name in headers` raises and catches a
    # KeyError per miss: 22 µs a response against 11 µs this way (measured with timeit).
    present = {name.lower() for name in headers.keys()}
    headers.extend([(name, value) for name, value in chosen.items()
                    if name.lower() not in present and not (cacheable and name == "Cache-Control")])
    return response


def init_app(app: Flask) -> None:
    """Registered last, so it runs first of the after_request hooks and sees every answer;
    error answers pass through it too (Flask runs the hooks on handled errors)."""
    app.after_request(secure)
