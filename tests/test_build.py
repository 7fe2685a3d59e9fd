"""The site as MkDocs builds it with the leadgate plugin, checked the way a visitor would see it.

Builds run for real (``mkdocs.commands.build.build``) into temporary folders, in strict mode
so any MkDocs warning fails the test. One build of a small content folder is shared by the
checks that only read its output; the failures and options each need their own build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import jinja2
import pytest
import yaml
from markupsafe import escape
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort, PluginError

from capture.catalog import load_catalog
from capture.fields import BY_NAME
from conftest import ROOT, write_resource

CAPTURE_URL = "https://get.example.com/"
GATED = ("leads-vs-prospects.pdf", "scoring.pdf", "secret-checklist.pdf")
TEXT_SUFFIXES = {".html", ".js", ".json", ".xml", ".css", ".txt", ".svg"}
FIELDS = {  # name: (type, maxlength, required), as in docs/architecture.md
    "email": ("email", "254", True),
    "first_name": ("text", "100", False),
    "last_name": ("text", "100", False),
    "company": ("text", "200", False),
    "job_title": ("text", "150", False),
    "terms": ("checkbox", None, True),
    "marketing_opt_in": ("checkbox", None, False),
    "resource_id": ("hidden", None, False),
    "terms_sha256": ("hidden", None, False),
    "marketing_sha256": ("hidden", None, False),
    **{f"utm_{k}": ("hidden", "200", False) for k in ("source", "medium", "campaign", "term", "content")},
    "referrer": ("hidden", "2000", False),
    "landing_page": ("hidden", "2000", False),
    "form_token": ("hidden", "200", False),
    "website": ("text", "200", False),  # the honeypot, off screen
}
CONTROLLER = """\
controller:
  name: Fish & Chips Ltd
  email: privacy@fish.example
  address: |
    1 Pier Road
    Brighton BN1 1AA
"""
NOTICE = """\
# Privacy notice

{{ controller.name }} is responsible for your details. Write to
[{{ controller.email }}](mailto:{{ controller.email }}) or to {{ controller.address }}.
We keep them for {{ retention_months }} months.
"""


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text inside each element with an id."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_by_id: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in ("input", "img", "meta", "link", "br", "hr"):
            self._open.append(dict(attrs).get("id"))

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag not in ("input", "img", "meta", "link", "br", "hr"):
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in filter(None, self._open):
            self.text_by_id[element_id] = self.text_by_id.get(element_id, "") + data

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def build_site(content: Path, out: Path, custom_dir: Path | None = None, **options: object) -> Path:
    """Build ``content`` with the leadgate plugin into ``out``; return the site folder."""
    config_file = content.parent / "mkdocs.yml"
    theme = {"name": "material", "font": False, **({"custom_dir": str(custom_dir)} if custom_dir else {})}
    config_file.write_text(yaml.safe_dump({
        "site_name": "Test site",
        "docs_dir": content.name,
        "site_dir": str(out),
        "theme": theme,
        "plugins": ["search", {"leadgate": options}],
        "markdown_extensions": ["attr_list"],
    }), encoding="utf-8")
    build(load_config(config_file=str(config_file), strict=True))
    return out


def read(site: Path, path: str) -> str:
    return (site / path).read_text(encoding="utf-8")


def main_content(html: str) -> str:
    """The page's own content, without the navigation Material repeats on every page."""
    return html.split('<article class="md-content__inner')[1].split("</article>")[0]


def form_region(html: str) -> str:
    """The part of a landing page the service swaps when it shows the form again."""
    assert html.count("<!--leadgate:form-->") == 1 and html.count("<!--/leadgate:form-->") == 1
    return html.split("<!--leadgate:form-->")[1].split("<!--/leadgate:form-->")[0]


def published_text(site: Path) -> dict[str, str]:
    return {p.relative_to(site).as_posix(): p.read_text(encoding="utf-8")
            for p in site.rglob("*") if p.suffix in TEXT_SUFFIXES}


def write_notice(content: Path, notice: str = NOTICE, settings: str = CONTROLLER) -> None:
    """The privacy notice the default consent text points to, and the settings it shows."""
    (content / "privacy.md").write_text(notice, encoding="utf-8")
    (content / "leadgate.yml").write_text(settings, encoding="utf-8")


def resolve(page: str, href: str) -> str:
    """Where a link on a built page leads, as a path from the site root ('privacy/')."""
    return urlsplit(urljoin("https://site.invalid/" + page, href)).path.lstrip("/")


