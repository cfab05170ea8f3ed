"""connect_app.indexing.webhook_setup: create our webhook on the host when the credentials allow.

The host side is Prism serving GitHub's own description (``prism_github``): the request we
send is checked against it, and ``Prefer: code=...`` makes it answer with the refusals the
description documents (403, 404, 422). Prism cannot tell a token with admin rights from one
without, so "the credentials do not allow it" is those documented answers; transient
failures and host bugs use a stand-in host.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests.adapters
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import HostUnavailable, RateLimited
from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository, WebhookRegistration
from connect_app.indexing import webhook_setup
from connect_app.integrations import NewIntegration, add_repositories, create_integration, webhook_secret
from connect_app.models import Integration, Repository, Tenant
from tests.support.connect import JiraSite
from tests.support.prism import PrismMock, prefer

HELLO = RemoteRepository("1296269", "octocat/Hello-World", "https://github.com/octocat/Hello-World.git")
SPOON = RemoteRepository("1300192", "octocat/Spoon-Knife", "https://github.com/octocat/Spoon-Knife.git")


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield db.session()


def _github(
    session: Session, site: JiraSite, api_url: str | None, remotes: list[RemoteRepository]
) -> tuple[Integration, list[Repository]]:
    tenant = session.scalars(select(Tenant).where(Tenant.client_key == site.client_key)).one()
    integration = create_integration(
        session,
        tenant.id,
        NewIntegration(
            provider=ProviderId.GITHUB,
            credentials=Credentials(AuthType.PAT, token="ghp_TokenForTests0123456789"),
            display_name="GitHub",
            base_url=api_url,  # the API address: Prism here
        ),
    )
    repos = add_repositories(session, integration, remotes)
    session.commit()
    return integration, repos


@pytest.fixture
def preferring(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Add ``Prefer: code=<status>`` to every request, as the host's refusal."""

    def use(status: int) -> None:
        original = requests.adapters.HTTPAdapter.send

        def send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            request.headers.update(prefer(code=status))
            return original(adapter, request, *args, **kwargs)

        monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)

    return use


def test_webhook_url(session: Session, installed_site: JiraSite, settings: Any) -> None:
    integration, _ = _github(session, installed_site, None, [])
    assert webhook_setup.webhook_url(integration) == (
        f"{settings.base_url}/webhooks/{integration.id}/{integration.webhook_token}"
    )


@pytest.mark.slow
def test_registers_through_the_hosts_api(session: Session, installed_site: JiraSite, prism_github: PrismMock) -> None:
    integration, [repo] = _github(session, installed_site, prism_github.base_url, [HELLO])
    with prism_github.recording() as rec:
        assert webhook_setup.ensure_webhook(session, integration, repo) is True
    rec.assert_all_valid(min_requests=1)
    [exchange] = rec.exchanges
    assert exchange.method == "POST" and exchange.url.endswith("/repos/octocat/Hello-World/hooks")
    sent = json.loads(exchange.response.request.body)
    assert sent["config"]["url"] == webhook_setup.webhook_url(integration)
    assert sent["config"]["secret"] == webhook_secret(integration)
    assert sent["events"] == ["push", "pull_request", "repository"]
    session.expire_all()  # committed, not only flushed
    stored = session.get(Repository, repo.id)
    assert stored is not None and stored.webhook_id == "12345678"  # the description's example hook
    assert webhook_setup.MANUAL not in (integration.features or {})


