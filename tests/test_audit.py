"""The export log: every export — command line, workspace, API — recorded with who, the filter
given and the rows; read by admins only; a stream cut off stays unfinished."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from capture.staff import exports
from staff import signed_in
from test_api_export import T0, create_token, csv_rows, get, record


@pytest.fixture
def leads(store) -> None:
    record(store, "ann@acme.example", company="Acme", utm_source="linkedin", marketing_opt_in=True)
    record(store, "bob@acme.example", company="Acme", utm_source="linkedin",
           created_at=T0 + timedelta(days=1))
    record(store, "cy@initech.example", company="Initech", utm_source="newsletter",
           created_at=T0 + timedelta(days=2))


def log_rows(client) -> list[list[str]]:
    """The export log's table as an admin reads it: each row's cells, as text."""
    page = client.get("/workspace/audit")
    assert page.status_code == 200
    body = page.get_data(as_text=True).split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_every_channel_is_recorded_with_actor_filter_and_rows(app, client, runner, leads, tmp_path):
    out = tmp_path / "linkedin.csv"
    result = runner.invoke(args=["export", "--utm-source", "linkedin", "--columns", "email", "-o", str(out)])
    assert result.exit_code == 0, result.output

    signed_in(client, runner, "sam@example.com", "sales")
    assert len(csv_rows(client.get("/workspace/leads.csv?q=initech"))) == 1

    token = create_token(runner, "crm@example.com")
    assert len(csv_rows(get(client, token, "?marketing=yes&columns=email,company"))) == 1

    admin = app.test_client()
    signed_in(admin, runner, "ada@example.com", "admin")
    rows = log_rows(admin)
    assert [row[1:] for row in rows] == [
        ["API", f"crm@example.com (token {token[:9]}…)", "marketing=yes&columns=email,company", "1", "Yes"],
        ["Workspace", "sam@example.com", "q=initech", "1", "Yes"],
        ["Command line", rows[2][2], "--utm-source linkedin --columns email", "2", "Yes"],
    ]
    assert rows[2][2].endswith("(command line)")
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row[0]) for row in rows)

    log = runner.invoke(args=["export-log"])
    assert log.exit_code == 0
    lines = log.output.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"\S+Z  api        crm@example\.com \(token lg_\S+…\)  1 lead  finished  "
                        r"marketing=yes&columns=email,company", lines[0])
    assert "  cli        " in lines[2]
    assert lines[2].endswith("2 leads  finished  --utm-source linkedin --columns email")
    only = runner.invoke(args=["export-log", "--channel", "workspace", "--limit", "5"]).output.splitlines()
    assert len(only) == 1 and "sam@example.com" in only[0]


def test_only_admins_read_the_export_log(app, runner, leads):
    for role, status in (("sales", 403), ("marketing", 403), ("admin", 200)):
        client = app.test_client()
        signed_in(client, runner, f"{role}@example.com", role)
        page = client.get("/workspace/audit")
        assert page.status_code == status, role
        text = page.get_data(as_text=True)
        assert ('href="/workspace/audit"' in text) == (role == "admin"), role  # the nav link
        if status == 403:
            assert "only admin accounts read the export log" in text
    anonymous = app.test_client().get("/workspace/audit")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/workspace/login")


@pytest.mark.parametrize("slots", [2, 0])
def test_a_cut_stream_stays_unfinished(make_app, leads, slots, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADGATE_INSTANCE_PATH", str(tmp_path / "instance"))
    app = make_app(EXPORT_SLOTS=slots)
    client, runner = app.test_client(), app.test_cli_runner()
    token = create_token(runner)
    response = get(client, token, buffered=False)
    body = iter(response.response)
    assert next(body).startswith(b"email,")  # the header line arrives…
    response.close()  # …and the script hangs up
    whole = get(client, token)
    assert len(csv_rows(whole)) == 3
    admin = app.test_client()
    signed_in(admin, runner, "ada@example.com", "admin")
    rows = log_rows(admin)
    assert [(row[4], row[5]) for row in rows] == [("3", "Yes"), (rows[1][4], "Not finished")]
    assert int(rows[1][4]) <= 3  # what was made before the cut


def test_an_export_that_fails_midway_stays_unfinished(make_app, runner, leads, monkeypatch, tmp_path):
    monkeypatch.setenv("LEADGATE_INSTANCE_PATH", str(tmp_path / "instance"))
    app = make_app()

    def failing(*args, **kwargs):
        yield b"email\r\n"
        raise RuntimeError("the database went away")

    monkeypatch.setattr(exports, "iter_export", failing)
    token = create_token(app.test_cli_runner())
    response = get(app.test_client(), token, buffered=False)
    body = iter(response.response)
    next(body)
    with pytest.raises(RuntimeError):
        next(body)
    response.close()
    assert "not finished" in app.test_cli_runner().invoke(args=["export-log"]).output


def test_marketing_cannot_export_when_an_admin_turned_it_off(make_app, leads):
    for can, status in ((True, 200), (False, 403)):
        app = make_app(MARKETING_CAN_EXPORT=can)
        runner = app.test_cli_runner()
        mia = app.test_client()
        mia_email = f"mia.{str(can).lower()}@example.com"
        signed_in(mia, runner, mia_email, "marketing")
        assert ("Download CSV" in mia.get("/workspace/").get_data(as_text=True)) is can
        page = mia.get("/workspace/leads.csv")
        assert page.status_code == status
        result = runner.invoke(args=["token", "create", mia_email])
        token = re.search(r"lg_\S+", result.output).group(0)
        api = get(app.test_client(), token)
        assert api.status_code == status
        if not can:
            assert "an admin has turned exports off for marketing accounts" in page.get_data(as_text=True)
            assert api.get_json()["error"] == (
                "This token belongs to mia.false@example.com, a marketing account: an admin has turned exports "
                "off for marketing accounts (LEADGATE_MARKETING_CAN_EXPORT=false).")
            # Sales still export; the refusals were not exports.
            sam = app.test_client()
            signed_in(sam, runner, "sam@example.com", "sales")
            assert "Download CSV" in sam.get("/workspace/").get_data(as_text=True)
            assert len(csv_rows(sam.get("/workspace/leads.csv"))) == 3
            lines = runner.invoke(args=["export-log"]).output.splitlines()
            # The two of marketing while it could, then sam's: no line for the refusals.
            assert [line.split()[2] for line in lines] == [
                "sam@example.com", "mia.true@example.com", "mia.true@example.com"]
        else:
            assert len(csv_rows(page)) == 3 and len(csv_rows(api)) == 3


def test_the_log_pages_newest_first(app, client, runner, leads):
    for n in range(52):
        assert runner.invoke(args=["export", "--columns", "email", "--search", f"run{n}"]).exit_code == 0
    signed_in(client, runner, "ada@example.com", "admin")
    first = client.get("/workspace/audit").get_data(as_text=True)
    searches = re.findall(r"--search run(\d+)", first)
    assert searches == [str(n) for n in range(51, 1, -1)]  # 50 a page, the latest first
    older = html.unescape(re.search(r'href="([^"]+)" rel="next">Older', first).group(1))
    second = client.get(older).get_data(as_text=True)
    assert re.findall(r"--search run(\d+)", second) == ["1", "0"]
    assert "Older" not in second and "Newest" in second
    refused = client.get("/workspace/audit?before=x1")
    assert refused.status_code == 400 and "start from the newest exports" in refused.get_data(as_text=True)


@pytest.mark.parametrize(("args", "message"), [
    (["export-log", "--limit", "0"], "Error: Invalid value for '--limit': 0 is not in the range 1<=x<=10000."),
    (["export-log", "--channel", "ftp"], "Error: Invalid value for '--channel': 'ftp' is not one of 'cli', "
                                         "'workspace', 'api'."),
])
def test_export_log_mistakes_are_one_error_line(runner, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [message]


def test_an_empty_log_says_so(runner):
    result = runner.invoke(args=["export-log"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "No exports recorded yet.\n")


def test_head_exports_nothing_and_is_not_recorded(client, runner, leads):
    token = create_token(runner)
    head = client.head("/api/leads.csv?limit=2", headers={"Authorization": f"Bearer {token}"})
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Disposition"].startswith("attachment;") and "Link" in head.headers
    assert "Content-Length" not in head.headers  # as for the GET, which streams
    signed_in(client, runner, "sam@example.com", "sales")
    assert client.head("/workspace/leads.csv").status_code == 200
    assert runner.invoke(args=["export-log"]).stderr == "No exports recorded yet.\n"
