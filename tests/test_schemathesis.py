"""schemathesis against a live server: every operation of /api/openapi.json, fed generated
requests (valid ones and broken ones), never answers 5xx and answers only what it describes."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from capture.web.openapi import PATH, describe
from live import LiveServer

pytestmark = pytest.mark.slow

#: Examples per operation and generation mode (valid, broken): the run stays well under a minute.
EXAMPLES = 100
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
#: The limits let a script through this many requests (the limits have their own tests): 429
#: is a described answer, but then nothing behind it would be tried.
LIMITS_OFF = {"LEADGATE_RATE_LIMIT": "off", "LEADGATE_API_EXPORT_RATE_LIMIT": "100000/minute"}
#: Leads for the export to stream and the stage moves to move (`leadgate sample`).
SAMPLE_LEADS = 40
TOKEN = re.compile(r"lg_[A-Za-z0-9_-]{20,}")
ADMIN = "api.admin@example.com"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    """`leadgate serve` on a SQLite file of its own, its limits off, and an admin's API token
    made as an admin makes one (`leadgate token create`)."""
    workdir = tmp_path_factory.mktemp("schemathesis")
    site = workdir / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>Leadgate</title>\n")
    with LiveServer(workdir, build=False, workers=2, settings=LIMITS_OFF) as server:
        leadgate(server, "sample", "--leads", str(SAMPLE_LEADS), "--seed", "11")
        leadgate(server, "user", "add", ADMIN, "--role", "admin", "--password-stdin",
                 stdin="a long enough password\n")
        yield server, TOKEN.search(leadgate(server, "token", "create", ADMIN, "--name", "schemathesis")).group(0)


def leadgate(server: LiveServer, *args: str, stdin: str | None = None) -> str:
    """A `leadgate` command on the live server's database, as an admin types it; its output."""
    done = subprocess.run([server.leadgate, *args], input=stdin, env=server.env, cwd=server.cwd,
                          text=True, capture_output=True, timeout=120)
    assert done.returncode == 0, f"leadgate {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def api(live: tuple[LiveServer, str]) -> schemathesis.BaseSchema:
    """The description as the live server serves it (with its catalog's values)."""
    server, token = live
    config = schemathesis.Config.from_dict({
        "base-url": server.url,
        "headers": {"Authorization": f"Bearer {token}"},
        "request-timeout": 10,
    })
    return schemathesis.openapi.from_url(server.url + PATH, config=config, timeout=10)


#: Every operation of the description, as ``METHOD /path``.
OPERATIONS = [f"{method.upper()} {path}" for path, item in describe()["paths"].items()
              for method in item]
#: The operations that take input with rules to break (a body, typed parameters); the others
#: take none, or a bare string, which no request can get wrong.
TAKE_INPUT = ["POST /submit", "GET /api/leads.csv", "POST /api/leads/{lead_id}/stage"]
RUNS = [*((o, GenerationMode.POSITIVE) for o in OPERATIONS),
        *((o, GenerationMode.NEGATIVE) for o in TAKE_INPUT)]


@pytest.mark.parametrize(("operation", "mode"), RUNS)
def test_no_server_error_and_only_described_answers(api, live, operation: str, mode: GenerationMode) -> None:
    """Valid requests for every operation, and broken ones where there is input to break."""
    method, path = operation.split(" ", 1)
    run(api[path][method].as_strategy(generation_mode=mode))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_moves_of_leads_that_exist(api, mode: GenerationMode) -> None:
    """Generated ids rarely name a lead: the same moves again on the sample's leads."""
    operation = api["/api/leads/{lead_id}/stage"]["POST"]
    run(st.integers(1, SAMPLE_LEADS).flatmap(
        lambda lead_id: operation.as_strategy(generation_mode=mode, path_parameters={"lead_id": lead_id})))


def run(strategy: st.SearchStrategy[schemathesis.Case]) -> None:
    """Send each generated request to the live server and check its answer."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=strategy)
    def answers_as_described(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    answers_as_described()
