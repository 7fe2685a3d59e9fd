"""The built MkDocs site: building it, and serving it beside the capture service.

In production the site usually lives on a static host or CDN; `leadgate serve` also serves it
from the same process so the demo is one command on one port.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, redirect, send_from_directory
from werkzeug.security import safe_join

bp = Blueprint("site", __name__)


class SiteBuildError(Exception):
    """The build stopped; the message holds what MkDocs and the plugin reported."""


class _Collect(logging.Handler):
    """Keeps MkDocs' warnings and errors so the caller can show them, not just 'Aborted'."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def build_site(config_file: str | Path = "mkdocs.yml", site_dir: str | Path | None = None) -> Path:
    """Run the MkDocs build (with the leadgate plugin from mkdocs.yml); return the output folder."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    overrides = {"site_dir": str(Path(site_dir).resolve())} if site_dir else {}
    collect = _Collect()
    log = logging.getLogger("mkdocs")
    log.addHandler(collect)
    try:
        config = load_config(str(config_file), **overrides)
        build(config)
    except MkDocsException as e:
        raise SiteBuildError("\n".join(collect.messages) or str(e)) from None
    finally:
        log.removeHandler(collect)
    return Path(config.site_dir)


@bp.get("/", defaults={"path": ""})
@bp.get("/<path:path>")
def page(path: str):
    """Serve a built file; `dir/` answers with `dir/index.html` the way static hosts do."""
    site_dir = current_app.config["SITE_DIR"]
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