def label_of(html: str, name: str) -> str:
    """The inner HTML of the label of one form field."""
    return re.search(rf'<label for="leadgate-{name}">(.*?)</label>', html, re.S).group(1)


def build_failure(content: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, **options: object) -> str:
    """Build, expect MkDocs to abort on the plugin's error, and return what it told the user."""
    with pytest.raises(Abort) as caught:
        build_site(content, tmp_path / "site", **options)
    assert isinstance(caught.value.__context__, PluginError)
    assert str(caught.value.__context__) in caplog.text
    return caplog.text


@pytest.fixture
def content_dir(content_dir: Path) -> Path:
    """conftest's content folder, with the privacy notice its default consent text names."""
    write_notice(content_dir)
    return content_dir


@pytest.fixture(autouse=True)
def _quiet_material(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")  # Material's end-of-life banner


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build of a content folder with three resources, an article and a catalog intro."""
    root = tmp_path_factory.mktemp("built")
    content = root / "content"
    content.mkdir()
    (content / "index.md").write_text("# Home\n\nSee [the resources](resources/index.md).\n", encoding="utf-8")
    (content / "articles").mkdir()
    (content / "articles" / "what-is-an-mql.md").write_text(
        "# What is an MQL?\n\nA lead that passed the threshold agreed with sales.\n", encoding="utf-8")
    (content / "resources" / "covers").mkdir(parents=True)
    (content / "resources" / "covers" / "scoring.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="6" height="8"/>', encoding="utf-8")
    (content / "resources" / "index.md").write_text(
        "# Our library\n\nFree guides for sales and marketing.\n", encoding="utf-8")
    write_resource(content, "leads-vs-prospects", """
        id: leads-vs-prospects
        title: Leads versus prospects
        type: ebook
        summary: How to tell a lead from a prospect.
        file: leads-vs-prospects.pdf
        tags: [qualification, Sales]
    """, body="## Inside\n\nSix stages, from lead to customer.\n", pdf="leads-vs-prospects.pdf")
    write_resource(content, "scoring", """
        id: scoring
        title: Lead scoring sales trusts
        type: whitepaper
        summary: A scoring model sales will use.
        file: scoring.pdf
        cover: covers/scoring.svg
        tags: [scoring, sales]
    """, pdf="scoring.pdf")
    write_resource(content, "checklist", """
        id: checklist
        title: "<script>alert('title')</script> & friends"
        type: tip-sheet
        summary: "Fish & <b>chips</b>"
        file: secret-checklist.pdf
        tags: ["<i>odd</i> tag"]
    """, pdf="secret-checklist.pdf")
    write_notice(content, settings=CONTROLLER + "industries: [Software, Other]\nretention_months: 18\n")
    return build_site(content, root / "site", capture_url=CAPTURE_URL)


@pytest.fixture(scope="module")
def built_catalog(site: Path):
    """The catalog of the shared build's content (conftest's ``catalog`` is per test)."""
    return load_catalog(site.parent / "content")


# -- landing pages ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["leads-vs-prospects", "scoring", "checklist"])
def test_each_resource_has_a_landing_page_with_the_form(site: Path, built_catalog, name: str) -> None:
    html = read(site, f"resources/{name}/index.html")
    resource = built_catalog.get(name)
    assert re.findall(r"<h1[^>]*>(.*?)</h1>", html, re.S) == [str(escape(resource.title))]

    page = Tags(form_region(html))
    assert page.text_by_id["leadgate-form-title"] == "Get your free copy"
    [form] = page.find("form")
    assert form["method"] == "post"
    assert form["action"] == "https://get.example.com/submit"
    assert "data-leadgate-form" in form

    inputs = {a["name"]: a for a in page.find("input")}
    assert set(inputs) == set(FIELDS)
    for name_, (kind, limit, required) in FIELDS.items():
        assert inputs[name_]["type"] == kind, name_
        assert inputs[name_].get("maxlength") == limit, name_
        assert ("required" in inputs[name_]) is required, name_
    assert inputs["resource_id"]["value"] == resource.id
    assert inputs["terms_sha256"]["value"] == resource.terms.sha256
    assert inputs["marketing_sha256"]["value"] == built_catalog.settings.marketing.sha256
    assert inputs["terms"]["value"] == "accepted"
    assert inputs["marketing_opt_in"]["value"] == "yes"
    assert "checked" not in inputs["marketing_opt_in"] and "checked" not in inputs["terms"]
    trap = inputs["website"]
    assert trap["tabindex"] == "-1" and trap["autocomplete"] == "off" and trap["value"] == ""
    assert 'class="leadgate-form__trap" aria-hidden="true"' in form_region(html)


def test_form_labels_errors_and_choices(site: Path, built_catalog) -> None:
    page = Tags(form_region(read(site, "resources/leads-vs-prospects/index.html")))
    for name in ("email", "first_name", "last_name", "company", "job_title", "company_size", "industry",
                 "terms", "marketing_opt_in"):
        assert len(page.find("label", **{"for": f"leadgate-{name}"})) == 1, name
        assert page.find("p", id=f"error-{name}"), name
        field = [a for t, a in page.tags if a.get("name") == name][0]
        assert field["id"] == f"leadgate-{name}"
        assert field["aria-describedby"] == f"error-{name}"
    html = read(site, "resources/leads-vs-prospects/index.html")
    settings = built_catalog.settings
    assert unescape(re.sub("<[^>]+>", "", label_of(html, "terms"))) == settings.terms.text + " (required)"
    assert unescape(re.sub("<[^>]+>", "", label_of(html, "marketing_opt_in"))) == settings.marketing.text + " (optional)"
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>',
                         html.split('name="industry"')[1].split("</select>")[0])
    assert options == [("", "Choose…"), ("Software", "Software"), ("Other", "Other")]


def test_landing_page_shows_summary_tags_cover_and_copy(site: Path) -> None:
    html = read(site, "resources/scoring/index.html")
    assert "A scoring model sales will use." in html
    assert '<img class="leadgate-landing__cover" src="../covers/scoring.svg"' in html
    assert (site / "resources" / "covers" / "scoring.svg").is_file()
    tags = Tags(html).find("a", **{"class": "leadgate-tag"})
    assert [t["href"] for t in tags] == ["../tags/scoring/", "../tags/sales/"]
    assert "Six stages, from lead to customer." in read(site, "resources/leads-vs-prospects/index.html")


def test_marketer_text_is_escaped_in_every_page(site: Path) -> None:
    for path, text in published_text(site).items():
        if path.endswith(".json"):
            continue  # the search index holds text as JSON strings, not markup
        assert "<script>alert" not in text, path
        assert "<b>chips</b>" not in text, path
        assert "<i>odd</i>" not in text, path
    html = read(site, "resources/checklist/index.html")
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt; &amp; friends" in html
    assert "Fish &amp; &lt;b&gt;chips&lt;/b&gt;" in html


# -- catalog, tags, thank-you, plain pages ------------------------------------------------

def test_catalog_lists_resources_by_type_in_settings_order(site: Path) -> None:
    html = main_content(read(site, "resources/index.html"))
    page = Tags(html)
    assert "Free guides for sales and marketing." in html  # the marketer's own intro
    assert re.findall(r'<h2 id="type-([\w-]+)"', html) == ["ebook", "whitepaper", "tip-sheet"]
    assert [a["href"] for a in page.find("a") if a.get("href") in ("leads-vs-prospects/", "scoring/", "checklist/")] \
        == ["leads-vs-prospects/", "scoring/", "checklist/"]
    filter_links = {a["data-leadgate-tag"]: a["href"] for a in page.find("a", **{"class": "leadgate-tag"})}
    assert filter_links == {"qualification": "tags/qualification/", "sales": "tags/sales/",
                            "scoring": "tags/scoring/", "i-odd-i-tag": "tags/i-odd-i-tag/"}
    cards = {a["data-tags"] for a in page.find("li") if "data-leadgate-item" in a}
    assert cards == {"qualification sales", "scoring sales", "i-odd-i-tag"}


def test_tag_pages_list_only_their_resources(site: Path) -> None:
    sales = main_content(read(site, "resources/tags/sales/index.html"))  # "Sales" and "sales" share one page
    assert "Leads versus prospects" in sales and "Lead scoring sales trusts" in sales
    assert "friends" not in sales
    scoring = main_content(read(site, "resources/tags/scoring/index.html"))
    assert "Lead scoring sales trusts" in scoring and "Leads versus prospects" not in scoring
    assert 'href="../../"' in scoring  # back to the catalog
    index = read(site, "resources/tags/index.html")
    assert all(f'href="{slug}/"' in index for slug in ("qualification", "sales", "scoring", "i-odd-i-tag"))


def test_thank_you_page_has_the_region_the_service_fills(site: Path) -> None:
    html = read(site, "thanks/index.html")
    region = html.split("<!--leadgate:thanks-->")[1].split("<!--/leadgate:thanks-->")[0]
    assert "download link" in region
    assert 'href="../resources/"' in region


def test_plain_pages_still_build(site: Path) -> None:
    html = read(site, "articles/what-is-an-mql/index.html")
    assert "A lead that passed the threshold agreed with sales." in html
    assert "data-leadgate-form" not in html


def test_every_page_loads_the_page_script_and_styles(site: Path) -> None:
    assert (site / "assets/leadgate/leadgate.js").is_file() and (site / "assets/leadgate/leadgate.css").is_file()
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert re.search(r'<script src="[./]*assets/leadgate/leadgate\.js">', html), page
        assert re.search(r'<link rel="stylesheet" href="[./]*assets/leadgate/leadgate\.css">', html), page


def test_no_gated_file_or_settings_reach_the_site(site: Path) -> None:
    assert not list(site.rglob("*.pdf"))
    assert not list(site.rglob("leadgate.yml"))
    for path, text in published_text(site).items():
        for name in GATED:
            assert name not in text, f"{path} mentions {name}"
        assert "industries:" not in text, path


def test_search_index_has_the_pages_but_not_the_form(site: Path) -> None:
    index = json.loads(read(site, "search/search_index.json"))
    locations = {d["location"] for d in index["docs"]}
    assert "resources/scoring/" in locations and "articles/what-is-an-mql/" in locations
    assert not any(loc.startswith(("thanks/", "resources/tags/")) for loc in locations)
    assert "privacy/" in locations  # the notice is a page like any other
    text = json.dumps(index)
    assert "I agree that my details" not in text and "Send me occasional emails" not in text


# -- the privacy notice --------------------------------------------------------------------

def test_privacy_notice_shows_the_controller_from_the_settings(site: Path) -> None:
    html = main_content(read(site, "privacy/index.html"))
    assert "Fish &amp; Chips Ltd is responsible for your details." in html
    assert '<a href="mailto:privacy@fish.example">privacy@fish.example</a>' in html
    assert "1 Pier Road, Brighton BN1 1AA" in html
    assert "We keep them for 18 months." in html
    assert "{{" not in html
    # Not one more entry in the site's menu: the footer links to it.
    menu = [a["href"] for a in Tags(read(site, "index.html")).find("a") if "md-nav__link" in (a.get("class") or "")]
    assert menu and "privacy/" not in menu


def test_every_page_links_to_the_privacy_notice_in_its_footer(site: Path) -> None:
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert "resources/scoring/index.html" in pages and "404.html" in pages
    for page in pages:
        footer = read(site, page).split('<footer class="md-footer">')[1]
        [link] = Tags(footer).find("a", **{"class": "leadgate-legal__link"})
        assert resolve(page, link["href"]) == "privacy/", page
    assert (site / "privacy" / "index.html").is_file()


def test_a_sites_own_main_html_wins_and_can_keep_the_footer_link(content_dir: Path, tmp_path: Path) -> None:
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "main.html").write_text(
        '{% extends "base.html" %}\n'
        '{% block footer %}<p id="own-footer">Our footer</p>{% include "leadgate/footer.html" %}{% endblock %}\n',
        encoding="utf-8")
    site = build_site(content_dir, tmp_path / "site", custom_dir=overrides)
    page = "resources/scoring/index.html"
    html = read(site, page)
    assert '<p id="own-footer">Our footer</p>' in html and '<footer class="md-footer">' not in html
    [link] = Tags(html).find("a", **{"class": "leadgate-legal__link"})
    assert resolve(page, link["href"]) == "privacy/"


def test_consent_label_links_the_words_to_the_notice_and_keeps_the_text(site: Path, built_catalog) -> None:
    page = "resources/scoring/index.html"
    region = form_region(read(site, page))
    terms = built_catalog.get("scoring").terms
    label = label_of(region, "terms")
    [link] = Tags(label).find("a")
    assert resolve(page, link["href"]) == "privacy/" and (site / "privacy" / "index.html").is_file()
    assert re.search(r">privacy notice</a>", label)
    # The words the visitor agrees to, and their fingerprint, are the stored text's.
    assert unescape(re.sub("<[^>]+>", "", label)) == terms.text + " (required)"
    [fingerprint] = Tags(region).find("input", name="terms_sha256")
    assert fingerprint["value"] == hashlib.sha256(terms.text.encode("utf-8")).hexdigest() == terms.sha256
    assert "<a" not in label_of(region, "marketing_opt_in")  # names no notice


def test_a_consent_text_naming_a_missing_notice_fails_the_build(
        content_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (content_dir / "privacy.md").unlink()
    write_resource(content_dir, "partner", """
        id: partner
        title: A partner report
        type: report
        summary: Made with Acme.
        file: file.pdf
        consent_text: Acme and we store my details to send me this report (see the Privacy Policy).
    """)
    message = build_failure(content_dir, tmp_path, caplog)
    assert ("leadgate.yml: consent.terms: mentions the 'privacy notice', but there is no privacy.md in the "
            "content folder: write the notice (docs/publishing.md) or change the text") in message
    assert "resources/partner.md: consent_text: mentions the 'Privacy Policy', but there is no privacy.md" in message
    assert not (tmp_path / "site" / "resources").exists()


def test_without_a_notice_or_a_mention_of_one_the_site_builds(content_dir: Path, tmp_path: Path) -> None:
    (content_dir / "privacy.md").unlink()
    (content_dir / "leadgate.yml").write_text(
        "consent:\n  terms:\n    version: t-1\n    text: I agree that my details are stored.\n", encoding="utf-8")
    site = build_site(content_dir, tmp_path / "site")
    html = read(site, "resources/scoring/index.html")
    assert "leadgate-legal" not in html
    assert label_of(form_region(html), "terms").startswith("I agree that my details are stored. <span")


@pytest.mark.parametrize(("notice", "settings", "expected"), [
    (NOTICE, CONTROLLER.replace("privacy@fish.example", "privacy(at)fish.example"),
     "leadgate.yml: controller.email: 'privacy(at)fish.example' is not an email address"),
    (NOTICE, CONTROLLER.replace("  name: Fish & Chips Ltd\n", ""), "leadgate.yml: controller.name: is missing"),
    (NOTICE, CONTROLLER + "retention_months: forever\n",
     "leadgate.yml: retention_months: must be a whole number of months from 1 to 120"),
    (NOTICE, "industries: [Software]\n",
     "leadgate.yml: controller: is not set, but privacy.md shows {{ controller.name }}"),
    (NOTICE, CONTROLLER.split("  address:")[0],
     "leadgate.yml: controller.address: is not set, but privacy.md shows {{ controller.address }}"),
    (NOTICE + "Call {{ controller.phone }}.\n", CONTROLLER,
     "privacy.md: body: unknown placeholder {{ controller.phone }}"),
])
def test_bad_controller_settings_fail_the_build_naming_the_field(
        content_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        notice: str, settings: str, expected: str) -> None:
    write_notice(content_dir, notice, settings)
    message = build_failure(content_dir, tmp_path, caplog)
    assert expected in message
    assert not (tmp_path / "site" / "privacy").exists()


# -- options and failures -----------------------------------------------------------------

def test_empty_capture_url_posts_to_the_same_host(content_dir: Path, tmp_path: Path) -> None:
    site = build_site(content_dir, tmp_path / "site")
    [form] = Tags(form_region(read(site, "resources/scoring/index.html"))).find("form")
    assert form["action"] == "/submit"
    assert (site / "resources/index.html").is_file()  # generated when the marketer wrote no intro


def test_disabled_plugin_leaves_the_build_alone(content_dir: Path, tmp_path: Path) -> None:
    site = build_site(content_dir, tmp_path / "site", enabled=False)
    assert not (site / "thanks").exists()
    assert "data-leadgate-form" not in read(site, "resources/scoring/index.html")


@pytest.mark.parametrize(("front_matter", "expected"), [
    ("id: broken\ntitle: Broken\nsummary: S.\nfile: file.pdf\n", "resources/broken.md: type: is missing"),
    ("id: broken\ntitle: Broken\ntype: podcast\nsummary: S.\nfile: file.pdf\n",
     "resources/broken.md: type: unknown type 'podcast'"),
    ("id: broken\ntitle: [oops\n", "resources/broken.md: front matter: is not valid YAML"),
])
def test_bad_front_matter_fails_the_build_naming_file_and_field(
        content_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, front_matter: str, expected: str) -> None:
    write_resource(content_dir, "broken", front_matter)
    write_resource(content_dir, "scoring-again", "id: scoring\ntitle: T\ntype: ebook\nsummary: S.\nfile: file.pdf\n")
    message = build_failure(content_dir, tmp_path, caplog)
    assert expected in message
    assert "resources/scoring.md: id: duplicate id 'scoring'" in message  # every problem, not just the first
    assert not (tmp_path / "site" / "resources").exists()


def test_a_link_to_a_gated_file_fails_the_build(content_dir: Path, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    (content_dir / "articles").mkdir()
    (content_dir / "articles" / "news.md").write_text(
        "# News\n\n[Get it here](../resources/scoring.pdf)\n", encoding="utf-8")
    assert "articles/news.md: body: links to '../../resources/scoring.pdf', the gated file of 'scoring'" \
        in build_failure(content_dir, tmp_path, caplog)


def test_a_page_in_the_way_of_a_generated_page_fails_the_build(content_dir: Path, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    (content_dir / "thanks.md").write_text("# Thanks!\n", encoding="utf-8")
    assert "thanks.md: file: Leadgate builds its own page at 'thanks/'" in build_failure(content_dir, tmp_path, caplog)


def test_bad_capture_url_fails_the_build(content_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    message = build_failure(content_dir, tmp_path, caplog, capture_url="get.example.com")
    assert "plugins.leadgate.capture_url: must be empty" in message


# -- the form template as the service renders it -------------------------------------------

def test_form_rerender_keeps_values_and_shows_messages(catalog) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "capture" / "templates"), autoescape=True)
    html = env.get_template("leadgate/form.html").render(
        resource=catalog.get("scoring"), settings=catalog.settings, fields=BY_NAME, action="/submit",
        values={"email": "ann@example", "company_size": "51-200", "terms": "accepted",
                "utm_source": "news<letter>", "landing_page": "https://site.example/resources/scoring/"},
        errors={"email": ["Enter a valid email address."], "terms_sha256": ["The terms have changed."]},
        form_error="Your request was not sent.",
    )
    page = Tags(html)
    assert html.startswith("<!--leadgate:form-->") and html.rstrip().endswith("<!--/leadgate:form-->")
    inputs = {a["name"]: a for a in page.find("input")}
    assert inputs["email"]["value"] == "ann@example" and inputs["email"]["aria-invalid"] == "true"
    assert page.text_by_id["error-email"] == "Enter a valid email address."
    assert "hidden" in page.find("p", id="error-company")[0]
    assert "checked" in inputs["terms"] and "checked" not in inputs["marketing_opt_in"]
    assert inputs["utm_source"]["value"] == "news<letter>"  # unescaped by the parser: was escaped in HTML
    assert 'value="news&lt;letter&gt;"' in html
    assert inputs["landing_page"]["value"] == "https://site.example/resources/scoring/"
    assert "selected" in page.find("option", value="51-200")[0]
    region = html.split("data-leadgate-messages")[1].split("</div>")[0]
    assert "Your request was not sent." in region and "The terms have changed." in region
    assert catalog.settings.terms.text in label_of(html, "terms")  # no privacy_url: plain words


def test_form_links_the_notice_at_the_address_it_is_given(catalog) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "capture" / "templates"), autoescape=True)
    html = env.get_template("leadgate/form.html").render(
        resource=catalog.get("scoring"), settings=catalog.settings, fields=BY_NAME,
        action="https://get.example.com/submit",
        values={}, errors={}, form_error=None, privacy_url="https://www.example.com/privacy/")
    assert label_of(html, "terms") == (
        'I agree that my details are stored to send me this resource, as described in the '
        '<a href="https://www.example.com/privacy/" target="_blank" rel="noopener">privacy notice</a>. '
        '<span class="leadgate-form__required">(required)</span>')


# -- the shipped content ---------------------------------------------------------------------

def test_shipped_content_builds_with_the_repo_config(tmp_path: Path) -> None:
    site, content = tmp_path / "site", tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    (content / "emails").mkdir()
    (content / "emails" / "delivery.txt").write_text("Hello {{ first_name }}, here it is.\n", encoding="utf-8")
    build(load_config(config_file=str(ROOT / "mkdocs.yml"), docs_dir=str(content), site_dir=str(site),
                      strict=True))
    catalog = load_catalog(content)
    assert len(catalog) >= 2
    # What content/ holds for the service alone is never published: settings, the consent
    # register, the scoring rules and the customer and competitor lists they name, email templates.
    published = {path.relative_to(site).as_posix() for path in site.rglob("*") if path.is_file()}
    assert not published & {"leadgate.yml", "consent-texts.yml", "scoring.yml", "scoring/customers.txt",
                            "scoring/competitors.txt", "emails/delivery.txt"}
    for resource in catalog:
        html = read(site, resource.url + "index.html")
        assert "data-leadgate-form" in html and 'action="/submit"' in html
        assert resource.file.name not in "".join(published_text(site).values())
    assert not list(site.rglob("*.pdf"))
    assert (site / "articles/what-is-an-mql/index.html").is_file()
    notice = main_content(read(site, "privacy/index.html"))
    controller = catalog.settings.controller
    assert str(escape(controller.name)) in notice and f'href="mailto:{controller.email}"' in notice
    assert f"{catalog.settings.retention_months} months" in notice and "{{" not in notice


@pytest.mark.slow
def test_mkdocs_serve_previews_landing_pages_without_gated_files(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "serve", "--no-livereload", "-a", f"127.0.0.1:{port}",
         "-f", str(ROOT / "mkdocs.yml")],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        html = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "resources/telling-leads-from-prospects/", timeout=2) as r:
                    html = r.read().decode("utf-8")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        assert "data-leadgate-form" in html
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "resources/telling-leads-from-prospects.pdf", timeout=5)
        assert missing.value.code == 404
        missing.value.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- the page script, in a browser --------------------------------------------------------

SUBMIT = "https://get.example.com/submit"


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; the tests skip where neither Playwright nor a Chromium is installed,
    except on CI (CI=true), where they fail as test_browser.py does."""
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except sync_api.Error as e:
            if os.environ.get("CI") == "true":
                pytest.fail(f"Chromium is required on CI (.ci/run installs Debian's chromium package): {e}",
                            pytrace=False)
            pytest.skip(f"no Chromium to run the page script in: {e}")
        yield browser
        browser.close()


