"""Request hygiene: what a request must be before any view reads it.

Each rule answers one way an attacker or a buggy script got through (issue 11):

- a ``Transfer-Encoding: chunked`` body has no length to check, and Werkzeug cut it at
  MAX_CONTENT_LENGTH without a word (a ``marketing_opt_in=yes`` past the cut was stored as
  "no"): a streamed body is read here up to the limit, refused with 413 past it, and handed on
  with its length, so no view ever sees a cut body;
- a Host the service is not configured for (TRUSTED_HOSTS) gets 400, answered from BASE_URL;
- the submit URL takes POST (and the CORS preflight): anything else is 405, even where the
  built site's catch-all route would answer 404;
- the form post's body is a form (415 otherwise), sends each field once (400 naming it), and is
  valid UTF-8 without encoded surrogates (400 naming the field): Werkzeug read a raw ``\\xff`` as
  an empty form and ``%ED%A0%80`` as literal text. The workspace's posts are held to the same
  encoding rule; they may repeat fields (a filter's choices).

The urlencoded body is decoded once, here, and handed to the views as ``request.form``.
"""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qsl

from flask import Flask, current_app, request
from flask.globals import request_ctx
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import RequestEntityTooLarge, SecurityError

from capture.errors import API, WORKSPACE, Problem
from capture.fields import BY_NAME
from capture.web.links import base_adapter

SUBMIT = "/submit"
#: What a 405 on the submit URL offers: the form post (the CORS preflight is answered all the
#: same; it is the browser's question, not a method a client chooses).
SUBMIT_METHODS = "POST"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
#: Methods whose requests carry a body worth checking.
WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: What invalid bytes become in a urlencoded body: surrogateescape turns each into
#: U+DC80–U+DCFF, and an encoded surrogate (``%ED%A0%80``) is invalid UTF-8 too, so one pattern
#: finds both.
NOT_TEXT = re.compile("[\ud800-\udfff]")
#: Werkzeug's multipart parser replaces invalid bytes with U+FFFD, so there a U+FFFD is refused
#: too (a real one pasted into a multipart field with it: rare, and the message says why).
NOT_TEXT_MULTIPART = re.compile("[\ud800-\udfff\ufffd]")

INVALID_TEXT = "This field holds bytes that are not valid UTF-8 text: type it again."
REPEATED = "This field was sent more than once: send it once."


def label(name: str) -> str:
    """A field's name as people read it in a message: its label when it is one of ours."""
    field = BY_NAME.get(name)
    return f"“{field.label}” ({name})" if field is not None else f"“{name}”"


def shown_name(name: str) -> str:
    """A posted field name fit to echo back: its invalid bytes as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_streamed_body() -> None:
    """A body sent without a length (chunked): read it here, to the limit and no further, and
    give it a length, so that every later reader sees all of it or the request is refused."""
    environ = request.environ
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not chunked and (environ.get("CONTENT_LENGTH") or "wsgi.input_terminated" not in environ):
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    body = environ["wsgi.input"].read(limit + 1) if limit is not None else environ["wsgi.input"].read()
    if limit is not None and len(body) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    for cached in ("content_length", "stream"):
        request.__dict__.pop(cached, None)


def refuse_untrusted_host() -> None:
    """400 for a Host outside TRUSTED_HOSTS (Flask found it while routing); what the error
    page builds (links, the workspace's stylesheet) then comes from BASE_URL, not that Host."""
    if not isinstance(request.routing_exception, SecurityError):
        return
    adapter = base_adapter(current_app)
    request_ctx.url_adapter = adapter
    request.__dict__["host"] = adapter.server_name
    raise Problem(400, "This service does not answer for the host name this request was sent to.")


def strict_form(repeats_allowed: bool) -> None:
    """Decode the urlencoded body once, strictly, into ``request.form``; check a multipart one."""
    mimetype = request.mimetype
    if mimetype == URLENCODED:
        text = request.get_data(cache=False).decode("utf-8", "surrogateescape")
        try:
            pairs = parse_qsl(text, keep_blank_values=True, errors="surrogateescape",
                              max_num_fields=current_app.config["MAX_FORM_PARTS"])
        except ValueError:
            raise RequestEntityTooLarge() from None
        form = ImmutableMultiDict(pairs)
        check_fields(pairs, len(form), repeats_allowed, NOT_TEXT)
        request.__dict__.update(form=form, files=ImmutableMultiDict(), stream=io.BytesIO())
    elif mimetype == MULTIPART:
        pairs = list(request.form.items(multi=True))
        check_fields(pairs, len(request.form), repeats_allowed, NOT_TEXT_MULTIPART)


def check_fields(pairs: list[tuple[str, str]], distinct: int, repeats_allowed: bool,
                 not_text: re.Pattern[str]) -> None:
    """400 naming the first field that is not valid text, or that was sent twice."""
    for name, value in pairs:
        if not_text.search(name) or not_text.search(value):
            name = shown_name(name)
            raise Problem(400, f"The field {label(name)} holds bytes that are not valid UTF-8 text.",
                          errors={name: [INVALID_TEXT]})
    if not repeats_allowed and distinct != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise Problem(400, f"The field {label(name)} was sent more than once.",
                              errors={name: [REPEATED]})
            seen.add(name)


def check_request() -> None:
    """The rules above, cheapest first; a request that passes costs a few comparisons."""
    refuse_untrusted_host()
    path, method = request.path, request.method
    if path == SUBMIT and method not in ("POST", "OPTIONS"):
        raise Problem(405, headers={"Allow": SUBMIT_METHODS})
    if method not in WITH_BODY:
        return
    read_streamed_body()
    if path == SUBMIT:
        if request.mimetype not in (URLENCODED, MULTIPART):
            raise Problem(415, "The form must be sent as application/x-www-form-urlencoded "
                               "or multipart/form-data.")
        strict_form(repeats_allowed=False)
    elif path.startswith(WORKSPACE):
        strict_form(repeats_allowed=True)
    elif path.startswith(API) and request.mimetype in (URLENCODED, MULTIPART):
        strict_form(repeats_allowed=True)


def init_app(app: Flask) -> None:
    """Run before every other hook: the CSRF check and the views read what this checked."""
    app.before_request_funcs.setdefault(None, []).insert(0, check_request)
