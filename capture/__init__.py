"""Leadgate's capture service: ``create_app()`` builds it; nothing happens at import time."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Defaults from config.Config, then ``LEADGATE_*`` variables, then test_config."""
    from capture import cli, config, errors, spool
    from capture.db import store
    from capture.staff import api, audit, auth, dashboard, exports, jobs, privacy, roles, spam, workspace
    from capture.web import headers, health, hygiene, mail_links, openapi, routing, site, views
    from capture.spam import limits

    # The instance folder holds the SQLite file, the demo secret and the spool: a deployment
    # may put it elsewhere (an absolute path), e.g. /var/lib/leadgate.
    instance_path = os.environ.get("LEADGATE_INSTANCE_PATH") or None
    app = Flask(__name__, instance_relative_config=True,
                instance_path=os.path.abspath(instance_path) if instance_path else None)
    app.config.from_object(config.Config)
    app.config.from_prefixed_env("LEADGATE")
    if test_config is not None:
        app.config.from_mapping(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    config.finalize(app)

    routing.init_app(app)
    store.init_app(app)
    spool.init_app(app)
    errors.init_app(app)
    hygiene.init_app(app)
    views.init_app(app)
    mail_links.init_app(app)
    health.init_app(app)
    openapi.init_app(app)
    auth.init_app(app)
    limits.init_app(app)  # after auth, which says what is wrong with a storage URI
    workspace.init_app(app)
    exports.init_app(app)
    api.init_app(app)
    dashboard.init_app(app)
    spam.init_app(app)
    privacy.init_app(app)
    jobs.init_app(app)
    roles.init_app(app)
    audit.init_app(app)
    site.init_app(app)
    cli.init_app(app)
    headers.init_app(app)

    proxies = {key: app.config[f"PROXY_FIX_X_{key.upper()}"] for key in ("for", "proto", "host")}
    if any(proxies.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **{f"x_{k}": v for k, v in proxies.items()})
    return app
