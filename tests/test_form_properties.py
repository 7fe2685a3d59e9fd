"""Property tests of the form post: whatever a browser, a script or an attacker sends to
/submit, the service never fails (no 500), answers only with a status it documents, and
never leaves a half-written lead.

Each example starts from a valid post and bends it: fields replaced with arbitrary Unicode
(control characters, lone surrogates sent as their UTF-8 bytes, full-width forms, text far
past every limit), raw bytes that are not UTF-8, values one character either side of a
field's limit, fields left out or sent twice, unknown fields; sent urlencoded or multipart,
with a length or chunked, under their content type or a wrong one, as a browser (HTML) or as the page script (JSON).

After every example the whole database is checked: every submission has its lead and both
consent events (of that lead), each lead's first and last submission are real rows of its
own, no lead is without a submission, nothing a post cannot hold was stored, and a refused
post stored nothing at all (no submission, no held spam).

Examples per test: ``LEADGATE_HYPOTHESIS_PROFILE=quick`` (the default, for the quick loop)
or ``ci`` (the default when CI=true; still well under a minute).
"""

from __future__ import annotations

import io
import os
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

import pytest
from conftest import SITE_ORIGIN
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from capture.db.models import ConsentEvent, HeldPost, Lead, Submission
from capture.fields import BY_NAME, CHECKBOX, FIELDS, PROFILE_FIELDS, SOURCE_FIELDS

#: What the description (/api/openapi.json) says /submit may answer.
DOCUMENTED = {201, 303, 400, 403, 409, 413, 415, 422, 429, 503}
ACCEPTED = {201, 303}

settings.register_profile("quick", max_examples=40, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("ci", settings.get_profile("quick"), max_examples=200)
PROFILE = settings.get_profile(os.environ.get("LEADGATE_HYPOTHESIS_PROFILE")
                               or ("ci" if os.environ.get("CI") == "true" else "quick"))

#: Characters that broke, or could break, a store, an export or a page.
TRICKY = ("\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b", "\x9f", "\xa0", "\u200b",
          "\u2028", "\u202e", "\ufeff", "\ufffd", "\ud800", "\udfff", "＝", "＋", "－", "＠", "ｓ",
          "Ａ", "%", "&", "=", "+", ";", "\"", "'", "<", "é", "e\u0301", "\U0001d538", "😀")
#: A checkbox's value as browsers and scripts send it, right and wrong.
CHECKBOX_VALUES = ["yes", "no", "", "on", "0", "false", "accepted", "YES", " yes"]
WRONG_TYPES = ["text/plain", "application/json", "application/octet-stream", ""]
TEXT_FIELDS = [f.name for f in FIELDS if f.kind != CHECKBOX]
SURROGATE = re.compile("[\ud800-\udfff]")


@pytest.fixture
def app(make_app):
    """Form limits off: these tests post far more than a person would (the limits have their own tests)."""
    return make_app(RATE_LIMIT="off")


def encoded(text: str) -> bytes:
    """As a browser or script would send it; lone surrogates as the bytes a careless encoder
    writes (the issue's ``a%ED%A0%80b``)."""
    return text.encode("utf-8", "surrogatepass")


def any_text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=()), max_size=max_size)


def tricky() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(TRICKY), max_size=12).map("".join)


@st.composite
def around_limit(draw: st.DrawFn, name: str) -> str:
    """A value a few characters either side of the field's limit, in letters that are one
    code point but several bytes or two UTF-16 units."""
    limit = BY_NAME[name].limit or 10
    length = draw(st.integers(max(0, limit - 2), limit + 2))
    return draw(st.sampled_from(["a", "é", "ｓ", "\U0001d538"])) * length


def value_for(name: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        any_text().map(encoded),
        tricky().map(encoded),
        around_limit(name).map(encoded),
        st.binary(max_size=12),  # not UTF-8 at all, often
        st.sampled_from([b"a\xffb", b"\xed\xa0\x80", b"Ann\xc2\x85Lee", b""]),
        st.integers(1, 70_000).map(lambda n: b"x" * n),  # past every limit, past the body's
    )