class Service:
    """Stands in for the capture service: answers each POST to /submit with the next reply."""

    def __init__(self, page) -> None:
        self.replies: list[dict] = []
        self.requests: list = []
        self.held = None
        page.route(re.compile(r"^(?!file:)"), self.answer)  # the site itself loads from file://

    def answer(self, route) -> None:
        request = route.request
        if request.url != SUBMIT or not self.replies:
            route.abort()  # nothing leaves the machine
        else:
            self.requests.append(request)
            reply = self.replies.pop(0)
            if reply == "network down":
                route.abort("internetdisconnected")
            elif reply == "hold":
                self.held = route
            else:
                route.fulfill(status=reply["status"], content_type=reply.get("type", "application/json"),
                              body=reply["body"] if isinstance(reply["body"], str) else json.dumps(reply["body"]))


@pytest.fixture
def page(browser, site: Path):
    context = browser.new_context()
    page = context.new_page()
    page.service = Service(page)
    page.site = site.as_uri()
    yield page
    context.close()


def open_landing(page, query: str = "") -> None:
    page.goto(f"{page.site}/resources/scoring/index.html{query}", wait_until="domcontentloaded")


def fill_and_send(page) -> None:
    page.fill("#leadgate-email", "ann@example.org")
    page.check("#leadgate-terms")
    page.click("button[type=submit]")


