"""The ``leadgate`` MkDocs plugin.

It reads ``content/`` through :mod:`capture.catalog` (the same reader the capture service
uses), turns every resource page into a landing page with the download form, adds the
catalog, tag and thank-you pages and the page script, fills the controller's details into
the privacy notice and links it from every page's footer and from the consent boxes, and keeps
every gated file and what content/ holds for the service alone (``leadgate.yml``, the consent
register, the scoring rules and their domain lists, email templates) out of the build and out
of ``mkdocs serve``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jinja2
import yaml
from markupsafe import escape
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

from capture.catalog import (
    PRIVACY_PAGE,
    SETTINGS_FILE,
    Catalog,
    CatalogError,
    Resource,
    load_catalog,
)
from capture.consent.texts import REGISTER_FILE, register
from capture.db.models import utcnow
from capture.privacy_notice import fill_privacy_notice, notice_problems
from capture.scoring.apply import load_scoring
from capture.mail.render import OVERRIDES as EMAIL_TEMPLATES
from capture.scoring.rules import RULES_FILE, RulesError
from capture.site import csp, render
from capture.site.config import LeadgateConfig

ASSETS = Path(__file__).resolve().parent / "assets"
#: Template overrides for the theme: Material's ``main.html`` with the privacy link in the footer.
THEME_OVERRIDES = Path(__file__).resolve().parent / "templates" / "theme"
#: Where the page script and styles land in the site, and where they come from.
ASSET_FILES = {
    "assets/leadgate/leadgate.css": ASSETS / "leadgate.css",
    "assets/leadgate/leadgate.js": ASSETS / "leadgate.js",
}
THANKS_PAGE = "thanks.md"
CAPTURE_URL = re.compile(r"^(https?://[^/\s?#]+)?(/[^\s?#]*)?$")
#: Every attribute a page can fetch or link a file with, its value quoted or not (HTML allows
#: both, and Markdown passes raw HTML through as written).
LINK = re.compile(r"""(?<![\w-])(href|src|data|poster|action|formaction|srcset)\s*=\s*"""
                  r"""(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)


def linked_urls(html: str) -> Iterator[str]:
    """Each URL a page's HTML links to; a ``srcset`` holds several, each before its size."""
    for name, *values in LINK.findall(html):
        value = "".join(values).strip()
        if name.lower() == "srcset":
            yield from (candidate.split()[0] for candidate in value.split(",") if candidate.strip())
        elif value:
            yield value


CATALOG_INTRO = """\
# Resources

Everything we publish for marketing and sales teams, grouped by type. Every resource is free:
fill in the short form on its page and download it straight away.
"""


def _page(meta: dict, body: str = "") -> str:
    """Markdown source of a generated page; front matter through YAML so any tag text is safe."""
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n\n" + body


def _problems(docs_dir: str, problems: list[tuple[str, str, str]]) -> str:
    return _listed(docs_dir, [f"{path}: {field}: {message}" for path, field, message in problems])


def _listed(docs_dir: str, problems: list[str]) -> str:
    lines = [f"Leadgate cannot publish '{docs_dir}'. Fix the following and build again:"]
    lines += [f"  {problem}" for problem in problems]
    return "\n".join(lines)


