"""Options of the ``leadgate`` plugin in ``mkdocs.yml``."""

from __future__ import annotations

from mkdocs.config import base
from mkdocs.config import config_options as c


class LeadgateConfig(base.Config):
    enabled = c.Type(bool, default=True)
    #: Where the capture service answers, e.g. ``https://get.example.com``; empty means the
    #: service runs on the same host as the site, so the form posts to ``/submit``.
    capture_url = c.Type(str, default="")
    #: Folder under ``docs_dir`` holding the resource pages and their gated files.
    resources_dir = c.Type(str, default="resources")
