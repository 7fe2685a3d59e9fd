"""The public form against bots: the honeypot, the form token's time trap, forged and reused
tokens, missing headers and throw-away addresses, each tried the way a bot (or a person) sends
it, and judged by what they get back and what staff find stored.

A held post must get exactly a clean post's answer (a bot learns nothing) and land in the spam
folder (held_posts), never among the leads; a post with one small signal (no JavaScript) is
a lead whose submission carries its reasons. Time is moved on with the ``clock`` fixture rather
than waited for: the service reads it when it signs and when it checks a token.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import itsdangerous.timed
import pytest
from sqlalchemy import func, select

import capture.spam.token
from capture.db.models import HeldPost, Lead, Submission
from capture.spam.verdict import Verdict
from leads import find_lead

SITE_PAGE = "https://site.example.com/resources/leads-vs-prospects/"
JSON = {"Accept": "application/json"}


class Clock:
    """time.time() as the token signer and checker see it: standing still (a loaded machine's
    own delays do not change the seconds a test asserts), moved on at will."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    monkeypatch.setattr(capture.spam.token, "time", clock)
    monkeypatch.setattr(itsdangerous.timed, "time", clock)
    yield clock


def form_token(client) -> str:
    """What the page script does when it shows the form."""
    response = client.get("/form-token", headers={"Origin": "https://site.example.com"})
    assert response.status_code == 200
    return response.get_json()["token"]


def leads_count(store) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(Lead))


def held_post(store, email: str) -> HeldPost | None:
    with store.read() as s:
        return s.scalars(select(HeldPost).where(HeldPost.email == email)).one_or_none()


def submission_verdict(store, email: str) -> Verdict:
    lead = find_lead(store, email)
    assert lead is not None, f"{email} is not a lead"
    with store.read() as s:
        [submission] = s.scalars(select(Submission).where(Submission.lead_id == lead.id)).all()
    return Verdict.from_json(submission.spam_reasons)


def assert_held(store, email: str, *signals: str) -> dict[str, str]:
    """Not a lead; in the spam folder with these signals. Their details, by signal."""
    assert find_lead(store, email) is None
    held = held_post(store, email)
    assert held is not None, f"{email} is neither a lead nor held"
    verdict = Verdict.from_json(held.reasons)
    assert verdict.held and held.score == verdict.score
    assert sorted(r.signal for r in verdict.reasons) == sorted(signals)
    return {r.signal: r.detail for r in verdict.reasons}


def downloads(client, answer) -> bytes:
    """Follow the answer's link to the file, as the visitor would."""
    if answer.status_code == 303:
        thanks = client.get(answer.headers["Location"])
        assert thanks.status_code == 200
        link = re.search(r'href="([^"]*/download/[^"]+)"', thanks.get_data(as_text=True)).group(1)
    else:
        link = answer.get_json()["download_url"]
    with client.get(link) as response:
        assert response.status_code == 200
        return response.data


# --- The form token ---------------------------------------------------------------------------

