"""The `leadgate` command as a marketer and a sales rep type it."""

from __future__ import annotations

import csv
import fnmatch
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from live import LiveServer, free_port

from capture.cli import main
from capture.db import migrate

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LEADGATE = str(BIN / "leadgate")


def run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A command as an operator types it: no LEADGATE_* variables but ``env``, and a fresh
    instance folder so no demo secret from an earlier run is found."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEADGATE_")}
    clean["LEADGATE_INSTANCE_PATH"] = str(tmp_path / "instance")
    return subprocess.run(argv, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True,
                          timeout=60)


def one_error_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit code 1, nothing on standard output, and exactly one line on standard error that
    matches ``message`` (``*`` stands for the driver's own words)."""
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert fnmatch.fnmatchcase(lines[0], message), lines[0]


def test_help_lists_only_leadgates_commands_and_options(tmp_path):
    result = run([LEADGATE, "--help"], tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    options, commands = result.stdout.split("Options:\n")[1].split("Commands:\n")
    assert options.split() == ["--help", "Show", "this", "message", "and", "exit."]
    assert [line.split()[0] for line in commands.splitlines()] == [
        "build", "check", "consent", "db", "export", "export-log", "jobs", "privacy", "report", "rescore",
        "sample", "serve", "spam", "spend", "spool", "stage", "token", "user", "worker"]


def _walk(command: click.Command, path: str = "leadgate"):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, f"{path} {name}")


def test_every_option_and_argument_is_explained_in_help():
    unexplained = []
    for path, command in _walk(main):
        assert command.help, f"{path} has no help"
        for param in command.params:
            if isinstance(param, click.Argument):
                # click arguments take no help text: the command's own help names them.
                if param.human_readable_name not in command.help:
                    unexplained.append(f"{path} {param.human_readable_name}")
            elif not param.help:
                unexplained.append(f"{path} {param.opts[0]}")
    assert not unexplained


@pytest.mark.slow  # a `leadgate` process of its own
def test_flask_runs_the_same_commands(tmp_path, database_url, content_dir):
    result = run([str(BIN / "flask"), "--app", "capture", "user", "list"], tmp_path,
                 LEADGATE_DATABASE_URL=database_url, LEADGATE_CONTENT_DIR=str(content_dir),
                 LEADGATE_SECRET_KEY="k" * 32, LEADGATE_BASE_URL="https://leads.example.com/")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    result = run([str(BIN / "flask"), "--app", "capture", "export", "--columns", "email"], tmp_path,
                 LEADGATE_DATABASE_URL=database_url, LEADGATE_CONTENT_DIR=str(content_dir),
                 LEADGATE_SECRET_KEY="k" * 32, LEADGATE_BASE_URL="https://leads.example.com/")
    assert (result.returncode, result.stdout, result.stderr) == (0, "email\n", "")


def test_build_writes_the_site_from_content(tmp_path):
    out = tmp_path / "site"
    result = CliRunner().invoke(main, ["build", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "resources" / "telling-leads-from-prospects" / "index.html").is_file()
    assert not list(out.rglob("*.pdf"))


def test_build_names_the_file_and_field_of_bad_content(tmp_path, content_dir):
    (content_dir / "resources" / "scoring.md").write_text(
        "---\nid: scoring\ntitle: T\ntype: podcast\nsummary: S\nfile: scoring.pdf\n---\n", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: T\ndocs_dir: {content_dir}\nsite_dir: {tmp_path / 'out'}\n"
                      "theme: material\nplugins: [leadgate]\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["build", "-f", str(config)])
    assert result.exit_code == 1
    assert "resources/scoring.md: type: unknown type 'podcast'" in result.output


def test_export_through_flask_cli_lists_the_lead(client, runner, form_post):
    assert client.post("/submit", data=form_post(email="=cmd@example.com")).status_code == 303
    result = runner.invoke(args=["export"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["email"] for r in rows] == ["'=cmd@example.com"]
    assert rows[0]["first_utm_source"] == "newsletter"


def test_export_to_a_file(client, runner, form_post, tmp_path):
    client.post("/submit", data=form_post())
    target = tmp_path / "leads.csv"
    assert runner.invoke(args=["export", "-o", str(target)]).exit_code == 0
    assert "ann.lee@example.com" in target.read_text(encoding="utf-8")


GENERATE = "python -c 'import secrets; print(secrets.token_hex(32))'"


@pytest.mark.slow  # a `leadgate` process of its own
@pytest.mark.parametrize(("secret", "message"), [
    # A key a demo left in the instance folder is not picked up outside --demo.
    (None, f"Error: No secret key: set LEADGATE_SECRET_KEY (generate one with `{GENERATE}`), "
           "or try the service with `leadgate serve --demo`."),
    ("short", "Error: LEADGATE_SECRET_KEY is 5 characters long; a secret key needs at least 32 "
              f"(generate one with `{GENERATE}`)."),
], ids=["demo-key-left-behind", "short"])
def test_serve_without_a_proper_secret_refuses_to_start(tmp_path, secret, message):
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "secret_key").write_text("a-demo-key-0123456789abcdef0123456789\n")
    env = {"LEADGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    if secret:
        env["LEADGATE_SECRET_KEY"] = secret
    result = run([LEADGATE, "serve", "--port", str(free_port()), "--site-dir", str(tmp_path / "site")],
                 tmp_path, **env)
    one_error_line(result, message)
    assert not (tmp_path / "site").exists()  # refused before the build


@pytest.mark.slow  # a `leadgate` process of its own
def test_serve_on_a_taken_port_says_so_before_building(tmp_path):
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        result = run([LEADGATE, "serve", "--port", str(port), "--site-dir", str(tmp_path / "site")],
                     tmp_path, LEADGATE_SECRET_KEY="k" * 32,
                     LEADGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    one_error_line(result, f"Error: port {port} on 127.0.0.1 is taken: another program listens there; "
                           "stop it, or pass --port another port.")
    assert not (tmp_path / "site").exists()


@pytest.mark.slow  # a `leadgate` process of its own
def test_serve_says_where_everything_is_and_logs_the_size_of_each_page(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    page = "<!doctype html><title>Home</title>" + "<p>Leads, not prospects.</p>" * 650
    (site / "index.html").write_text(page, encoding="utf-8")
    size = len(page.encode())
    with LiveServer(tmp_path, site_dir=site, build=False, workers=1) as server:
        with urllib.request.urlopen(f"{server.url}/", timeout=10) as response:
            assert len(response.read()) == size > 18_000
        head = urllib.request.Request(f"{server.url}/", method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as response:
            assert response.headers["Content-Length"] == str(size)
        deadline = time.monotonic() + 10
        while '"HEAD / ' not in server.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.log()
    assert f"Leadgate starts on {server.url}/\n" in log
    assert f"  site:       {server.url}/\n" in log
    assert f"  workspace:  {server.url}/workspace/\n" in log
    assert f"  database:   {server.database_url}\n" in log
    assert "Stop it with Ctrl+C.\n" in log
    assert f'"GET / HTTP/1.1" 200 {size} ' in log
    assert '"HEAD / HTTP/1.1" 200 0 ' in log  # the length, but no body, was sent


@pytest.mark.slow  # a `leadgate` process of its own
def test_commands_run_without_the_services_secret_key(tmp_path, database_url):
    result = run([LEADGATE, "user", "list"], tmp_path, LEADGATE_DATABASE_URL=database_url)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not (tmp_path / "instance" / "secret_key").exists()


# --- Problems a person can fix: one Error line each, exit code 1 ----------------------------

MISSING_FOLDER = "sqlite:////nonexistent/dir/x.db"
NO_SERVER = "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"
CANNOT_OPEN = ("Error: cannot open the database at /nonexistent/dir/x.db: the folder /nonexistent/dir "
               "does not exist; create it, or set LEADGATE_DATABASE_URL to a file in another folder.")
CANNOT_CONNECT = ("Error: cannot connect to the database at postgresql+psycopg://nobody:***@127.0.0.1:1/x: "
                  "connection failed: * Connection refused; check that the server runs and that "
                  "LEADGATE_DATABASE_URL names it.")


@pytest.mark.slow  # a `leadgate` process of its own
@pytest.mark.parametrize(("env", "args", "message"), [
    ({"LEADGATE_DATABASE_URL": MISSING_FOLDER}, ["export"], CANNOT_OPEN),
    ({"LEADGATE_DATABASE_URL": MISSING_FOLDER}, ["export", "-o", "{tmp}/leads.csv"], CANNOT_OPEN),
    ({"LEADGATE_DATABASE_URL": MISSING_FOLDER}, ["user", "list"], CANNOT_OPEN),
    ({"LEADGATE_DATABASE_URL": MISSING_FOLDER}, ["token", "create", "sam@example.com"], CANNOT_OPEN),
    ({"LEADGATE_DATABASE_URL": MISSING_FOLDER}, ["db", "upgrade"], CANNOT_OPEN),
    ({"LEADGATE_DATABASE_URL": MISSING_FOLDER}, ["db", "current"], CANNOT_OPEN),
    ({"LEADGATE_DATABASE_URL": NO_SERVER}, ["export"], CANNOT_CONNECT),
    ({"LEADGATE_DATABASE_URL": NO_SERVER}, ["user", "list"], CANNOT_CONNECT),
    ({"LEADGATE_DATABASE_URL": NO_SERVER}, ["db", "upgrade"], CANNOT_CONNECT),
    ({"LEADGATE_DATABASE_URL": "leads.db"}, ["export"],
     "Error: LEADGATE_DATABASE_URL is not a database URL: 'leads.db'"),
    ({"LEADGATE_CONTENT_DIR": "/nonexistent/content"}, ["export", "--type", "ebook"],
     "Error: the content cannot be read: /nonexistent/content: folder: the content folder does not exist"),
    ({"LEADGATE_INSTANCE_PATH": "{tmp}/a-file/instance"}, ["user", "list"],
     "Error: cannot create the folder {tmp}/a-file/instance: Not a directory; set LEADGATE_INSTANCE_PATH "
     "to a folder Leadgate may write to."),
])
def test_a_setting_or_database_problem_is_one_error_line(tmp_path, env, args, message):
    (tmp_path / "a-file").write_text("")
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    result = run([LEADGATE, *(a.format(tmp=tmp_path) for a in args)], tmp_path, **env)
    one_error_line(result, message.format(tmp=tmp_path))
    assert not (tmp_path / "leads.csv").exists()


@pytest.mark.slow  # a `leadgate` process of its own
@pytest.mark.parametrize("args", [["export"], ["user", "list"], ["token", "list"],
                                  ["user", "disable", "sam@example.com"]])
def test_a_database_without_tables_says_to_upgrade(tmp_path, empty_database_url, args):
    result = run([LEADGATE, *args], tmp_path, LEADGATE_DATABASE_URL=empty_database_url)
    one_error_line(result, "Error: the database has no tables yet: run `leadgate db upgrade`.")


@pytest.mark.slow  # a `leadgate` process of its own
def test_a_database_behind_the_code_says_to_upgrade(tmp_path, empty_database_url):
    migrate.upgrade(empty_database_url, "0001")  # before staff accounts
    result = run([LEADGATE, "user", "list"], tmp_path, LEADGATE_DATABASE_URL=empty_database_url)
    one_error_line(result, f"Error: the database's schema is at revision 0001, this version of Leadgate "
                           f"needs {migrate.head()}: run `leadgate db upgrade`.")
