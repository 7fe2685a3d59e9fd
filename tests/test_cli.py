"""The `leadgate` command as a marketer and a sales rep type it."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from capture.cli import main

ROOT = Path(__file__).resolve().parent.parent
LEADGATE = str(Path(sys.executable).parent / "leadgate")


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


@pytest.mark.slow
def test_serve_without_a_secret_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADGATE_")}
    env["LEADGATE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    # A fresh instance folder, so no demo secret from an earlier run is found.
    env["LEADGATE_INSTANCE_PATH"] = str(tmp_path / "instance")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>site</h1>")
    result = subprocess.run([LEADGATE, "serve", "--no-build", "--site-dir", str(site)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "LEADGATE_SECRET_KEY" in result.stderr
