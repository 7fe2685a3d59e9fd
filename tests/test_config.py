"""Starting the service: settings from LEADGATE_* variables, and a secret key or a clear refusal."""

from __future__ import annotations

import stat

import pytest

from capture import create_app
from capture.config import ConfigError, resolve_secret_key


@pytest.fixture
def base_config(content_dir, tmp_path):
    return {"TESTING": True, "SECRET_KEY": "k" * 32, "CONTENT_DIR": str(content_dir),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'leadgate.db'}"}


def test_settings_from_the_environment(monkeypatch, base_config):
    monkeypatch.setenv("LEADGATE_DOWNLOAD_MAX_AGE", "600")
    monkeypatch.setenv("LEADGATE_CHECK_DELIVERABILITY", "yes")
    monkeypatch.setenv("LEADGATE_ALLOWED_ORIGINS", "https://www.example.com, https://Blog.Example.com/")
    monkeypatch.setenv("LEADGATE_SITE_URL", "https://www.example.com")
    app = create_app(base_config)
    assert app.config["DOWNLOAD_MAX_AGE"] == 600
    assert app.config["CHECK_DELIVERABILITY"] is True
    assert app.config["ALLOWED_ORIGINS"] == ["https://www.example.com", "https://blog.example.com"]
    assert app.config["SITE_URL"] == "https://www.example.com/"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("LEADGATE_DOWNLOAD_MAX_AGE", "a week", "LEADGATE_DOWNLOAD_MAX_AGE must be a whole number"),
    ("LEADGATE_DOWNLOAD_MAX_AGE", "0", "LEADGATE_DOWNLOAD_MAX_AGE must be a positive number"),
    ("LEADGATE_DEMO", "perhaps", "LEADGATE_DEMO must be true or false"),
    ("LEADGATE_SPOOL_RETRY_SECONDS", "soon", "LEADGATE_SPOOL_RETRY_SECONDS must be a number of seconds"),
    ("LEADGATE_SPOOL_RETRY_SECONDS", "-1", "LEADGATE_SPOOL_RETRY_SECONDS must be a number of seconds"),
    ("LEADGATE_SQLITE_BUSY_TIMEOUT_MS", "-1", "LEADGATE_SQLITE_BUSY_TIMEOUT_MS must be 0 or more"),
    ("LEADGATE_ALLOWED_ORIGINS", "https://www.example.com/resources/",
     "LEADGATE_ALLOWED_ORIGINS: 'https://www.example.com/resources/' is not an origin"),
])
def test_bad_setting_names_the_variable(monkeypatch, base_config, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        create_app(base_config)


FROM_ENV = "from-the-environment-0123456789abcdef"
FROM_FILE = "from-the-instance-folder-0123456789abcdef"


def test_configured_secret_key_wins(tmp_path):
    (tmp_path / "secret_key").write_text(FROM_FILE + "\n")
    assert resolve_secret_key(FROM_ENV, tmp_path, demo=True) == FROM_ENV


def test_demo_uses_the_secret_key_in_the_instance_folder(tmp_path):
    (tmp_path / "secret_key").write_text(FROM_FILE + "\n")
    assert resolve_secret_key(None, tmp_path, demo=True) == FROM_FILE


def test_demo_creates_a_private_secret_key_once(tmp_path):
    key = resolve_secret_key(None, tmp_path, demo=True)
    path = tmp_path / "secret_key"
    assert len(key) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_secret_key(None, tmp_path, demo=True) == key


@pytest.mark.parametrize("left_by_a_demo", [False, True])
def test_production_without_a_secret_key_refuses_to_start(tmp_path, left_by_a_demo):
    if left_by_a_demo:
        (tmp_path / "secret_key").write_text(FROM_FILE + "\n")
    with pytest.raises(ConfigError) as refused:
        resolve_secret_key(None, tmp_path, demo=False)
    message = str(refused.value)
    assert "LEADGATE_SECRET_KEY" in message
    assert "secrets.token_hex(32)" in message
    assert "leadgate serve --demo" in message
    assert (tmp_path / "secret_key").exists() == left_by_a_demo


@pytest.mark.parametrize("demo", [False, True])
def test_a_short_secret_key_is_refused(tmp_path, demo):
    with pytest.raises(ConfigError, match="^LEADGATE_SECRET_KEY is 31 characters long; a secret key needs "
                                          "at least 32 "):
        resolve_secret_key("k" * 31, tmp_path, demo=demo)
    (tmp_path / "secret_key").write_text("short\n")
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'secret_key'} is 5 characters long"):
        resolve_secret_key(None, tmp_path, demo=True)