@pytest.mark.browser
def test_visit_data_is_kept_for_the_session_and_sent_with_the_form(page) -> None:
    page.goto(f"{page.site}/index.html?utm_source=newsletter&utm_campaign=november")
    first = page.url
    page.goto(f"{page.site}/articles/what-is-an-mql/index.html")  # no utm here: the first ones stay
    stored = page.evaluate("() => Object.fromEntries(Object.keys(sessionStorage).map(k => [k, sessionStorage[k]]))")
    assert json.loads(stored["leadgate.utm"]) == {"utm_source": "newsletter", "utm_medium": "",
                                                  "utm_campaign": "november", "utm_term": "", "utm_content": ""}
    assert stored["leadgate.landing_page"] == first
    assert stored["leadgate.referrer"] == ""

    open_landing(page)
    page.service.replies.append({"status": 201, "body": {"ok": True, "download_url": "https://get.example.com/download/t1"}})
    fill_and_send(page)
    page.wait_for_selector(".leadgate-success")
    [request] = page.service.requests
    assert request.method == "POST" and request.headers["accept"] == "application/json"
    body = request.post_data
    for name, value in [("utm_source", "newsletter"), ("utm_campaign", "november"), ("landing_page", first),
                        ("email", "ann@example.org"), ("terms", "accepted"), ("resource_id", "scoring")]:
        assert f'name="{name}"\r\n\r\n{value}\r\n' in body, name
    assert 'name="marketing_opt_in"' not in body


