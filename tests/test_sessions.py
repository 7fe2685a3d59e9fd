"""Workspace sessions end on the server: a copied cookie opens nothing after sign-out, a new
password, a disabled account, the end of its lifetime or idle time, or "End" on the sessions page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from staff import EMAIL, PASSWORD, add_user, csrf_token, sign_in, signed_in

from capture.config import ConfigError
from capture.db.models import StaffSession
from capture.staff.sessions import describe_browser, session_id

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
EDGE = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91")


def cookie_of(client) -> str:
    return client.get_cookie("session").value


def browser_with(app, cookie: str):
    """Another browser (an attacker's) that was handed a copy of the cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def refused(response) -> bool:
    """Sent to the sign-in page, as anyone who is not signed in."""
    return response.status_code == 302 and response.headers["Location"].startswith("/workspace/login")


def sign_out(client):
    return client.post("/workspace/logout", data={"csrf_token": csrf_token(client, "/workspace/")})


def rows(store) -> list[StaffSession]:
    with store.read() as s:
        return list(s.scalars(select(StaffSession).order_by(StaffSession.created_at)))


def move_clock(store, **times: timedelta) -> None:
    """Age every session: each named time moved back by the given amount."""
    with store.write() as s:
        for session in s.scalars(select(StaffSession)):
            for name, by in times.items():
                setattr(session, name, getattr(session, name) - by)


# --- Sign-out ends the session for every copy of the cookie -------------------------------------

def test_a_cookie_copied_before_sign_out_opens_nothing_after(app, client, runner, store):
    signed_in(client, runner)
    copy = cookie_of(client)
    thief = browser_with(app, copy)
    assert thief.get("/workspace/").status_code == 200  # the copy works while the session stands
    assert thief.get("/workspace/leads.csv").status_code == 200

    assert sign_out(client).status_code == 303
    assert refused(client.get("/workspace/"))
    replay = browser_with(app, copy)
    assert refused(replay.get("/workspace/"))
    assert refused(replay.get("/workspace/leads.csv"))
    assert refused(replay.get("/workspace/dashboard"))
    [row] = rows(store)
    assert row.ended_at is not None


def test_the_cookie_holds_a_key_the_table_does_not(app, client, runner, store):
    """The row's id is the key's SHA-256: a copy of the table (its ids) opens no session."""
    signed_in(client, runner)
    [row] = rows(store)
    serializer = app.session_interface.get_signing_serializer(app)
    key = serializer.loads(cookie_of(client))["session_key"]
    assert row.id == session_id(key) != key
    forged = browser_with(app, serializer.dumps({"session_key": row.id}))
    assert refused(forged.get("/workspace/"))
    assert client.get("/workspace/").status_code == 200


def test_a_signed_cookie_without_a_session_row_opens_nothing(app, runner):
    """The scheme before server-side sessions: a signed user id was enough."""
    add_user(runner)
    serializer = app.session_interface.get_signing_serializer(app)
    old_style = browser_with(app, serializer.dumps({"user_id": 1, "_permanent": True}))
    assert refused(old_style.get("/workspace/"))


def test_each_sign_in_is_a_session_of_its_own(app, client, runner, store):
    signed_in(client, runner)
    laptop = app.test_client()
    assert sign_in(laptop, headers={"User-Agent": FIREFOX}, environ_base={"REMOTE_ADDR": "203.0.113.77"}
                   ).status_code == 303
    first, second = rows(store)
    assert first.user_id == second.user_id and first.id != second.id
    assert second.user_agent == FIREFOX
    assert second.ip_prefix == "203.0.113.0/24"  # the network, never the address
    sign_out(laptop)
    assert client.get("/workspace/").status_code == 200  # signing out one leaves the other


def test_signing_in_again_ends_the_browsers_previous_session(app, client, runner, store):
    signed_in(client, runner)
    copy = cookie_of(client)
    token = csrf_token(client, "/workspace/")
    again = client.post("/workspace/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    assert again.status_code == 303
    assert refused(browser_with(app, copy).get("/workspace/"))
    assert client.get("/workspace/").status_code == 200
    assert [row.ended_at is None for row in rows(store)] == [False, True]


def test_sessions_over_for_a_month_are_deleted_at_the_next_sign_in(app, client, runner, store):
    signed_in(client, runner)
    sign_out(client)
    assert sign_in(client).status_code == 303
    sign_out(client)
    move_clock(store, created_at=timedelta(days=31), last_seen_at=timedelta(days=31),
               expires_at=timedelta(days=31), ended_at=timedelta(days=31))
    month_ago = datetime.now(UTC) - timedelta(days=29)
    with store.write() as s:  # one of them was used and ended only 29 days ago: it stays
        s.execute(update(StaffSession).where(StaffSession.id == rows(store)[1].id)
                  .values(created_at=month_ago - timedelta(hours=1), last_seen_at=month_ago,
                          expires_at=month_ago + timedelta(hours=11), ended_at=month_ago))
    assert sign_in(client).status_code == 303
    assert [row.ended_at is None for row in rows(store)] == [False, True]


# --- A new password or a disabled account ends every session ------------------------------------

def test_new_password_ends_every_session(app, client, runner, store):
    signed_in(client, runner)
    phone = app.test_client()
    assert sign_in(phone).status_code == 303
    copy = cookie_of(client)
    result = runner.invoke(args=["user", "password", EMAIL, "--password-stdin"], input="a new long password\n")
    assert result.exit_code == 0, result.output
    assert refused(client.get("/workspace/"))
    assert refused(phone.get("/workspace/"))
    assert refused(browser_with(app, copy).get("/workspace/leads.csv"))
    assert all(row.ended_at is not None for row in rows(store))
    assert sign_in(client, password="a new long password").status_code == 303
    assert client.get("/workspace/").status_code == 200


def test_disabling_an_account_ends_its_sessions_for_good(app, client, runner, store):
    signed_in(client, runner)
    copy = cookie_of(client)
    assert runner.invoke(args=["user", "disable", EMAIL]).exit_code == 0
    assert refused(browser_with(app, copy).get("/workspace/"))
    # Enabled again, the account signs in afresh: the old session stays ended.
    assert runner.invoke(args=["user", "enable", EMAIL]).exit_code == 0
    assert refused(browser_with(app, copy).get("/workspace/"))
    assert [row.ended_at is not None for row in rows(store)] == [True]


def test_other_accounts_keep_their_sessions(app, client, runner):
    signed_in(client, runner)
    other = app.test_client()
    signed_in(other, runner, "mia@example.com", "marketing")
    runner.invoke(args=["user", "password", EMAIL, "--password-stdin"], input="a new long password\n")
    assert other.get("/workspace/").status_code == 200


# --- Sessions expire: in all, and when unused -----------------------------------------------------

def test_a_session_ends_at_its_absolute_lifetime_however_much_it_is_used(make_app, store):
    app = make_app(PERMANENT_SESSION_LIFETIME=7200)
    client, runner = app.test_client(), app.test_cli_runner()
    signed_in(client, runner)
    [row] = rows(store)
    assert row.expires_at - row.created_at == timedelta(hours=2)
    move_clock(store, created_at=timedelta(minutes=119), expires_at=timedelta(minutes=119))
    assert client.get("/workspace/").status_code == 200  # used just now: still standing
    move_clock(store, created_at=timedelta(minutes=2), expires_at=timedelta(minutes=2))
    assert refused(client.get("/workspace/"))


def test_a_session_unused_for_the_idle_time_ends(make_app, store):
    app = make_app(SESSION_IDLE_SECONDS=600)
    client, runner = app.test_client(), app.test_cli_runner()
    signed_in(client, runner)
    copy = cookie_of(client)
    move_clock(store, last_seen_at=timedelta(minutes=9))
    assert client.get("/workspace/").status_code == 200  # 9 minutes idle: still standing, renewed
    move_clock(store, last_seen_at=timedelta(minutes=9))
    assert client.get("/workspace/").status_code == 200
    move_clock(store, last_seen_at=timedelta(minutes=10, seconds=1))
    assert refused(browser_with(app, copy).get("/workspace/"))
    assert refused(client.get("/workspace/"))
    [row] = rows(store)
    assert row.ended_at is not None


def test_last_use_is_written_at_most_once_a_minute(client, runner, store):
    signed_in(client, runner)
    [before] = rows(store)
    for _ in range(3):
        assert client.get("/workspace/").status_code == 200
    [same] = rows(store)
    assert same.last_seen_at == before.last_seen_at  # pages within the minute write nothing
    move_clock(store, last_seen_at=timedelta(seconds=61))
    assert client.get("/workspace/").status_code == 200
    [renewed] = rows(store)
    assert datetime.now(UTC) - renewed.last_seen_at < timedelta(seconds=5)


@pytest.mark.parametrize("setting", ["PERMANENT_SESSION_LIFETIME", "SESSION_IDLE_SECONDS"])
def test_session_lifetimes_must_be_positive(make_app, setting):
    with pytest.raises(ConfigError, match=f"LEADGATE_{setting} must be a positive number of seconds"):
        make_app(**{setting: 0})


# --- The sessions page -------------------------------------------------------------------------------

def test_the_sessions_page_lists_this_and_the_other_sessions(app, client, runner):
    signed_in(client, runner)
    laptop = app.test_client()
    sign_in(laptop, headers={"User-Agent": FIREFOX}, environ_base={"REMOTE_ADDR": "203.0.113.77"})
    page = client.get("/workspace/")
    assert 'href="/workspace/sessions/"' in page.get_data(as_text=True)  # from every page's header
    listing = client.get("/workspace/sessions/")
    assert listing.status_code == 200
    assert listing.headers["Cache-Control"] == "private, no-store"
    html = listing.get_data(as_text=True)
    assert html.count("<tr") == 3  # the header and two sessions
    assert html.count("This session") == 1
    assert "Firefox 121 on Linux" in html
    assert "203.0.113.0/24" in html
    assert "Sign out everywhere else" in html
    assert "style=" not in html and "<script" not in html
    assert "12 hours after signing in" in html and "not been used for 1 hour" in html


def test_ending_another_session_from_the_page(app, client, runner, store):
    signed_in(client, runner)
    laptop = app.test_client()
    sign_in(laptop, headers={"User-Agent": FIREFOX})
    _, other = rows(store)
    done = client.post("/workspace/sessions/end", data={"session": other.id,
                                                        "csrf_token": csrf_token(client, "/workspace/sessions/")})
    assert (done.status_code, done.headers["Location"]) == (303, "/workspace/sessions/")
    assert "Session ended" in client.get("/workspace/sessions/").get_data(as_text=True)
    assert refused(laptop.get("/workspace/"))
    assert client.get("/workspace/").status_code == 200
    again = client.post("/workspace/sessions/end", data={"session": other.id,
                                                         "csrf_token": csrf_token(client, "/workspace/sessions/")})
    assert again.status_code == 404


def test_sign_out_everywhere_else(app, client, runner, store):
    signed_in(client, runner)
    others = [app.test_client() for _ in range(2)]
    for other in others:
        assert sign_in(other).status_code == 303
    done = client.post("/workspace/sessions/end-others",
                       data={"csrf_token": csrf_token(client, "/workspace/sessions/")})
    assert done.status_code == 303
    assert "2 sessions ended" in client.get("/workspace/sessions/").get_data(as_text=True)
    assert all(refused(other.get("/workspace/")) for other in others)
    assert client.get("/workspace/").status_code == 200
    assert [row.ended_at is None for row in rows(store)] == [True, False, False]


def test_no_one_ends_another_accounts_session(app, client, runner, store):
    signed_in(client, runner)
    mia = app.test_client()
    signed_in(mia, runner, "mia@example.com", "marketing")
    _, mias = rows(store)
    attempt = client.post("/workspace/sessions/end", data={"session": mias.id,
                                                           "csrf_token": csrf_token(client, "/workspace/sessions/")})
    assert attempt.status_code == 404
    assert mia.get("/workspace/").status_code == 200
    client.post("/workspace/sessions/end-others", data={"csrf_token": csrf_token(client, "/workspace/sessions/")})
    assert mia.get("/workspace/").status_code == 200


def test_this_session_is_ended_by_signing_out_not_from_the_list(client, runner, store):
    signed_in(client, runner)
    [this] = rows(store)
    attempt = client.post("/workspace/sessions/end", data={"session": this.id,
                                                           "csrf_token": csrf_token(client, "/workspace/sessions/")})
    assert attempt.status_code == 400
    assert "to end it, sign out" in attempt.get_data(as_text=True)
    assert client.get("/workspace/").status_code == 200


def test_ending_sessions_needs_the_forms_csrf_token(app, client, runner, store):
    signed_in(client, runner)
    laptop = app.test_client()
    sign_in(laptop)
    _, other = rows(store)
    assert client.post("/workspace/sessions/end", data={"session": other.id}).status_code == 400
    assert client.post("/workspace/sessions/end-others").status_code == 400
    assert laptop.get("/workspace/").status_code == 200


@pytest.mark.parametrize(("user_agent", "shown"), [
    (FIREFOX, "Firefox 121 on Linux"),
    (SAFARI_IPHONE, "Safari 17 on iOS"),
    (EDGE, "Edge 120 on Windows"),
    ("curl/8.5.0", "curl 8"),
    ("", "Unknown browser"),
    ("SomethingElse/1.0", "SomethingElse/1.0"),
])
def test_browsers_are_named_as_people_know_them(user_agent, shown):
    assert describe_browser(user_agent) == shown