def test_every_setting_is_documented():
    """Each key of Config has a ``#:`` comment above it: that is where operators look."""
    import inspect

    from capture.config import Config

    lines = inspect.getsource(Config).splitlines()
    keys = [name for name in vars(Config) if name.isupper()]
    for key in keys:
        i = next(n for n, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
        assert lines[i - 1].strip().startswith("#:"), f"{key} has no #: comment"


def test_database_url_that_is_not_a_url(base_config):
    with pytest.raises(ConfigError, match="LEADGATE_DATABASE_URL is not a database URL"):
        create_app({**base_config, "DATABASE_URL": "leads.db"})


@pytest.mark.parametrize(("url", "message"), [
    ("mysql+pymysql://u@127.0.0.1/db", "must be a SQLite or PostgreSQL URL, not mysql"),
    ("postgresql+psycopg2://u@127.0.0.1/db", "through psycopg 3, not psycopg2: write postgresql\\+psycopg://"),
])
def test_database_url_of_a_database_leadgate_does_not_speak(base_config, url, message):
    with pytest.raises(ConfigError, match=message):
        create_app({**base_config, "DATABASE_URL": url})


def test_postgresql_without_its_driver_says_what_to_install(base_config, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'leadgate\[postgres\]'"):
        create_app({**base_config, "DATABASE_URL": "postgresql+psycopg://u@127.0.0.1/db"})


MAIL = {"LEADGATE_MAIL_FROM": "Example <hello@example.com>"}


@pytest.mark.parametrize(("settings", "message"), [
    ({"LEADGATE_EMAIL_DELIVERY": "true"}, "LEADGATE_EMAIL_DELIVERY needs a server to send through"),
    ({"LEADGATE_DOUBLE_OPT_IN": "true"}, "LEADGATE_DOUBLE_OPT_IN needs a server to send through"),
    ({"LEADGATE_SMTP_URL": "http://mail.example.com", **MAIL}, "must start with smtp:// or smtps://"),
    ({"LEADGATE_SMTP_URL": "smtp://", **MAIL}, "names no host"),
    ({"LEADGATE_SMTP_URL": "smtp://mail.example.com:99999", **MAIL}, "port that is not a number"),
    ({"LEADGATE_SMTP_URL": "smtp://mail.example.com?tls=yes", **MAIL}, "unknown option 'tls'"),
    ({"LEADGATE_SMTP_URL": "smtp://mail.example.com?starttls=maybe", **MAIL}, "starttls must be true or false"),
    ({"LEADGATE_SMTP_URL": "smtps://mail.example.com?starttls=true", **MAIL}, "smtps:// is TLS already"),
    ({"LEADGATE_SMTP_URL": "smtp://ann:s3cret@mail.example.com:587", **MAIL},
     "user and password but no encryption"),
    ({"LEADGATE_SMTP_URL": "smtp://mail.example.com:587?starttls=true"}, "LEADGATE_MAIL_FROM must be the sender"),
    ({"LEADGATE_SMTP_URL": "smtp://mail.example.com:587?starttls=true", "LEADGATE_MAIL_FROM": "hello"},
     "LEADGATE_MAIL_FROM must be the sender"),
    ({"LEADGATE_EMAILS_PER_ADDRESS_PER_DAY": "0"}, "LEADGATE_EMAILS_PER_ADDRESS_PER_DAY must be 1 or more"),
])
def test_bad_mail_settings_say_what_to_write(monkeypatch, base_config, settings, message):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as refused:
        create_app(base_config)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(("url", "server"), [
    ("smtp://127.0.0.1:1025", ("127.0.0.1", 1025, False, False, "", "")),
    ("smtp://ann%40example.com:p%40ss@mail.example.com:587?starttls=true",
     ("mail.example.com", 587, False, True, "ann@example.com", "p@ss")),
    ("smtps://ann:pw@mail.example.com", ("mail.example.com", 465, True, False, "ann", "pw")),
    ("smtp://relay:pw@localhost", ("localhost", 25, False, False, "relay", "pw")),
])
def test_smtp_urls_are_read(url, server):
    from capture.mail.smtp import parse_smtp_url

    parsed = parse_smtp_url(url)
    assert (parsed.host, parsed.port, parsed.tls, parsed.starttls, parsed.user, parsed.password) == server
    assert parsed.password not in repr(parsed) or not parsed.password