@pytest.mark.browser
def test_success_shows_the_download_link_in_place(page) -> None:
    open_landing(page)
    page.service.replies.append({"status": 201, "body": {
        "ok": True, "download_url": "https://get.example.com/download/t1", "thanks_url": "https://get.example.com/thanks/t1",
        "resource": {"id": "scoring", "title": "Lead scoring <sales> trusts"}}})
    fill_and_send(page)
    success = page.wait_for_selector(".leadgate-success")
    assert page.locator("form[data-leadgate-form]").count() == 0
    link = page.locator(".leadgate-success a")
    assert link.get_attribute("href") == "https://get.example.com/download/t1"
    assert link.inner_text() == "Download “Lead scoring <sales> trusts” (PDF)"
    assert "Thank you" in success.inner_text()
    # A service older than the script does not say how long its links last: nothing invented.
    assert "The link is made for you and expires after a while." in success.inner_text()


@pytest.mark.browser
def test_success_says_how_long_the_link_works(page) -> None:
    open_landing(page)
    page.service.replies.append({"status": 201, "body": {
        "ok": True, "download_url": "https://get.example.com/download/t1",
        "link_valid_for": "1 hour and 30 minutes", "resource": {"id": "scoring", "title": "Scoring"}}})
    fill_and_send(page)
    note = page.wait_for_selector(".leadgate-success__note").inner_text()
    assert note.startswith("The link is made for you and works for 1 hour and 30 minutes. ")


