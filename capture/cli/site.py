"""`leadgate build` and `leadgate serve`: the static site, and the site with the service."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from capture.cli.command import command, option
from capture.cli.db import upgrade_database

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: The demo's worker process (kept, so that nothing reaps or warns about it before exec).
_children: list[object] = []


@command(needs_app=False)
@option("-f", "--config-file", default="mkdocs.yml", show_default=True,
        type=click.Path(exists=True, dir_okay=False), help="The MkDocs configuration.")
@option("-d", "--site-dir", type=click.Path(file_okay=False),
        help="Where to write the site (default: site_dir from the configuration).")
def build(config_file: str, site_dir: str | None) -> None:
    """Build the static site from content/."""
    out = _build(config_file, site_dir)
    click.echo(f"Site built in {out}", err=True)


def _build(config_file: str, site_dir: str | None) -> Path:
    from capture.site.build import SiteBuildError, build_site

    try:
        return build_site(config_file, site_dir)
    except SiteBuildError as e:
        raise click.ClickException(f"The site could not be built.\n{e}") from None


@command(needs_app=False)
@option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535),
        help="Port to listen on.")
@option("--workers", type=click.IntRange(1, 64),
        help="gunicorn workers for visitors (default: $WEB_CONCURRENCY, else 2), plus one per "
             "export slot ($LEADGATE_EXPORT_SLOTS, else 2).")
@option("--demo", is_flag=True,
        help="Local demo: use (or create) instance/secret_key instead of LEADGATE_SECRET_KEY, "
             "build links to the address it listens on unless LEADGATE_BASE_URL is set, and run a "
             "`leadgate worker` beside the service (emails, the daily purge), stopped with it.")
@option("--dev", is_flag=True, help="Flask's development server with the reloader.")
@option("--build/--no-build", "build_first", default=True, show_default=True,
        help="Build the site before serving it.")
@option("-f", "--config-file", default="mkdocs.yml", show_default=True,
        type=click.Path(dir_okay=False), help="The MkDocs configuration to build with.")
@option("-d", "--site-dir", type=click.Path(file_okay=False),
        help="The built site to serve (default: site_dir from the configuration).")
@option("--upgrade/--no-upgrade", default=None,
        help="Migrate the database to the newest schema first (default: $LEADGATE_AUTO_UPGRADE, "
             "else yes).")
def serve(host: str, port: int, workers: int | None, demo: bool, dev: bool, build_first: bool,
          config_file: str, site_dir: str | None, upgrade: bool | None) -> None:
    """Serve the built site and the capture service together (default http://127.0.0.1:8000)."""
    from capture import create_app

    # The development server's reloader runs this command again in a child that inherits
    # the listening socket: only the first run checks the port and says where things are.
    first_run = os.environ.get("WERKZEUG_RUN_MAIN") != "true"
    if first_run:
        check_port_free(host, port)
    if demo:
        os.environ["LEADGATE_DEMO"] = "true"
    if demo or dev:
        # Links the demo builds lead back to where it listens (a set LEADGATE_BASE_URL wins).
        os.environ.setdefault("LEADGATE_BASE_URL", local_url(host, port))
    # Settings first (the secret key above all), so a refusal does not wait for the build.
    app = create_app({"DEBUG": True} if dev else None)
    if first_run:
        # Content and scoring rules are checked here, once: a bad rules file stops the start, not
        # every form post of every worker later.
        from capture.checks import check_content

        problems = check_content(Path(app.config["CONTENT_DIR"])).problems
        for problem in problems[:-1]:
            click.echo(f"Error: {problem}", err=True)
        if problems:
            raise click.ClickException(problems[-1])
    if build_first:
        site = _build(config_file, site_dir)
    else:
        site = Path(site_dir or "site")
        if not (site / "index.html").is_file():
            raise click.ClickException(f"No built site in {site}: run `leadgate build` first.")
    # Read by the workers' create_app(), and by the development server's below.
    os.environ["LEADGATE_SITE_DIR"] = str(site.resolve())
    if app.config["AUTO_UPGRADE"] if upgrade is None else upgrade:
        # Once, here, before any worker starts: workers never change the schema.
        upgrade_database(app.config["DATABASE_URL"])
    # Pinned before any child starts (see below): the worker's app uses the same folder.
    os.environ["LEADGATE_INSTANCE_PATH"] = app.instance_path
    if first_run:
        announce(host, port, app.config["DATABASE_URL"])
        if demo:
            start_worker()
    if dev:
        create_app({"DEBUG": True}).run(host=host, port=port, debug=True)
        return
    # The settings operators use too; gunicorn imports the factory in each worker after
    # forking, so no database connection is ever shared across processes.
    # gunicorn puts the working directory first on sys.path, so a worker may import capture from
    # a source tree while this process imported an installed copy: pin the instance folder
    # (database, secret, spool) to the one resolved here (LEADGATE_INSTANCE_PATH, set above).
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:capture.gunicorn_conf",
            "--bind", f"{host}:{port}"]
    if workers is not None:
        # The visitors' workers: gunicorn_conf adds one per export slot (LEADGATE_EXPORT_SLOTS).
        os.environ["WEB_CONCURRENCY"] = str(workers)
    os.execv(sys.executable, [*argv, "capture:create_app()"])


