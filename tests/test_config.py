from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from connect_app import create_app
from connect_app.config import DEFAULT_INSTALL_KEYS_URL, DEFAULT_JIRA_PATTERNS, Environment, Settings
from connect_app.errors import ConfigError


def test_defaults_from_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s.base_url == "http://127.0.0.1:8000"
    assert s.app_key == "git-connect-for-jira"
    assert s.connect_install_keys_url == DEFAULT_INSTALL_KEYS_URL
    assert s.jira_base_url_patterns == DEFAULT_JIRA_PATTERNS
    assert s.allow_private_hosts is False
    assert s.database_url is None and s.redis_url is None


def test_every_documented_variable_is_read() -> None:
    key = Fernet.generate_key().decode()
    s = Settings.from_env(
        {
            "BASE_URL": "https://abc.example/",
            "PORT": "9000",
            "DATABASE_URL": "postgresql://u@h/db",
            "REDIS_URL": "redis://h:6379/0",
            "APP_KEY": "my-app",
            "ENCRYPTION_KEYS": f"{key}, {key}",
            "CONNECT_INSTALL_KEYS_URL": "https://keys.example/",
            "JIRA_BASE_URL_PATTERNS": "https://*.atlassian.net, https://jira.corp.example",
            "ALLOW_PRIVATE_HOSTS": "true",
        }
    )
    assert s.base_url == "https://abc.example"
    assert s.port == 9000
    assert s.app_key == "my-app"
    assert s.encryption_keys == (key, key)
    assert s.connect_install_keys_url == "https://keys.example"
    assert s.jira_base_url_patterns == ("https://*.atlassian.net", "https://jira.corp.example")
    assert s.allow_private_hosts is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"ALLOW_PRIVATE_HOSTS": "maybe"}, "boolean"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"APP_ENV": "production", "BASE_URL": "https://x.example"}, "ENCRYPTION_KEYS"),
        (
            {
                "APP_ENV": "production",
                "BASE_URL": "http://x.example",
                "ENCRYPTION_KEYS": "k",
                "DATABASE_URL": "postgresql://h/db",
                "REDIS_URL": "redis://h",
            },
            "https",
        ),
    ],
)
def test_bad_configuration_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_create_app_does_no_io_beyond_the_instance_folder(tmp_path) -> None:
    # No database or Redis connection is opened by building the app.
    app = create_app(
        Settings(
            instance_path=tmp_path,
            database_url="postgresql://nobody@127.0.0.1:1/none",
            redis_url="redis://127.0.0.1:1/0",
            environment=Environment.TEST,
        )
    )
    assert app.test_client().get("/healthz").status_code == 200
    assert app.test_client().get("/readyz").status_code == 503