@pytest.mark.browser
def test_field_errors_appear_beside_their_fields(page) -> None:
    open_landing(page)
    page.service.replies.append({"status": 422, "body": {"ok": False, "error": "Some fields need your attention.", "errors": {
        "email": ["Use your work email address."], "terms_sha256": ["The terms changed; reload the page."]}}})
    fill_and_send(page)
    page.wait_for_selector("#error-email:not([hidden])")
    assert page.inner_text("#error-email") == "Use your work email address."
    assert page.get_attribute("#leadgate-email", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "leadgate-email"
    summary = page.inner_text("[data-leadgate-messages]")
    assert "Please check the highlighted fields." in summary and "The terms changed; reload the page." in summary
    assert page.locator(".leadgate-success").count() == 0
    assert page.is_enabled("button[type=submit]")


NO_SUCCESS = [  # (what the service answers, what the visitor is told); the visitor retries each time
    ({"status": 201, "body": {"ok": False}}, "Something went wrong on our side"),
    ({"status": 200, "type": "text/html", "body": "<p>Thanks!</p>"}, "Something went wrong on our side"),
    ({"status": 409, "body": {"ok": False, "error": "The consent text changed. Reload the page."}},
     "The consent text changed. Reload the page."),
    ({"status": 502, "type": "text/html", "body": "<h1>Bad gateway</h1>"}, "Something went wrong on our side"),
    ("network down", "could not reach the download service, so nothing was sent"),
]


@pytest.mark.browser
def test_no_success_without_ok_from_the_service(page) -> None:
    open_landing(page)
    page.fill("#leadgate-email", "ann@example.org")
    page.check("#leadgate-terms")
    for reply, message in NO_SUCCESS:
        page.service.replies.append(reply)
        page.evaluate("document.querySelector('[data-leadgate-messages]').hidden = true")
        page.click("button[type=submit]")
        page.wait_for_selector("[data-leadgate-messages]:not([hidden])")
        assert message in page.inner_text("[data-leadgate-messages]"), reply
        assert page.locator(".leadgate-success").count() == 0
        assert page.input_value("#leadgate-email") == "ann@example.org"  # the form stays, filled in
        assert page.is_enabled("button[type=submit]")
    assert len(page.service.requests) == len(NO_SUCCESS)


@pytest.mark.browser
def test_button_is_disabled_while_sending(page) -> None:
    open_landing(page)
    page.service.replies.append("hold")
    fill_and_send(page)
    page.wait_for_function("() => document.querySelector('button[type=submit]').disabled")
    assert page.inner_text("button[type=submit]") == "Sending…"
    page.service.held.fulfill(status=503, content_type="application/json",
                              body=json.dumps({"ok": False, "error": "We cannot store requests right now."}))
    page.wait_for_function("() => !document.querySelector('button[type=submit]').disabled")
    assert page.inner_text("button[type=submit]") == "Get the whitepaper"


@pytest.mark.browser
def test_catalog_filters_by_tag_in_place(page) -> None:
    page.goto(f"{page.site}/resources/index.html")
    page.click(".leadgate-filter a[data-leadgate-tag=scoring]")
    assert page.is_visible("text=Lead scoring sales trusts")
    assert page.is_hidden("[data-leadgate-item] >> text=Leads versus prospects")
    assert page.is_hidden("#type-ebook")
    assert "1 resource tagged “scoring”" in page.inner_text("[data-leadgate-filter-status]")
    page.click("text=Show all")
    assert page.is_visible("[data-leadgate-item] >> text=Leads versus prospects")
