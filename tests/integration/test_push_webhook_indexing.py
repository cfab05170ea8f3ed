"""A push webhook, end to end: signed delivery -> stored -> unique job on the webhooks queue ->
the worker indexes only the commits the push added (real git over HTTP on loopback; the
host's API is Prism serving GitHub's own description)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from sqlalchemy import func, select

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.hosts.github import GitHubHost
from connect_app.integrations import NewIntegration, add_repositories, create_integration, webhook_secret
from connect_app.models import Commit, IndexRun, RepositorySelection, Tenant, Trigger
from tests.support.connect import JiraSite
from tests.support.git_server import GitHttpServer, RepoBuilder, make_repo
from tests.support.prism import PrismMock
from workers.queues import ALL_QUEUES

PUSH = Path(__file__).parent.parent / "fixtures" / "github" / "push.json"

pytestmark = pytest.mark.slow


def _drain(app: Flask) -> None:
    with app.app_context():
        SimpleWorker([q.value for q in ALL_QUEUES], connection=redis_conn.client).work(burst=True)
        db.session.remove()


def _deliver(client: FlaskClient, url: str, secret: str, delivery: str) -> int:
    body = PUSH.read_bytes()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature,
        "Content-Type": "application/json",
    }
    return client.post(url, data=body, headers=headers).status_code


def test_a_push_webhook_indexes_only_what_changed(
    app: Flask,
    client: FlaskClient,
    installed_site: JiraSite,
    open_git_server: GitHttpServer,
    git_repo_name: str,
    prism_github: PrismMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pull requests are not what this test is about, and Prism's static example list carries a
    # Link header to api.github.com that the client rightly refuses to follow.
    monkeypatch.setattr(GitHubHost, "list_pull_requests", lambda self, repo, updated_since=None: iter(()))
    holder: dict[str, RepoBuilder] = {}
    open_git_server.add_repo(git_repo_name, lambda p: holder.setdefault("b", make_repo(p)))
    source = holder["b"]
    payload = json.loads(PUSH.read_text())
    with app.app_context():
        session = db.session()
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.client_key == installed_site.client_key))
        assert tenant_id is not None
        integration = create_integration(
            session,
            tenant_id,
            NewIntegration(
                provider=ProviderId.GITHUB,
                credentials=Credentials(AuthType.PAT, token="ghp_test"),
                display_name="GitHub",
                base_url=prism_github.base_url,
                repository_selection=RepositorySelection.SELECTED,
            ),
        )
        remote = RemoteRepository(
            external_id=str(payload["repository"]["id"]),
            name=payload["repository"]["full_name"],
            clone_url=open_git_server.url_for(git_repo_name),
        )
        [repo] = add_repositories(session, integration, [remote])
        session.commit()
        repo_id, integration_id = repo.id, integration.id
        url = f"/webhooks/{integration_id}/{integration.webhook_token}"
        secret = webhook_secret(integration)

        from connect_app.indexing.scheduler import request_index

        request_index(session, [repo], Trigger.INITIAL)
    _drain(app)
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Commit).where(Commit.repository_id == repo_id))
    assert before and before >= 6

    source.commit("ABC-100 first pushed change", files={"a.txt": "1\n"})
    source.commit("ABC-101 second pushed change", files={"a.txt": "2\n"})
    source.publish()

    assert _deliver(client, url, secret, "delivery-1") == 202
    assert _deliver(client, url, secret, "delivery-1") == 200  # a redelivery is a no-op
    _drain(app)

    with app.app_context():
        runs = db.session.scalars(select(IndexRun).where(IndexRun.repository_id == repo_id).order_by(IndexRun.id)).all()
        after = db.session.scalar(select(func.count()).select_from(Commit).where(Commit.repository_id == repo_id))
    assert [(r.trigger, r.status) for r in runs] == [("initial", "done"), ("webhook", "done")]
    assert runs[-1].commits_seen == 2
    assert after == before + 2