class LeadgatePlugin(BasePlugin[LeadgateConfig]):
    def __init__(self) -> None:
        self.catalog: Catalog | None = None
        self.env: jinja2.Environment | None = None
        self.resources_dir = ""
        self.pages: dict[str, Resource] = {}
        #: tag slug -> (the tag as first written, resources carrying it)
        self.tags: dict[str, tuple[str, list[Resource]]] = {}
        #: file name of each gated file -> its resource, to catch links to it
        self.gated_names: dict[str, Resource] = {}
        self.public_urls: set[str] = set()
        #: The privacy notice's URL relative to the site root, or None when the site has none.
        self.privacy_url: str | None = None
        #: CSP hashes of the inline scripts of every built page (capture.site.csp).
        self.script_hashes: set[str] = set()

    # -- MkDocs events -------------------------------------------------------------------

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        if not self.config.enabled:
            return None
        self.resources_dir = self._checked_options()
        try:
            self.catalog = load_catalog(config.docs_dir, self.resources_dir)
        except CatalogError as e:
            raise PluginError(_problems(config.docs_dir, e.problems)) from None
        # A published consent text keeps its words; new versions are kept in the register.
        problems = register(config.docs_dir, self.catalog.consent_texts(), utcnow().date())
        if problems:
            raise PluginError(_problems(config.docs_dir, problems))
        try:
            # Not used by the build, but a site must not go live with rules the service refuses.
            rules = load_scoring(self.catalog).rules
        except RulesError as e:
            raise PluginError(_listed(config.docs_dir, e.problems)) from None
        # What content/ holds for the service alone (settings, scoring rules and the lists
        # they name, email templates) never reaches the public site.
        self.service_only = {SETTINGS_FILE, REGISTER_FILE, RULES_FILE,
                             *(posixpath.normpath(domains.file) for domains in rules.domain_lists)}
        self.pages = {r.src_uri: r for r in self.catalog}
        self.env = render.environment()
        # After the site's own custom_dir (its overrides win), before the theme's templates.
        dirs = config.theme.dirs
        if str(THEME_OVERRIDES) not in dirs:
            dirs.insert(1 if config.theme.custom_dir else 0, str(THEME_OVERRIDES))
        for uri in ASSET_FILES:
            extra = config.extra_css if uri.endswith(".css") else config.extra_javascript
            if uri not in (str(e) for e in extra):
                extra.append(uri)
        return config

    def on_pre_build(self, *, config: MkDocsConfig) -> None:
        self.script_hashes = set()

    def on_post_page(self, output: str, /, *, page: Page, config: MkDocsConfig) -> str | None:
        if self.config.enabled:
            self.script_hashes |= csp.script_hashes(output)
        return None

    def on_post_template(self, output_content: str, /, *, template_name: str,
                         config: MkDocsConfig) -> str | None:
        if self.config.enabled and template_name.endswith(".html"):
            self.script_hashes |= csp.script_hashes(output_content)  # 404.html
        return None

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        if self.config.enabled:
            csp.write_hashes(config.site_dir, self.script_hashes)

    def on_files(self, files: Files, /, *, config: MkDocsConfig) -> Files | None:
        if not self.config.enabled:
            return None
        assert self.catalog is not None
        by_path = {r.file: r for r in self.catalog}
        self.gated_names = {}
        for file in files:
            resource = by_path.get(Path(file.abs_src_path).resolve()) if file.abs_src_path else None
            if resource is not None:
                self.gated_names[Path(file.abs_src_path).name] = resource
            if (resource is not None or file.src_uri in self.service_only
                    or file.src_uri.startswith(f"{EMAIL_TEMPLATES}/")):
                file.inclusion = InclusionLevel.EXCLUDED

        self.tags = {}
        for resource in self.catalog:
            for tag in resource.tags:
                self.tags.setdefault(render.tag_slug(tag), (tag, []))[1].append(resource)

        taken = {f.dest_uri: f.src_uri for f in files if not f.inclusion.is_excluded()}
        hidden = {"search": {"exclude": True}}
        if files.get_file_from_path(self._catalog_page) is None:
            self._add(files, config, taken, self._catalog_page, CATALOG_INTRO)
        self._add(files, config, taken, self._tags_page, _page({"title": "Resource tags", **hidden}), nav=False)
        for slug, (label, _) in self.tags.items():
            meta = {"title": f"Resources tagged “{label}”", **hidden}
            self._add(files, config, taken, self._tag_page(slug), _page(meta), nav=False)
        meta = {"title": "Thank you", **hidden, "hide": ["toc"]}
        self._add(files, config, taken, THANKS_PAGE, _page(meta), nav=False)
        for uri, path in ASSET_FILES.items():
            files.append(File.generated(config, uri, abs_src_path=str(path)))
        self.public_urls = {unquote(f.url) for f in files if not f.inclusion.is_excluded()}

        notice = files.get_file_from_path(PRIVACY_PAGE)
        published = notice is not None and not notice.inclusion.is_excluded()
        problems = notice_problems(self.catalog, published)
        if problems:
            raise PluginError(_problems(config.docs_dir, problems))
        self.privacy_url = notice.url if published else None
        if published and notice.inclusion.is_in_nav():
            # Reached from every footer, not from the menu; a nav: in mkdocs.yml may still list it.
            notice.inclusion = InclusionLevel.NOT_IN_NAV
        return files

    def on_env(self, env: jinja2.Environment, /, *, config: MkDocsConfig,
               files: Files) -> jinja2.Environment | None:
        if not self.config.enabled:
            return None
        env.globals["leadgate_privacy_url"] = self.privacy_url  # read by templates/theme/
        return env

    def on_page_markdown(self, markdown: str, /, *, page: Page, config: MkDocsConfig,
                         files: Files) -> str | None:
        if not self.config.enabled:
            return None
        if page.file.src_uri == PRIVACY_PAGE:
            assert self.catalog is not None
            try:
                return fill_privacy_notice(markdown, self.catalog.settings)
            except CatalogError as e:
                raise PluginError(_problems(config.docs_dir, e.problems)) from None
        resource = self.pages.get(page.file.src_uri)
        if resource is not None:
            page.meta["title"] = resource.title
            page.meta.setdefault("description", resource.summary)
            page.meta.setdefault("hide", ["toc"])
        if resource is not None or page.file.generated_by:
            # Material prints these into the page header and <head> without escaping.
            for key in ("title", "description"):
                if isinstance(page.meta.get(key), str):
                    page.meta[key] = escape(page.meta[key])
        return markdown

    def on_page_content(self, html: str, /, *, page: Page, config: MkDocsConfig,
                        files: Files) -> str | None:
        if not self.config.enabled:
            return None
        assert self.env is not None and self.catalog is not None
        self._refuse_gated_links(html, page)
        uri = page.file.src_uri
        env, settings = self.env, self.catalog.settings

        def url(target_uri: str) -> str:
            return get_relative_url(self._file(files, target_uri).url, page.url)

        if uri in self.pages:
            resource = self.pages[uri]
            form = render.render_form(env, resource, settings, self.config.capture_url.rstrip("/") + "/submit",
                                      url(PRIVACY_PAGE) if self.privacy_url else None)
            cover = url(resource.cover) if resource.cover else None
            return render.render_landing(env, resource, html, form, cover, self._tag_links(resource.tags, url))
        if uri == self._catalog_page:
            return render.render_catalog(env, html, self._items(list(self.catalog), url), settings,
                                         self._all_tags(url))
        if uri == self._tags_page:
            return render.render_tag_index(env, self._all_tags(url), url(self._catalog_page))
        if uri == THANKS_PAGE:
            return html + render.render_thanks(env, url(self._catalog_page))
        for slug, (label, resources) in self.tags.items():
            if uri == self._tag_page(slug):
                return render.render_tag(env, label, self._items(resources, url), settings,
                                         url(self._catalog_page), url(self._tags_page))
        return None

    # -- helpers -------------------------------------------------------------------------

    @property
    def _catalog_page(self) -> str:
        return f"{self.resources_dir}/index.md"

    @property
    def _tags_page(self) -> str:
        return f"{self.resources_dir}/tags/index.md"

    def _tag_page(self, slug: str) -> str:
        return f"{self.resources_dir}/tags/{slug}.md"

    def _checked_options(self) -> str:
        """The resources folder, after refusing options that would build a broken site."""
        folder = self.config.resources_dir.strip("/")
        if not folder or ".." in folder.split("/") or "\\" in folder:
            raise PluginError("mkdocs.yml: plugins.leadgate.resources_dir: must be a folder inside "
                              f"docs_dir, such as 'resources' (got '{self.config.resources_dir}')")
        if self.config.capture_url and not CAPTURE_URL.match(self.config.capture_url):
            raise PluginError("mkdocs.yml: plugins.leadgate.capture_url: must be empty (same host as the "
                              "site) or an http(s) address such as 'https://get.example.com' "
                              f"(got '{self.config.capture_url}')")
        return folder

    def _add(self, files: Files, config: MkDocsConfig, taken: dict[str, str], src_uri: str,
             content: str, nav: bool = True) -> None:
        """Add a generated page, refusing to silently replace one the marketer wrote."""
        inclusion = InclusionLevel.UNDEFINED if nav else InclusionLevel.NOT_IN_NAV
        file = File.generated(config, src_uri, content=content, inclusion=inclusion)
        if file.dest_uri in taken:
            raise PluginError(f"{taken[file.dest_uri]}: file: Leadgate builds its own page at "
                              f"'{file.url}'; rename or remove this file")
        taken[file.dest_uri] = src_uri
        files.append(file)

    @staticmethod
    def _file(files: Files, src_uri: str) -> File:
        file = files.get_file_from_path(src_uri)
        if file is None:
            raise PluginError(f"{src_uri}: file: another plugin removed this page from the build")
        return file

    def _tag_links(self, tags: tuple[str, ...], url) -> tuple[render.Tag, ...]:
        return tuple(
            render.Tag(self.tags[slug][0], slug, url(self._tag_page(slug)), len(self.tags[slug][1]))
            for slug in dict.fromkeys(render.tag_slug(t) for t in tags)
        )

    def _all_tags(self, url) -> list[render.Tag]:
        tags = self._tag_links(tuple(label for label, _ in self.tags.values()), url)
        return sorted(tags, key=lambda t: t.label.casefold())

    def _items(self, resources: list[Resource], url) -> list[render.Item]:
        return [
            render.Item(r, url(r.src_uri), url(r.cover) if r.cover else None, self._tag_links(r.tags, url))
            for r in resources
        ]

    def _refuse_gated_links(self, html: str, page: Page) -> None:
        """Fail the build when a page links to a gated file: the link would name a PDF meant
        to be sent only after the form (the file itself is never published)."""
        base = page.url if not page.url or page.url.endswith("/") else posixpath.dirname(page.url) + "/"
        for value in linked_urls(html):
            parts = urlsplit(value)
            if parts.scheme or parts.netloc or not parts.path:
                continue
            path = unquote(parts.path)
            target = path.lstrip("/") if path.startswith("/") else posixpath.normpath(base + path)
            resource = self.gated_names.get(posixpath.basename(target))
            if resource is not None and target not in self.public_urls:
                raise PluginError(
                    f"{page.file.src_uri}: body: links to '{value}', the gated file of '{resource.id}'. "
                    f"Gated files are sent only after the form; link to its landing page instead."
                )
