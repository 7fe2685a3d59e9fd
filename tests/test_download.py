"""Signed download links: the file for the right person, recorded, and nothing for a forged link."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from conftest import SECRET_KEY, TINY_PDF
from itsdangerous import TimestampSigner
from sqlalchemy import select

from capture.web.links import DownloadClaim, LinkExpired, LinkInvalid, read_download, sign_download
from capture.db.models import Download

JSON = {"Accept": "application/json"}
WEEK = 7 * 24 * 3600


def request_link(client, form_post, resource_id: str = "leads-vs-prospects") -> str:
    response = client.post("/submit", data=form_post(resource_id), headers=JSON)
    assert response.status_code == 201
    return response.get_json()["download_url"]


def downloads(store) -> list[Download]:
    with store.read() as s:
        return s.scalars(select(Download).order_by(Download.id)).all()


def test_download_sends_the_pdf_as_an_attachment(client, form_post, store):
    url = request_link(client, form_post)
    with client.get(url, environ_base={"REMOTE_ADDR": "198.51.100.23"}) as response:
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        assert response.headers["Content-Disposition"] == "attachment; filename=leads-vs-prospects.pdf"
        assert response.headers["Cache-Control"] == "private, no-store"
        assert response.get_data() == TINY_PDF
    [row] = downloads(store)
    assert (row.resource_id, row.ip_prefix) == ("leads-vs-prospects", "198.51.100.0/24")
    assert row.submission_id is not None


def test_every_download_is_recorded(client, form_post, store):
    url = request_link(client, form_post, "scoring")
    for _ in range(2):
        with client.get(url) as response:
            assert response.status_code == 200
    assert [d.resource_id for d in downloads(store)] == ["scoring", "scoring"]


def tampered(url: str) -> str:
    """Change the first character of the signature (the last one may differ only in padding)."""
    head, signature = url.rsplit(".", 1)
    return f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


@pytest.mark.parametrize("make_path", [
    lambda url: tampered(url),
    lambda url: "/download/not-a-token",
    lambda url: "/download/" + sign_download("another-secret-key-entirely-0123456789",
                                             DownloadClaim(uuid.uuid4(), "leads-vs-prospects")),
    lambda url: "/download/" + url.rsplit("/", 1)[1].split(".", 1)[1],
    lambda url: url.replace(".leads-vs-prospects.", ".scoring."),
], ids=["changed signature", "garbage", "other key", "payload cut off", "other resource"])
def test_forged_link_is_not_found(client, form_post, store, make_path):
    url = make_path(request_link(client, form_post))
    response = client.get(url)
    assert response.status_code == 404
    assert "There is nothing at this address" in response.get_data(as_text=True)
    assert downloads(store) == []


def test_expired_link_explains_and_links_back_to_the_landing_page(make_app, form_post, store,
                                                                  monkeypatch):
    client = make_app(SITE_URL="https://site.example.com").test_client()
    past = int(time.time()) - WEEK - 60
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: past)
    url = request_link(client, form_post)
    thanks = client.post("/submit", data=form_post()).headers["Location"]
    monkeypatch.undo()

    for path in (url, thanks):
        response = client.get(path)
        page = response.get_data(as_text=True)
        assert response.status_code == 410
        assert "has expired" in page
        assert 'href="https://site.example.com/resources/leads-vs-prospects/"' in page
    assert downloads(store) == []


def test_link_still_valid_within_its_age(make_app, form_post, monkeypatch):
    client = make_app().test_client()
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - WEEK + 60)
    url = request_link(client, form_post)
    monkeypatch.undo()
    with client.get(url) as response:
        assert response.status_code == 200


def visible_text(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


@pytest.mark.parametrize(("max_age", "words"), [
    (3600, "1 hour"),
    (WEEK, "7 days"),
    (90 * 60, "1 hour and 30 minutes"),
    (86400 + 60, "1 day and 1 minute"),
    (45, "45 seconds"),
])
def test_both_paths_state_the_lifetime_of_the_link(make_app, form_post, max_age, words):
    client = make_app(DOWNLOAD_MAX_AGE=max_age).test_client()
    answer = client.post("/submit", data=form_post(), headers=JSON).get_json()
    assert answer["link_valid_for"] == words  # the page script shows it (tests/test_browser.py)
    thanks = client.get(client.post("/submit", data=form_post()).headers["Location"])
    assert f"This link is personal and works for {words} after your request." in visible_text(
        thanks.get_data(as_text=True))


def test_the_stated_hour_is_the_real_lifetime(make_app, form_post, monkeypatch):
    client = make_app(DOWNLOAD_MAX_AGE=3600).test_client()
    links = {}
    for age in (3600 - 60, 3600 + 60):  # sent that many seconds ago
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - age)
        links[age] = client.post("/submit", data=form_post()).headers["Location"]
        monkeypatch.undo()
    page = client.get(links[3600 - 60]).get_data(as_text=True)
    assert "works for 1 hour after your request" in page
    with client.get(links[3600 - 60].replace("/thanks/", "/download/")) as response:
        assert response.status_code == 200
    assert client.get(links[3600 + 60].replace("/thanks/", "/download/")).status_code == 410


def test_resource_removed_since_the_link_was_sent(make_app, content_dir, form_post):
    url = request_link(make_app().test_client(), form_post, "scoring")
    (content_dir / "resources" / "scoring.md").unlink()
    response = make_app().test_client().get(url)
    assert response.status_code == 410
    assert "no longer available" in response.get_data(as_text=True)


def test_missing_file_is_gone_not_an_error(client, form_post, content_dir):
    url = request_link(client, form_post, "scoring")
    (content_dir / "resources" / "scoring.pdf").unlink()
    assert client.get(url).status_code == 410


def test_tokens_name_the_request_and_the_resource():
    claim = DownloadClaim(uuid.uuid4(), "scoring")
    token = sign_download(SECRET_KEY, claim)
    assert read_download(SECRET_KEY, token, max_age=60) == claim
    with pytest.raises(LinkInvalid):
        read_download("another-secret-key-entirely-0123456789", token, max_age=60)
    with pytest.raises(LinkExpired) as expired:
        read_download(SECRET_KEY, token, max_age=-1)
    assert expired.value.claim == claim
    assert token.startswith(f"{claim.submission_uid.hex}.scoring.")
