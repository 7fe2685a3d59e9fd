"""Building the static site: the MkDocs build with the leadgate plugin, its messages kept."""

from __future__ import annotations

import logging
from pathlib import Path


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