def test_form_token_is_json_not_cached_and_readable_by_the_site_only(client):
    response = client.get("/form-token", headers={"Origin": "https://site.example.com"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Access-Control-Allow-Origin"] == "https://site.example.com"
    body = response.get_json()
    assert body["min_seconds"] == 3 and 40 < len(body["token"]) <= 200
    assert form_token(client) != body["token"]  # a nonce of its own each time

    elsewhere = client.get("/form-token", headers={"Origin": "https://evil.example.net"})
    assert elsewhere.status_code == 200 and "Access-Control-Allow-Origin" not in elsewhere.headers


def test_a_person_who_takes_their_time_is_a_clean_lead(client, store, form_post, clock):
    token = form_token(client)
    clock.advance(20)
    answer = client.post("/submit", data=form_post(form_token=token), headers={"Referer": SITE_PAGE})
    assert answer.status_code == 303
    assert submission_verdict(store, "ann.lee@example.com") == Verdict()
    assert downloads(client, answer).startswith(b"%PDF")


def test_a_post_without_javascript_is_a_lead_with_its_reason(client, store, form_post):
    answer = client.post("/submit", data=form_post())
    assert answer.status_code == 303
    verdict = submission_verdict(store, "ann.lee@example.com")
    assert [r.signal for r in verdict.reasons] == ["token_missing"] and verdict.score == 0.5
    assert not verdict.held


def test_a_stale_token_alone_is_a_lead_with_its_reason(client, store, form_post, clock):
    token = form_token(client)
    clock.advance(5 * 3600 + 120)  # the tab stayed open past FORM_TOKEN_MAX_AGE (4 h)
    assert client.post("/submit", data=form_post(form_token=token)).status_code == 303
    [reason] = submission_verdict(store, "ann.lee@example.com").reasons
    assert reason.signal == "token_stale"
    assert reason.detail == "The form was shown 5 h 2 min ago; its token lasts 4 h."


def test_a_post_faster_than_a_person_is_held_and_answered_as_any(client, store, form_post, clock):
    token = form_token(client)
    clock.advance(0.4)
    answer = client.post("/submit", data=form_post(form_token=token), headers=JSON)
    assert answer.status_code == 201 and answer.get_json()["ok"] is True
    assert downloads(client, answer).startswith(b"%PDF")
    details = assert_held(store, "ann.lee@example.com", "too_fast")
    assert details["too_fast"] == "Sent 0.4 s after the form was shown (at least 3 s expected)."


@pytest.mark.parametrize("tamper", [
    lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"),  # the signature changed
    lambda t: "eyJ4IjoxfQ" + t[10:],  # the payload changed
    lambda t: "not-a-token",
])
def test_a_forged_token_is_held(client, store, form_post, clock, tamper):
    token = form_token(client)
    clock.advance(30)
    assert client.post("/submit", data=form_post(form_token=tamper(token))).status_code == 303
    assert_held(store, "ann.lee@example.com", "token_invalid")


def test_a_token_signed_for_something_else_is_invalid(client, store, form_post, clock):
    """A download link is signed with the same key, but not for this: its salt differs."""
    answer = client.post("/submit", data=form_post(email="first@example.com"), headers=JSON)
    link_token = answer.get_json()["download_url"].rsplit("/", 1)[1]
    clock.advance(30)
    client.post("/submit", data=form_post(email="second@example.com", form_token=link_token))
    assert_held(store, "second@example.com", "token_invalid")


def test_a_token_used_for_a_stored_post_is_held_when_used_again(client, store, form_post, clock):
    token = form_token(client)
    clock.advance(10)
    first = client.post("/submit", data=form_post(form_token=token))
    again = client.post("/submit", data=form_post(email="bob@example.com", form_token=token))
    assert first.status_code == again.status_code == 303
    assert submission_verdict(store, "ann.lee@example.com") == Verdict()
    details = assert_held(store, "bob@example.com", "token_replayed")
    assert details["token_replayed"] == "The form token had already been used for a stored post."


def test_a_person_who_fixes_a_refused_post_sends_the_same_token_and_is_a_lead(
        client, store, form_post, clock):
    token = form_token(client)
    clock.advance(12)
    refused = client.post("/submit", data=form_post(form_token=token, terms=None), headers=JSON)
    assert refused.status_code == 422 and "terms" in refused.get_json()["errors"]
    clock.advance(2)
    fixed = client.post("/submit", data=form_post(form_token=token), headers=JSON)
    assert fixed.status_code == 201
    assert submission_verdict(store, "ann.lee@example.com") == Verdict()


def test_the_form_rendered_again_carries_a_token_a_quick_fix_may_use(client, store, form_post, clock):
    """Without JavaScript the service's own form comes back; ticking the box takes a second."""
    refused = client.post("/submit", data=form_post(terms=None))
    assert refused.status_code == 422
    token = re.search(r'name="form_token" maxlength="200" value="([^"]+)"',
                      refused.get_data(as_text=True)).group(1)
    clock.advance(1)
    assert client.post("/submit", data=form_post(form_token=token)).status_code == 303
    assert submission_verdict(store, "ann.lee@example.com") == Verdict()


# --- The honeypot and the headers ---------------------------------------------------------------

@pytest.mark.parametrize("as_json", [False, True])
def test_a_filled_honeypot_gets_a_persons_answer_and_a_working_link_but_no_lead(
        client, store, form_post, clock, as_json):
    headers = JSON if as_json else {}
    person_token, bot_token = form_token(client), form_token(client)
    clock.advance(30)
    person = client.post("/submit", data=form_post(form_token=person_token), headers=headers)
    bot = client.post("/submit", data=form_post(email="bot@example.com", form_token=bot_token,
                                                website="https://cheap-pills.example"), headers=headers)
    assert bot.status_code == person.status_code == (201 if as_json else 303)
    if as_json:
        assert bot.get_json().keys() == person.get_json().keys()
        assert bot.get_json()["resource"] == person.get_json()["resource"]
    assert downloads(client, bot) == downloads(client, person)
    details = assert_held(store, "bot@example.com", "honeypot")
    assert details["honeypot"] == ("The hidden “Website” field, which people never see, held "
                                   "“https://cheap-pills.example”.")
    assert leads_count(store) == 1


def test_a_honeypot_longer_than_its_limit_is_never_refused(client, store, form_post):
    answer = client.post("/submit", data=form_post(website="x" * 5000))
    assert answer.status_code == 303  # not 422: a message would teach the bot
    assert_held(store, "ann.lee@example.com", "honeypot", "token_missing")


def test_no_token_and_no_origin_nor_referer_is_held(app, store, form_post):
    script = app.test_client()  # a script: no Origin, no Referer, no page script
    script.environ_base.pop("HTTP_ORIGIN")
    assert script.post("/submit", data=form_post()).status_code == 303
    details = assert_held(store, "ann.lee@example.com", "token_missing", "no_origin")
    assert details["no_origin"] == "The post came with neither an Origin nor a Referer header."


def test_a_referer_from_another_site_without_origin_is_suspect(app, store, form_post):
    script = app.test_client()
    script.environ_base.pop("HTTP_ORIGIN")
    answer = script.post("/submit", data=form_post(), headers={"Referer": "https://spam.example.net/x"})
    assert answer.status_code == 303
    details = assert_held(store, "ann.lee@example.com", "token_missing", "foreign_referer")
    assert "https://spam.example.net/x" in details["foreign_referer"]


def test_a_referer_of_the_site_without_origin_is_no_signal(app, store, form_post, clock):
    browser = app.test_client()  # an older browser: Referer, no Origin
    browser.environ_base.pop("HTTP_ORIGIN")
    token = form_token(browser)
    clock.advance(30)
    assert browser.post("/submit", data=form_post(form_token=token),
                        headers={"Referer": SITE_PAGE}).status_code == 303
    assert submission_verdict(store, "ann.lee@example.com") == Verdict()


# --- Throw-away addresses --------------------------------------------------------------------

@pytest.mark.parametrize("email", ["someone@mailinator.com", "Someone@EU.Mailinator.com"])
def test_a_throw_away_address_is_refused_with_a_clear_message(client, store, form_post, email):
    answer = client.post("/submit", data=form_post(email=email), headers=JSON)
    assert answer.status_code == 422
    [message] = answer.get_json()["errors"]["email"]
    assert "mailinator.com gives out throw-away addresses; use your work address" in message
    page = client.post("/submit", data=form_post(email=email))
    assert page.status_code == 422 and "gives out throw-away addresses" in page.get_data(as_text=True)
    assert leads_count(store) == 0


def test_a_free_mail_address_is_not_throw_away(client, store, form_post):
    assert client.post("/submit", data=form_post(email="ann@gmail.com")).status_code == 303
    assert find_lead(store, "ann@gmail.com") is not None


def test_a_throw_away_address_is_held_when_suspect(make_app, store, form_post, clock):
    client = make_app(DISPOSABLE_EMAILS="suspect").test_client()
    token = form_token(client)
    clock.advance(30)
    answer = client.post("/submit", data=form_post(email="x@mailinator.com", form_token=token),
                         headers={"Origin": "https://site.example.com", **JSON})
    assert answer.status_code == 201
    details = assert_held(store, "x@mailinator.com", "disposable")
    assert details["disposable"] == "mailinator.com gives out throw-away addresses."


def test_verdict_reasons_travel_with_the_post_as_json(client, store, form_post):
    client.post("/submit", data=form_post())
    lead = find_lead(store, "ann.lee@example.com")
    with store.read() as s:
        stored = s.scalars(select(Submission.spam_reasons).where(Submission.lead_id == lead.id)).one()
    assert json.loads(stored) == [["token_missing", 0.5, "No form token was sent: the page script "
                                   "did not run (JavaScript off, or not a browser)."]]