def test_already_registered_is_not_registered_again(
    session: Session, installed_site: JiraSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration, [repo] = _github(session, installed_site, None, [HELLO])
    repo.webhook_id = "42"
    monkeypatch.setattr(webhook_setup, "host_for", lambda _i: pytest.fail("no host call expected"))
    assert webhook_setup.ensure_webhook(session, integration, repo) is True


@pytest.mark.slow
@pytest.mark.parametrize("status", [403, 404, 422])
def test_refusal_asks_the_admin_to_paste_the_hook(
    session: Session,
    installed_site: JiraSite,
    prism_github: PrismMock,
    preferring: Callable[[int], None],
    status: int,
) -> None:
    integration, [repo] = _github(session, installed_site, prism_github.base_url, [HELLO])
    preferring(status)
    with prism_github.recording() as rec:
        assert webhook_setup.ensure_webhook(session, integration, repo) is False
    assert [e.response.status_code for e in rec.exchanges] == [status]
    session.expire_all()
    stored_integration = session.get(Integration, integration.id)
    stored_repo = session.get(Repository, repo.id)
    assert stored_integration is not None and stored_repo is not None
    assert stored_integration.features[webhook_setup.MANUAL] is True
    reason = stored_integration.features[webhook_setup.MANUAL_REASON]
    assert f"({status})" in reason and "ghp_" not in reason
    assert stored_repo.webhook_id is None


class FakeHost:
    def __init__(self, register: Callable[[], WebhookRegistration]) -> None:
        self._register = register
        self.closed = False

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        return self._register()

    def close(self) -> None:
        self.closed = True


def _raise(error: Exception) -> Callable[[], WebhookRegistration]:
    def register() -> WebhookRegistration:
        raise error

    return register


@pytest.mark.parametrize(
    "error",
    [HostUnavailable("GitHub failed with 502"), RateLimited("slow down"), ValueError("a bug in a host module")],
)
def test_transient_failures_and_bugs_return_false_without_marking_manual(
    session: Session, installed_site: JiraSite, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    integration, [repo] = _github(session, installed_site, None, [HELLO])
    host = FakeHost(_raise(error))
    monkeypatch.setattr(webhook_setup, "host_for", lambda _i: host)
    assert webhook_setup.ensure_webhook(session, integration, repo) is False
    assert webhook_setup.MANUAL not in integration.features and repo.webhook_id is None
    assert host.closed


def test_manual_flag_clears_once_every_repository_has_a_hook(
    session: Session, installed_site: JiraSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connect_app.errors import HostPermissionDenied

    integration, [hello, spoon] = _github(session, installed_site, None, [HELLO, SPOON])
    monkeypatch.setattr(webhook_setup, "host_for", lambda _i: FakeHost(_raise(HostPermissionDenied("no admin"))))
    assert webhook_setup.ensure_webhook(session, integration, hello) is False
    assert integration.features[webhook_setup.MANUAL] is True
    ids = iter(["1", "2"])
    monkeypatch.setattr(webhook_setup, "host_for", lambda _i: FakeHost(lambda: WebhookRegistration(next(ids), "u")))
    assert webhook_setup.ensure_webhook(session, integration, hello) is True
    assert integration.features[webhook_setup.MANUAL] is True  # Spoon-Knife still has none
    assert webhook_setup.ensure_webhook(session, integration, spoon) is True
    assert webhook_setup.MANUAL not in integration.features
    assert (hello.webhook_id, spoon.webhook_id) == ("1", "2")


def test_hosts_without_webhooks_are_not_asked(
    session: Session, installed_site: JiraSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = session.scalars(select(Tenant).where(Tenant.client_key == installed_site.client_key)).one()
    integration = create_integration(
        session,
        tenant.id,
        NewIntegration(
            provider=ProviderId.GERRIT,
            credentials=Credentials(AuthType.PASSWORD, username="u", password="p"),
            display_name="Gerrit",
            base_url="https://gerrit.example",
        ),
    )
    [repo] = add_repositories(session, integration, [RemoteRepository("p", "p", "https://gerrit.example/p")])
    session.commit()
    monkeypatch.setattr(webhook_setup, "host_for", lambda _i: pytest.fail("no host call expected"))
    assert webhook_setup.ensure_webhook(session, integration, repo) is False
    assert webhook_setup.MANUAL not in integration.features


@pytest.mark.slow
def test_remove_webhook(session: Session, installed_site: JiraSite, prism_github: PrismMock) -> None:
    integration, [repo] = _github(session, installed_site, prism_github.base_url, [HELLO])
    repo.webhook_id = "12345678"
    session.commit()
    with prism_github.recording() as rec:
        assert webhook_setup.remove_webhook(session, integration, repo) is True
    rec.assert_all_valid(min_requests=1)
    assert rec.exchanges[0].method == "DELETE" and repo.webhook_id is None
    assert webhook_setup.remove_webhook(session, integration, repo) is True  # nothing left to delete
