"""Stored integrations -> live host clients: an OAuth access token about to expire is
refreshed with the host's documented token endpoint before use, and stored encrypted."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from connect_app.errors import HostAuthError
from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials, ProviderId
from connect_app.integrations import NewIntegration, create_integration, credentials_of, host_for
from connect_app.models import RepositorySelection
from connect_app.oauth_settings import EXTENSION_KEY, OAuthClient, OAuthSettings
from tests.support.indexing_fixtures import make_tenant
from tests.support.stub_host import Reply, Seen, StubHost
from tests.web.test_oauth import ACCESS, REFRESH, gitlab_token


@pytest.fixture
def token_endpoint() -> Iterator[tuple[StubHost, list[Reply]]]:
    replies: list[Reply] = []

    def handle(seen: Seen) -> Reply:
        if seen.path == "/oauth/token":
            return replies.pop(0) if replies else Reply(200, gitlab_token())
        return Reply(404, {"message": "404 Not Found"})

    stub = StubHost(handle)
    yield stub, replies
    stub.close()


def _integration(app: Flask, base_url: str, expires_at: datetime) -> int:
    app.extensions[EXTENSION_KEY] = OAuthSettings({ProviderId.GITLAB_SELF_MANAGED: OAuthClient("gl-id", "gl-secret")})
    session = db.session()
    creds = Credentials(
        AuthType.OAUTH, token="old-access", extra={"refresh_token": "old-refresh", "expires_at": expires_at.isoformat()}
    )
    integration = create_integration(
        session,
        make_tenant(app),
        NewIntegration(
            provider=ProviderId.GITLAB_SELF_MANAGED,
            credentials=creds,
            display_name="GitLab",
            base_url=base_url,
            repository_selection=RepositorySelection.ALL_FUTURE,
        ),
    )
    session.commit()
    return integration.id


def test_an_expiring_oauth_token_is_refreshed_and_stored(
    app: Flask, token_endpoint: tuple[StubHost, list[Reply]]
) -> None:
    stub, _ = token_endpoint
    with app.app_context():
        from connect_app.models import Integration

        iid = _integration(app, stub.url, datetime.now(UTC) + timedelta(minutes=1))
        integration = db.session.get(Integration, iid)
        assert integration is not None
        host_for(integration)
        db.session.commit()
        [seen] = [s for s in stub.seen if s.path == "/oauth/token"]
        form = dict(urllib.parse.parse_qsl(seen.body.decode()))
        assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "old-refresh"
        renewed = credentials_of(db.session.get(Integration, iid))  # type: ignore[arg-type]
        assert renewed.token == ACCESS and renewed.extra["refresh_token"] == REFRESH
        assert ACCESS not in integration.credentials_encrypted


def test_a_fresh_token_is_not_refreshed_and_a_refused_refresh_is_an_auth_error(
    app: Flask, token_endpoint: tuple[StubHost, list[Reply]]
) -> None:
    stub, replies = token_endpoint
    with app.app_context():
        from connect_app.models import Integration

        fresh = db.session.get(Integration, _integration(app, stub.url, datetime.now(UTC) + timedelta(hours=2)))
        assert fresh is not None
        host_for(fresh)
        assert not [s for s in stub.seen if s.path == "/oauth/token"]

        stale = db.session.get(Integration, _integration(app, stub.url, datetime.now(UTC) - timedelta(minutes=1)))
        assert stale is not None
        replies.append(Reply(400, {"error": "invalid_grant", "error_description": "The provided grant is invalid"}))
        with pytest.raises(HostAuthError):
            host_for(stale)
