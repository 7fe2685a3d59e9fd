"""The built MkDocs site, served beside the capture service by ``leadgate serve``.

In production the site usually lives on a static host or CDN; `leadgate serve` also serves it
from the same process so the demo is one command on one port. Its files get the same security
headers as the service's pages (capture.web.headers), and may be framed by FRAME_ANCESTORS.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, redirect, send_from_directory
from werkzeug.security import safe_join

from capture.site import csp

bp = Blueprint("site", __name__)


@bp.get("/", defaults={"path": ""})
@bp.get("/<path:path>")
def page(path: str):
    """Serve a built file; `dir/` answers with `dir/index.html` the way static hosts do."""
    site_dir = current_app.config["SITE_DIR"]
    if path == csp.FILE:
        abort(404)  # the build's note for nginx and the service, not a page
    target = safe_join(site_dir, path)
    if target is None:
        abort(404)
    if Path(target).is_dir():
        if path and not path.endswith("/"):
            return redirect(f"/{path}/", code=301)
        path = f"{path}index.html" if path else "index.html"
    return send_from_directory(site_dir, path)


def init_app(app: Flask) -> None:
    """Serve SITE_DIR at the root when it is set; service routes still win over these."""
    if app.config.get("SITE_DIR"):
        app.config["SITE_DIR"] = str(Path(app.config["SITE_DIR"]).resolve())
        app.register_blueprint(bp)