def part_name(name: str) -> bytes:
    """A field name in a multipart header, escaped as browsers do (HTML's form-data encoding)."""
    return encoded(name).replace(b'"', b"%22").replace(b"\r", b"%0D").replace(b"\n", b"%0A")


@dataclass
class Post:
    fields: list[tuple[str, bytes]]
    multipart: bool
    chunked: bool
    json: bool
    origin: str | None
    #: A content type other than the body's (a script's mistake), or None for the right one.
    wrong_type: str | None = None

    def body(self) -> tuple[bytes, str]:
        if not self.multipart:
            return b"&".join(f"{quote_from_bytes(encoded(name))}={quote_from_bytes(value)}".encode()
                             for name, value in self.fields), "application/x-www-form-urlencoded"
        boundary = f"leadgate-{uuid.uuid4().hex}"
        parts = [b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"" + part_name(name)
                 + b"\"\r\n\r\n" + value + b"\r\n" for name, value in self.fields]
        return b"".join(parts) + b"--" + boundary.encode() + b"--\r\n", f"multipart/form-data; boundary={boundary}"


@st.composite
def posts(draw: st.DrawFn, valid: dict[str, str]) -> Post:
    """A valid post, bent: each field kept, replaced, left out or sent twice; maybe more fields."""
    fields: list[tuple[str, bytes]] = []
    for name in [f.name for f in FIELDS]:
        action = draw(st.sampled_from(["keep"] * 12 + ["replace"] * 2 + ["drop", "repeat"]))
        value = encoded(valid.get(name, ""))
        if action == "drop" or (name not in valid and action == "keep"):
            continue
        if action == "replace":
            value = draw(value_for(name))
        fields.append((name, value))
        if action == "repeat":
            fields.append((name, draw(st.one_of(st.just(value), value_for(name)))))
    fields += draw(st.lists(st.tuples(any_text(12), value_for("website")), max_size=2))
    return Post(fields, multipart=draw(st.booleans()), chunked=draw(st.booleans()),
                json=draw(st.booleans()), origin=draw(st.sampled_from([SITE_ORIGIN, SITE_ORIGIN, None])),
                wrong_type=draw(st.sampled_from([None] * 8 + WRONG_TYPES)))


def send(app, post: Post):
    body, content_type = post.body()
    headers = {"Content-Type": post.wrong_type if post.wrong_type is not None else content_type}
    environ: dict[str, object] = {}
    if post.json:
        headers["Accept"] = "application/json"
    if post.origin:
        headers["Origin"] = post.origin
    if post.chunked:
        # As gunicorn hands a chunked body to the app: no length, the stream ends by itself.
        headers["Transfer-Encoding"] = "chunked"
        environ["wsgi.input_terminated"] = True
        return app.test_client().post("/submit", input_stream=io.BytesIO(body), headers=headers,
                                      environ_overrides=environ)
    return app.test_client().post("/submit", data=body, headers=headers)


def unstorable(value: str) -> bool:
    """Control characters (C0, DEL, C1) or lone surrogates: what no field may store."""
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def counts(store) -> tuple[int, int, int]:
    with store.read() as s:
        return tuple(s.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                     for model in (Submission, Lead, HeldPost))


def assert_whole(store) -> None:
    """No half-written lead anywhere in the database, and nothing unstorable in it."""
    with store.read() as s:
        leads = {lead.id: lead for lead in s.scalars(select(Lead))}
        submissions = {sub.id: sub for sub in s.scalars(select(Submission))}
        events = s.execute(select(ConsentEvent.submission_id, ConsentEvent.lead_id, ConsentEvent.kind)).all()
    kinds: dict[int, set[str]] = {}
    for submission_id, lead_id, kind in events:
        assert submission_id is None or submissions[submission_id].lead_id == lead_id
        kinds.setdefault(submission_id, set()).add(kind)
    for sub in submissions.values():
        assert sub.lead_id in leads, f"submission {sub.id} has no lead"
        assert kinds.get(sub.id) == {"terms", "marketing"}, f"submission {sub.id} consent events: {kinds.get(sub.id)}"
        for name in (*PROFILE_FIELDS, *SOURCE_FIELDS):
            value = getattr(sub, name) or ""
            assert len(value) <= BY_NAME[name].limit and not unstorable(value), (name, value)
    with_submission = {sub.lead_id for sub in submissions.values()}
    for lead in leads.values():
        assert lead.id in with_submission, f"lead {lead.id} has no submission"
        for ref in (lead.first_submission_id, lead.last_submission_id):
            assert ref in submissions and submissions[ref].lead_id == lead.id, (lead.id, ref)