def start_worker() -> None:
    """`leadgate worker` as a child of this process, for the demo's one-command start.

    This process becomes gunicorn's master (``os.execv`` keeps its id), so the worker stays its
    child: Ctrl+C reaches both (one process group) and each finishes what it holds; when the
    master stops any other way (SIGTERM from a service manager, a crash), the worker sees it is
    no longer its parent's child (``--with-parent``) and stops within half a second, after the
    job in hand. Outside the demo, workers are started on their own (docs/deployment.md, Jobs).
    """
    import subprocess

    _children.append(subprocess.Popen(
        [sys.executable, "-c", "from capture.cli import main; main(prog_name='leadgate')",
         "worker", "--with-parent", str(os.getpid())], stdin=subprocess.DEVNULL))
    click.echo("  worker:     `leadgate worker` runs the background jobs (emails, the daily purge).",
               err=True)


def check_port_free(host: str, port: int) -> None:
    """Stop at once when nothing can listen on host:port: gunicorn would find out only after
    the build and the migration, then retry for 8 s and print a line per try."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise click.ClickException(f"cannot listen on {host}: {e.strerror}; pass --host an address of "
                                   "this machine, e.g. 127.0.0.1.") from None
    with socket.socket(family, kind, proto) as probe:
        # As gunicorn does, so a port that only holds connections closing (TIME_WAIT) is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                message = (f"port {port} on {host} is taken: another program listens there; stop it, "
                           "or pass --port another port.")
            elif e.errno == errno.EACCES:
                message = (f"this user may not listen on port {port} (below 1024 needs privileges); "
                           "pass --port 1024 or above.")
            elif e.errno == errno.EADDRNOTAVAIL:
                message = (f"cannot listen on {host}: it is not an address of this machine; pass "
                           "--host one that is, e.g. 127.0.0.1.")
            else:
                message = f"cannot listen on {host} port {port}: {e.strerror}."
            raise click.ClickException(message) from None


def local_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches ``leadgate serve``: a wildcard address (all
    interfaces) is reached at the loopback one."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def announce(host: str, port: int, database_url: str) -> None:
    """Where the site, the workspace and the leads are, and how to stop."""
    from capture.cli.problems import shown

    base = local_url(host, port)
    click.echo(f"Leadgate starts on {base}\n"
               f"  site:       {base}\n"
               f"  workspace:  {base}workspace/\n"
               f"  database:   {shown(database_url)}\n"
               "Stop it with Ctrl+C.", err=True)
