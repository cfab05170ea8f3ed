"""connect_app.indexing.webhook_sync: one pass brings our webhooks in line with the switches.

Host behaviour (the request shapes, GitHub's refusals) is contract-tested against Prism in
test_webhook_setup.py and here once for a whole pass; the other tests use a stand-in host that
records what it was asked, so they show which repositories a pass registers on or deletes from.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from rq import Queue, SimpleWorker
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import AppError, HostPermissionDenied, HostUnavailable
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository, WebhookRegistration
from connect_app.indexing import followup_jobs, webhook_setup, webhook_sync
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.models import (
    Integration,
    IntegrationEvent,
    IntegrationStatus,
    Repository,
    RepositoryStatus,
    Tenant,
    utcnow,
)
from tests.support.connect import JiraSite
from tests.support.prism import PrismMock


@dataclass
class StandInHost:
    """Records register/delete calls by repository name; scripted failures per name."""

    registered: list[str] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    refuse: dict[str, AppError] = field(default_factory=dict)
    down: bool = False
    closed: int = 0
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        if self.down:
            raise HostUnavailable("GitHub at https://api.example answered 502")
        if repo.name in self.refuse:
            raise self.refuse[repo.name]
        self.registered.append(repo.name)
        return WebhookRegistration(str(next(self.ids)), url)

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        if self.down:
            raise HostUnavailable("GitHub at https://api.example answered 502")
        if repo.name in self.refuse:
            raise self.refuse[repo.name]
        self.deleted.append((repo.name, webhook_id))

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> StandInHost:
    stand_in = StandInHost()
    monkeypatch.setattr(webhook_sync, "host_for", lambda _integration: stand_in)
    return stand_in


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield db.session()


def github(
    session: Session, site: JiraSite, names: list[str], *, base_url: str | None = None, **features: Any
) -> tuple[Integration, list[Repository]]:
    tenant = session.scalars(select(Tenant).where(Tenant.client_key == site.client_key)).one()
    integration = create_integration(
        session,
        tenant.id,
        NewIntegration(
            provider=ProviderId.GITHUB,
            credentials=Credentials(AuthType.PAT, token="ghp_TokenForTests0123456789"),
            display_name="GitHub",
            base_url=base_url,
        ),
    )
    integration.features = dict(features)
    repos = add_repositories(
        session,
        integration,
        [RemoteRepository(str(1000 + i), name, f"https://github.com/{name}.git") for i, name in enumerate(names)],
    )
    session.commit()
    return integration, repos


def codes(session: Session, integration: Integration) -> list[tuple[str, str]]:
    rows = session.scalars(
        select(IntegrationEvent).where(IntegrationEvent.integration_id == integration.id).order_by(IntegrationEvent.id)
    )
    return [(e.level, e.detail["code"]) for e in rows if e.source == "webhook"]


def hooks(session: Session, repos: list[Repository]) -> list[str | None]:
    session.expire_all()
    return [session.get(Repository, r.id).webhook_id for r in repos]  # type: ignore[union-attr]


def test_every_enabled_visible_repository_gets_a_webhook_and_the_others_lose_theirs(
    session: Session, installed_site: JiraSite, host: StandInHost
) -> None:
    integration, (picked, disabled, removed, hooked) = github(
        session, installed_site, ["acme/picked", "acme/disabled", "acme/removed", "acme/hooked"]
    )
    disabled.enabled, disabled.webhook_id = False, "7"
    removed.status, removed.removed_at, removed.webhook_id = RepositoryStatus.REMOVED.value, utcnow(), "8"
    hooked.webhook_id = "9"
    session.commit()
    assert webhook_sync.needs_sync(session, integration)

    result = webhook_sync.sync_webhooks(session, integration.id)
    assert host.registered == ["acme/picked"]
    assert host.deleted == [("acme/disabled", "7"), ("acme/removed", "8")]
    assert hooks(session, [picked, disabled, removed, hooked]) == ["100", None, None, "9"]
    assert result.as_dict()["status"] == "done" and host.closed == 1  # one client for the whole pass
    assert codes(session, integration) == [
        ("info", "webhook_deleted"),  # the repository is disabled
        ("info", "webhook_deleted"),  # no longer visible
        ("info", "webhook_registered"),
    ]
    assert not webhook_sync.needs_sync(session, integration)
    webhook_sync.sync_webhooks(session, integration.id)  # nothing left to do: no host call, no log line
    assert len(host.registered) == 1 and len(codes(session, integration)) == 3


@pytest.mark.parametrize("switch", ["webhooks_off", "integration_disabled", "site_disabled"])
def test_switched_off_deletes_every_webhook_of_ours(
    session: Session, installed_site: JiraSite, host: StandInHost, switch: str
) -> None:
    integration, (a, b) = github(session, installed_site, ["acme/a", "acme/b"])
    a.webhook_id = "1"
    if switch == "webhooks_off":
        integration.features = {"webhooks": False}
    elif switch == "integration_disabled":
        integration.status = IntegrationStatus.DISABLED.value
    else:
        tenant = session.get(Tenant, integration.tenant_id)
        assert tenant is not None
        tenant.enabled = False
    session.commit()
    webhook_sync.sync_webhooks(session, integration.id)
    assert host.deleted == [("acme/a", "1")] and host.registered == []
    assert hooks(session, [a, b]) == [None, None]
    event = session.scalars(select(IntegrationEvent)).one()
    assert event.message.startswith("Webhook deleted from acme/a on GitHub")


def test_refusals_mark_the_integration_manual_and_stop_after_a_few(
    session: Session, installed_site: JiraSite, host: StandInHost
) -> None:
    names = [f"acme/r{i}" for i in range(6)]
    integration, repos = github(session, installed_site, names)
    for name in names[1:]:
        host.refuse[name] = HostPermissionDenied("GitHub refused (403): Must have admin rights to Repository.")
    result = webhook_sync.sync_webhooks(session, integration.id)
    assert host.registered == ["acme/r0"]
    assert len(result.refused) == webhook_sync.MAX_REFUSALS and result.not_tried == 2
    session.expire_all()
    stored = session.get(Integration, integration.id)
    assert stored is not None and stored.features[webhook_setup.MANUAL] is True
    assert codes(session, integration) == [("info", "webhook_registered"), ("warning", "webhook_refused")]
    warning = session.scalars(select(IntegrationEvent).where(IntegrationEvent.level == "warning")).one()
    assert "admin rights" in warning.message and "2 more repositories were not tried" in warning.message
    assert "ghp_" not in warning.message
    webhook_sync.sync_webhooks(session, integration.id)  # the same refusal again: not logged again
    assert len(codes(session, integration)) == 2
    assert hooks(session, repos)[0] == "100"


def test_a_host_that_is_down_ends_the_pass_and_the_job_retries(
    app: Flask, session: Session, installed_site: JiraSite, host: StandInHost
) -> None:
    integration, _ = github(session, installed_site, ["acme/a", "acme/b"])
    host.down = True
    assert webhook_sync.request_sync(integration)
    SimpleWorker(["maintenance"], connection=redis_conn.client).work(burst=True)
    job = Queue("maintenance", connection=redis_conn.client).fetch_job(f"webhooks-{integration.id}")
    assert job is not None and job.get_status() == "scheduled"  # RQ's retry, a little later
    assert codes(session, integration) == [("warning", "webhook_host_unavailable")]
    session.expire_all()
    stored = session.get(Integration, integration.id)
    assert stored is not None and webhook_setup.MANUAL not in stored.features  # not the credential's fault
    host.down = False
    result = webhook_sync.sync_webhooks(session, integration.id)
    assert result.registered == ["acme/a", "acme/b"]


def test_refused_credentials_do_not_register_but_still_try_to_delete(
    session: Session, installed_site: JiraSite, host: StandInHost
) -> None:
    integration, (_, b) = github(session, installed_site, ["acme/a", "acme/b"])
    integration.status = IntegrationStatus.AUTH_FAILED.value
    b.enabled, b.webhook_id = False, "5"
    session.commit()
    webhook_sync.sync_webhooks(session, integration.id)
    assert host.registered == [] and host.deleted == [("acme/b", "5")]


def test_a_webhook_the_host_will_not_delete_is_kept_and_logged(
    session: Session, installed_site: JiraSite, host: StandInHost
) -> None:
    integration, (a,) = github(session, installed_site, ["acme/a"])
    a.enabled, a.webhook_id = False, "5"
    session.commit()
    host.refuse["acme/a"] = HostPermissionDenied("GitHub refused (403)")
    webhook_sync.sync_webhooks(session, integration.id)
    assert hooks(session, [a]) == ["5"]  # the next pass tries again
    assert codes(session, integration) == [("warning", "webhook_not_deleted")]


def test_another_tenants_repositories_are_never_touched(
    session: Session, installed_site: JiraSite, other_site: JiraSite, host: StandInHost
) -> None:
    mine, (my_repo,) = github(session, installed_site, ["acme/a"])
    theirs, (their_repo,) = github(session, other_site, ["acme/a"])  # the same repository on the host
    their_repo.webhook_id = "theirs"
    their_repo.enabled = False
    session.commit()
    webhook_sync.sync_webhooks(session, mine.id)
    assert host.registered == ["acme/a"] and host.deleted == []
    assert hooks(session, [my_repo, their_repo]) == ["100", "theirs"]
    assert session.scalars(select(IntegrationEvent.integration_id)).all() == [mine.id]
    assert theirs.id != mine.id


def test_hosts_without_webhooks_are_left_alone(session: Session, installed_site: JiraSite) -> None:
    tenant = session.scalars(select(Tenant).where(Tenant.client_key == installed_site.client_key)).one()
    integration = create_integration(
        session,
        tenant.id,
        NewIntegration(
            provider=ProviderId.GIT, credentials=Credentials(AuthType.NONE), display_name="git", base_url="https://x/y"
        ),
    )
    add_repositories(session, integration, [RemoteRepository("y", "y", "https://x/y")])
    session.commit()
    assert not webhook_sync.needs_sync(session, integration)
    assert webhook_sync.request_sync(integration) is False


def test_a_change_while_a_pass_runs_gets_a_second_pass(app: Flask, session: Session, installed_site: JiraSite) -> None:
    integration, _ = github(session, installed_site, ["acme/a"])
    conn = redis_conn.client
    assert webhook_sync.request_sync(integration)
    assert webhook_sync.request_sync(integration)  # still queued: it reads the rows when it starts
    queue = Queue("maintenance", connection=conn)
    assert queue.get_job_ids() == [f"webhooks-{integration.id}"]
    job = queue.fetch_job(f"webhooks-{integration.id}")
    assert job is not None
    job.set_status("started")  # as if a worker had picked it up and read the rows
    assert webhook_sync.request_sync(integration)
    assert queue.get_job_ids()[-1] == f"webhooks-{integration.id}{followup_jobs.SECOND_SLOT}"
    assert webhook_sync.request_sync(integration)  # both taken: the second waits for the first
    assert len(queue.get_job_ids()) == 2


@pytest.mark.slow
def test_a_pass_against_githubs_description(
    session: Session, installed_site: JiraSite, prism_github: PrismMock
) -> None:
    integration, (hello, spoon) = github(
        session, installed_site, ["octocat/Hello-World", "octocat/Spoon-Knife"], base_url=prism_github.base_url
    )
    spoon.enabled, spoon.webhook_id = False, "12345678"
    session.commit()
    with prism_github.recording() as rec:
        result = webhook_sync.sync_webhooks(session, integration.id)
    rec.assert_all_valid(min_requests=2)
    assert [(e.method, e.url.split("/repos/")[1]) for e in rec.exchanges] == [
        ("DELETE", "octocat/Spoon-Knife/hooks/12345678"),
        ("POST", "octocat/Hello-World/hooks"),
    ]
    assert result.registered == ["octocat/Hello-World"] and hooks(session, [hello, spoon]) == ["12345678", None]