def check(app, store, post: Post) -> int:
    before = counts(store)
    response = send(app, post)
    status = response.status_code
    assert status in DOCUMENTED, (status, response.get_data(as_text=True)[:500])
    after = counts(store)
    if status in ACCEPTED:
        # One submission (or one held post, for a post judged spam); at most one new lead.
        assert after[0] + after[2] - before[0] - before[2] <= 1 and after[1] - before[1] <= 1
    else:
        assert after == before, f"refused with {status} but stored {after} (was {before})"
    assert_whole(store)
    return status


@pytest.fixture
def valid(form_post: Callable[..., dict[str, str]]) -> dict[str, str]:
    return form_post(marketing_opt_in="yes")


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_any_post_is_answered_as_documented_and_leaves_no_half_lead(app, store, valid) -> None:
    statuses: set[int] = set()

    fields = [(name, encoded(value)) for name, value in valid.items()]
    odd_names = [("\ud800", b"x"), ('a"\r\nb', b"y")]

    @settings(PROFILE)
    @given(post=posts(valid))
    @example(post=Post(fields + odd_names, multipart=True, chunked=False, json=True, origin=SITE_ORIGIN))
    @example(post=Post(fields + odd_names, multipart=False, chunked=True, json=False, origin=None))
    def prop(post: Post) -> None:
        statuses.add(check(app, store, post))

    prop()
    # The examples reached both the storing path and the refusals, or they proved little.
    assert statuses & ACCEPTED and statuses - ACCEPTED, statuses


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_any_single_field_value_is_stored_whole_or_refused(app, store, valid) -> None:
    """One field changed to any valid Unicode, nothing else (a checkbox too: unticked, or
    "ticked" in the words WTForms would take): a text value is kept as sent (less the spaces
    at its ends) or the post is refused; never stored cut short or altered.
    (Bytes that are not UTF-8 are the request hygiene's, which refuses them with 400.)"""

    @settings(PROFILE)
    @given(name=st.sampled_from([f.name for f in FIELDS]), value=st.one_of(
        st.text(max_size=40), tricky().filter(lambda v: not SURROGATE.search(v)),
        st.sampled_from(TEXT_FIELDS).flatmap(around_limit), st.sampled_from(CHECKBOX_VALUES)))
    def prop(name: str, value: str) -> None:
        email = f"p-{uuid.uuid4().hex[:12]}@example.com"
        fields = {**valid, "email": email, name: value}
        post = Post([(k, encoded(v)) for k, v in fields.items()], multipart=False, chunked=False,
                    json=True, origin=SITE_ORIGIN)
        status = check(app, store, post)
        if status in ACCEPTED and name in (*PROFILE_FIELDS, *SOURCE_FIELDS):
            with store.read() as s:
                stored = s.scalars(select(Submission).where(Submission.email == email)).one_or_none()
            if stored is not None:  # None: held as spam, not a lead
                assert (getattr(stored, name) or "") == value.strip(" "), name

    prop()


@pytest.mark.parametrize("database_kind", ["postgresql"], indirect=True)
def test_on_postgresql_too(app, store, valid) -> None:
    """The same properties where NUL and lone surrogates cannot even be stored."""

    @settings(PROFILE, max_examples=max(10, PROFILE.max_examples // 4))
    @given(post=posts(valid))
    def prop(post: Post) -> None:
        check(app, store, post)

    prop()
