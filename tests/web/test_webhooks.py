"""POST /webhooks/<integration>/<token>: signed deliveries from the hosts' own example payloads.

``request_index`` (the scheduler's) is replaced by a recorder in most tests, so they show
exactly which repositories a delivery asks to index; ``test_real_request_index_*`` runs the
real one when it exists.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import io
import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue
from rq.job import Job
from sqlalchemy import select

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.indexing import deliveries, queueing, scheduler
from connect_app.integrations import NewIntegration, add_repositories, create_integration, webhook_secret
from connect_app.models import (
    DeliveryStatus,
    IndexRun,
    Integration,
    IntegrationStatus,
    Repository,
    RepositorySelection,
    RepositoryStatus,
    RunKind,
    Tenant,
    Trigger,
    WebhookDelivery,
    utcnow,
)
from connect_app.web import webhooks
from tests.support.connect import JiraSite

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


# --------------------------------------------------------------------------- helpers


@dataclass
class IndexRecorder:
    """Stands in for scheduler.request_index: records calls, can fail like Redis down."""

    calls: list[tuple[list[int], Trigger]] = field(default_factory=list)
    redis_down: bool = False

    def __call__(
        self, session: Any, repositories: Sequence[Repository], trigger: Trigger, **_: Any
    ) -> None:
        now = utcnow()
        for repo in repositories:
            repo.reindex_requested_at = now
        session.commit()  # like the real one: the database change is committed first
        if self.redis_down:
            raise RedisConnectionError("Connection refused")
        self.calls.append(([r.id for r in repositories], trigger))


@pytest.fixture
def index_requests(monkeypatch: pytest.MonkeyPatch) -> IndexRecorder:
    recorder = IndexRecorder()
    monkeypatch.setattr(scheduler, "request_index", recorder, raising=False)
    return recorder


@dataclass(frozen=True)
class Hook:
    integration_id: int
    token: str
    secret: str
    tenant_id: int
    repository_id: int | None

    @property
    def url(self) -> str:
        return f"/webhooks/{self.integration_id}/{self.token}"


def tenant_id_of(app: Flask, site: JiraSite) -> int:
    with app.app_context():
        tenant = db.session().scalars(select(Tenant).where(Tenant.client_key == site.client_key)).one()
        return tenant.id


def make_hook(
    app: Flask,
    site: JiraSite,
    provider: ProviderId,
    external_id: str | None,
    *,
    namespace: str | None = None,
    selection: RepositorySelection = RepositorySelection.SELECTED,
) -> Hook:
    tenant_id = tenant_id_of(app, site)
    with app.app_context():
        session = db.session()
        integration = create_integration(
            session,
            tenant_id,
            NewIntegration(
                provider=provider,
                credentials=Credentials(AuthType.PAT, token="pat-for-tests-0123456789"),
                display_name=f"{provider.value} test",
                namespace=namespace,
                repository_selection=selection,
            ),
        )
        repo_id = None
        if external_id is not None:
            [repo] = add_repositories(
                session,
                integration,
                [RemoteRepository(external_id, "acme/widgets", "https://git.example/acme/widgets.git")],
            )
            repo_id = repo.id
        session.commit()
        hook = Hook(integration.id, integration.webhook_token, webhook_secret(integration), tenant_id, repo_id)
        db.session.remove()
        return hook


def fixture(host_dir: str, name: str) -> bytes:
    return (FIXTURES / host_dir / name).read_bytes()


def github_headers(body: bytes, secret: str, event: str = "push", delivery: str = "gh-d-1") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


def gitlab_headers(body: bytes, secret: str, event: str = "Push Hook", delivery: str = "gl-idem-1") -> dict[str, str]:
    return {
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": secret,
        "X-Gitlab-Event-UUID": "9cebe914-4827-408f-b014-cfa23a47a35f",
        "Idempotency-Key": delivery,
        "Content-Type": "application/json",
    }


def bitbucket_headers(body: bytes, secret: str, event: str = "repo:push", delivery: str = "bb-req-1") -> dict[str, str]:
    return {
        "X-Event-Key": event,
        "X-Request-UUID": delivery,
        "X-Hook-UUID": "hook-uuid-1",
        "X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
    }


def azure_headers(body: bytes, secret: str, event: str = "", delivery: str = "") -> dict[str, str]:
    token = base64.b64encode(f"git-connect:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


@dataclass(frozen=True)
class Case:
    provider: ProviderId
    fixture_dir: str
    fixture_name: str
    external_id: str
    sign: Callable[..., dict[str, str]]
    expected_key: str
    namespace: str | None = None
    signature_header: str = ""

    @property
    def body(self) -> bytes:
        return fixture(self.fixture_dir, self.fixture_name)


CASES = [
    Case(
        ProviderId.GITHUB, "github", "push.json", "186853002", github_headers, "gh-d-1",
        signature_header="X-Hub-Signature-256",
    ),
    Case(
        ProviderId.GITLAB, "gitlab", "webhook_push.json", "15", gitlab_headers, "gl-idem-1",
        signature_header="X-Gitlab-Token",
    ),
    Case(
        ProviderId.BITBUCKET_CLOUD, "bitbucket_cloud", "repo_push.json", "{85d08b4e-571d-44e9-a507-fa476535aa98}",
        bitbucket_headers, "bb-req-1", signature_header="X-Hub-Signature",
    ),
    Case(
        ProviderId.AZURE_DEVOPS, "azure_devops", "git.push.json", "278d5cd2-584d-4b63-824a-2ba458937249",
        azure_headers, "03c164c2-8912-4d5e-8009-3707d5f83734", namespace="fabrikam",
        signature_header="Authorization",
    ),
]  # fmt: skip
CASE_IDS = [c.provider.value for c in CASES]


def stored(app: Flask, integration_id: int | None = None) -> list[WebhookDelivery]:
    with app.app_context():
        query = select(WebhookDelivery).order_by(WebhookDelivery.id)
        if integration_id is not None:
            query = query.where(WebhookDelivery.integration_id == integration_id)
        rows = list(db.session().scalars(query))
        db.session.remove()
        return rows


def with_settings(monkeypatch: pytest.MonkeyPatch, app: Flask, **overrides: Any) -> None:
    rt = app.extensions["git_connect"]
    monkeypatch.setitem(
        app.extensions, "git_connect", dataclasses.replace(rt, settings=rt.settings.with_overrides(**overrides))
    )


# --------------------------------------------------------------------------- the happy path


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_good_delivery_is_stored_then_indexed(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder, case: Case
) -> None:
    hook = make_hook(app, installed_site, case.provider, case.external_id, namespace=case.namespace)
    body = case.body
    response = client.post(hook.url, data=body, headers=case.sign(body, hook.secret))
    assert response.status_code == 202, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["status"] == "accepted" and answer["enqueued"] is True
    assert index_requests.calls == [([hook.repository_id], Trigger.WEBHOOK)]
    [row] = stored(app)
    assert row.id == answer["delivery"]
    assert row.delivery_key == case.expected_key
    assert row.status == DeliveryStatus.ENQUEUED.value and row.enqueued_at is not None
    assert row.repository_ids == [hook.repository_id]
    assert row.tenant_id == hook.tenant_id and row.integration_id == hook.integration_id
    assert row.body is None  # only malformed deliveries keep their body
    assert row.summary["events"][0]["type"] == "push"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_redelivery_is_a_no_op(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder, case: Case
) -> None:
    hook = make_hook(app, installed_site, case.provider, case.external_id, namespace=case.namespace)
    body = case.body
    headers = case.sign(body, hook.secret)
    assert client.post(hook.url, data=body, headers=headers).status_code == 202
    again = client.post(hook.url, data=body, headers=headers)
    assert again.status_code == 200 and again.get_json() == {"status": "duplicate"}
    assert len(stored(app)) == 1
    assert len(index_requests.calls) == 1


def test_github_pull_request_routes_to_its_repository(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "pull_request.opened.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret, "pull_request", "pr-1"))
    assert response.status_code == 202
    assert index_requests.calls == [([hook.repository_id], Trigger.WEBHOOK)]
    [row] = stored(app)
    assert row.event == "pull_request" and row.summary["events"] == [
        {"type": "pull_request", "repository": "186853002", "action": "opened"}
    ]


def test_delivery_larger_than_the_app_wide_limit_is_accepted(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder, settings: Any
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "push.json")
    body = body + b" " * (settings.max_body_bytes + 1024)  # still valid JSON, bigger than MAX_CONTENT_LENGTH
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret))
    assert response.status_code == 202


def test_ping_is_stored_and_ignored(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "ping.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret, "ping", "ping-1"))
    assert response.status_code == 200
    assert response.get_json()["status"] == "ignored"
    [row] = stored(app)
    assert row.status == DeliveryStatus.IGNORED.value and row.summary["reason"] == "ping"
    assert index_requests.calls == []


def test_events_we_do_not_index_are_ignored(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "pull_request.labeled.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret, "pull_request", "l-1"))
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert stored(app)[0].summary["reason"] == "event not indexed"
    assert index_requests.calls == []


def test_push_to_a_repository_we_do_not_index_is_ignored(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "999")  # selected repositories only
    body = fixture("github", "push.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret))
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    [row] = stored(app)
    assert row.summary["unknown_repositories"] == ["186853002"] and row.repository_ids == []
    assert index_requests.calls == []


def test_disabled_repository_is_not_indexed(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    with app.app_context():
        repo = db.session().get(Repository, hook.repository_id)
        assert repo is not None
        repo.enabled = False
        db.session().commit()
    body = fixture("github", "push.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret))
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert index_requests.calls == []
    assert stored(app)[0].summary["reason"] == "repository disabled"


# --------------------------------------------------------------------------- discovery


def _discovery_jobs(app: Flask) -> list[Job]:
    with app.app_context():
        found: list[Job] = []
        for name in (queueing.WEBHOOKS_QUEUE, queueing.INDEXING_QUEUE):
            q = Queue(name, connection=redis_conn.client)
            found += [j for j in q.get_jobs() if j.func_name == queueing.DISCOVER_FUNC]
        return found


def test_repository_created_requests_one_discovery(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, None, selection=RepositorySelection.ALL_FUTURE)
    body = fixture("github", "repository.created.json")
    first = client.post(hook.url, data=body, headers=github_headers(body, hook.secret, "repository", "r-1"))
    second = client.post(hook.url, data=body, headers=github_headers(body, hook.secret, "repository", "r-2"))
    assert (first.status_code, second.status_code) == (202, 202)
    with app.app_context():
        [run] = db.session().scalars(select(IndexRun).where(IndexRun.kind == RunKind.DISCOVER.value)).all()
        assert run.trigger == Trigger.WEBHOOK.value and run.integration_id == hook.integration_id
        run_id = run.id
    [job] = _discovery_jobs(app)  # the second event reused the queued run
    assert job.args == (hook.integration_id, run_id)
    assert [r.status for r in stored(app)] == [DeliveryStatus.ENQUEUED.value] * 2
    assert index_requests.calls == []


def test_repository_created_is_ignored_when_new_repositories_are_not_followed(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, None, selection=RepositorySelection.SELECTED)
    body = fixture("github", "repository.created.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret, "repository", "r-1"))
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert _discovery_jobs(app) == []


def test_repository_deleted_rediscovers_a_known_repository(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    body = fixture("github", "repository.deleted.json")
    external_id = str(json.loads(body)["repository"]["id"])
    hook = make_hook(app, installed_site, ProviderId.GITHUB, external_id)
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret, "repository", "del-1"))
    assert response.status_code == 202
    assert len(_discovery_jobs(app)) == 1
    assert index_requests.calls == []


def test_push_from_an_unknown_repository_of_an_all_future_integration_discovers(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITLAB, None, selection=RepositorySelection.ALL_FUTURE)
    body = fixture("gitlab", "webhook_push.json")
    response = client.post(hook.url, data=body, headers=gitlab_headers(body, hook.secret))
    assert response.status_code == 202
    assert len(_discovery_jobs(app)) == 1


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_tampered_body_is_refused(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder, case: Case
) -> None:
    hook = make_hook(app, installed_site, case.provider, case.external_id, namespace=case.namespace)
    body = case.body
    headers = case.sign(body, hook.secret)
    if case.provider in (ProviderId.GITLAB, ProviderId.AZURE_DEVOPS):
        # these hosts send the shared secret itself, not a signature of the body: a forged
        # delivery shows up as a wrong secret
        headers = case.sign(body, "not-the-secret")
    response = client.post(hook.url, data=body.replace(b"a", b"b", 1), headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == {"code": "bad_signature", "message": webhooks.UNVERIFIED_MESSAGE}
    assert stored(app) == [] and index_requests.calls == []


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_missing_signature_is_refused(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder, case: Case
) -> None:
    hook = make_hook(app, installed_site, case.provider, case.external_id, namespace=case.namespace)
    body = case.body
    headers = {k: v for k, v in case.sign(body, hook.secret).items() if k != case.signature_header}
    response = client.post(hook.url, data=body, headers=headers)
    assert response.status_code == 401
    assert stored(app) == [] and index_requests.calls == []


def test_github_signature_with_another_integrations_secret_is_refused(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    one = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    two = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "push.json")
    assert client.post(one.url, data=body, headers=github_headers(body, two.secret)).status_code == 401


def test_unknown_integration_and_wrong_token_are_404(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "push.json")
    headers = github_headers(body, hook.secret)
    unknown = client.post(f"/webhooks/{hook.integration_id + 1000}/{hook.token}", data=body, headers=headers)
    other_last = "y" if hook.token.endswith("x") else "x"  # always a different token
    wrong = client.post(f"/webhooks/{hook.integration_id}/{hook.token[:-1]}{other_last}", data=body, headers=headers)
    huge = client.post(f"/webhooks/{2**63}/{hook.token}", data=body, headers=headers)
    assert unknown.status_code == wrong.status_code == huge.status_code == 404
    assert unknown.get_json() == wrong.get_json() == huge.get_json()
    assert unknown.get_json()["error"]["code"] == "not_found"
    assert stored(app) == []


def test_unknown_integration_and_wrong_token_do_the_same_compare(
    app: Flask, client: FlaskClient, installed_site: JiraSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No early return before the compare: both misses compare two SHA-256 digests."""
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    assert client.post(f"/webhooks/{hook.integration_id + 1}/{hook.token}", data=b"{}").status_code == 404
    unknown_calls = list(calls)
    calls.clear()
    assert client.post(f"/webhooks/{hook.integration_id}/short", data=b"{}").status_code == 404
    wrong_calls = list(calls)
    assert unknown_calls == wrong_calls == [(32, 32)]


def test_tenant_isolation(
    app: Flask,
    client: FlaskClient,
    installed_site: JiraSite,
    other_site: JiraSite,
    index_requests: IndexRecorder,
) -> None:
    mine = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    theirs = make_hook(app, other_site, ProviderId.GITHUB, "186853002")
    assert mine.tenant_id != theirs.tenant_id
    body = fixture("github", "push.json")
    # their token on my integration, my token on theirs
    assert client.post(f"/webhooks/{mine.integration_id}/{theirs.token}", data=body,
                       headers=github_headers(body, theirs.secret)).status_code == 404  # fmt: skip
    assert client.post(f"/webhooks/{theirs.integration_id}/{mine.token}", data=body,
                       headers=github_headers(body, mine.secret)).status_code == 404  # fmt: skip
    # their URL, signed with my secret
    assert client.post(theirs.url, data=body, headers=github_headers(body, mine.secret)).status_code == 401
    assert stored(app) == [] and index_requests.calls == []
    # a good delivery to theirs touches their repository only, stored under their tenant
    assert client.post(theirs.url, data=body, headers=github_headers(body, theirs.secret)).status_code == 202
    assert index_requests.calls == [([theirs.repository_id], Trigger.WEBHOOK)]
    [row] = stored(app)
    assert row.tenant_id == theirs.tenant_id


def test_disabled_site_is_404(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "push.json")
    with app.app_context():
        tenant = db.session().get(Tenant, hook.tenant_id)
        assert tenant is not None
        tenant.enabled = False
        db.session().commit()
    assert client.post(hook.url, data=body, headers=github_headers(body, hook.secret)).status_code == 404
    assert stored(app) == []


def _switch_off(app: Flask, hook: Hook, what: str) -> None:
    with app.app_context():
        session = db.session()
        integration = session.get(Integration, hook.integration_id)
        repo = session.get(Repository, hook.repository_id)
        assert integration is not None and repo is not None
        if what == "integration disabled":
            integration.status = IntegrationStatus.DISABLED.value
        elif what == "webhooks off":
            integration.features = {**integration.features, "webhooks": False}
        elif what == "repository disabled":
            repo.enabled = False
        else:
            repo.status, repo.removed_at = RepositoryStatus.REMOVED.value, utcnow()
        session.commit()


SWITCHED_OFF = {
    "integration disabled": "the integration is disabled",
    "webhooks off": "webhooks are switched off for this integration",
    "repository disabled": "repository disabled",
    "repository removed": "repository no longer visible to the integration's credentials",
}


@pytest.mark.parametrize("what", list(SWITCHED_OFF))
def test_switched_off_deliveries_are_verified_acknowledged_and_ignored(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder, what: str
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    _switch_off(app, hook, what)
    body = fixture("github", "push.json")
    # the signature is still checked first: a forged delivery is refused and not stored
    forged = client.post(hook.url, data=body, headers=github_headers(body, "not-the-secret"))
    assert forged.status_code == 401 and stored(app) == []
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "ignored"
    [row] = stored(app)
    assert row.id == response.get_json()["delivery"]
    assert row.status == DeliveryStatus.IGNORED.value and row.summary["reason"] == SWITCHED_OFF[what]
    assert row.repository_ids == [] and index_requests.calls == []
    if what.startswith("repository"):
        assert row.summary["skipped_repositories"] == [{"id": hook.repository_id, "reason": SWITCHED_OFF[what]}]


@pytest.mark.parametrize("what", ["integration disabled", "webhooks off"])
def test_switched_off_integrations_do_not_discover_new_repositories(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder, what: str
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "1", selection=RepositorySelection.ALL_FUTURE)
    _switch_off(app, hook, what)
    body = fixture("github", "repository.created.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret, "repository", "r-1"))
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert _discovery_jobs(app) == [] and stored(app)[0].summary["reason"] == SWITCHED_OFF[what]


def test_a_disabled_integration_still_takes_the_same_path_as_an_unknown_one(
    app: Flask, client: FlaskClient, installed_site: JiraSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disabling an integration adds no early exit before the token compare."""
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    _switch_off(app, hook, "integration disabled")
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    assert client.post(f"/webhooks/{hook.integration_id}/wrong-token", data=b"{}").status_code == 404
    assert client.post(f"/webhooks/{hook.integration_id + 1}/{hook.token}", data=b"{}").status_code == 404
    assert calls == [(32, 32), (32, 32)]


def test_switched_on_again_deliveries_are_indexed(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    _switch_off(app, hook, "webhooks off")
    body = fixture("github", "push.json")
    assert client.post(hook.url, data=body, headers=github_headers(body, hook.secret, delivery="a")).status_code == 200
    with app.app_context():
        integration = db.session().get(Integration, hook.integration_id)
        assert integration is not None
        integration.features = {**integration.features, "webhooks": True}
        db.session().commit()
    assert client.post(hook.url, data=body, headers=github_headers(body, hook.secret, delivery="b")).status_code == 202
    assert index_requests.calls == [([hook.repository_id], Trigger.WEBHOOK)]


def test_integration_with_failed_credentials_still_stores_deliveries(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    with app.app_context():
        integration = db.session().get(Integration, hook.integration_id)
        assert integration is not None
        integration.status = IntegrationStatus.AUTH_FAILED.value
        db.session().commit()
    body = fixture("github", "push.json")
    assert client.post(hook.url, data=body, headers=github_headers(body, hook.secret)).status_code == 202


@pytest.mark.parametrize("provider", [ProviderId.GERRIT, ProviderId.GIT])
def test_providers_without_webhooks_answer_404(
    app: Flask, client: FlaskClient, installed_site: JiraSite, provider: ProviderId
) -> None:
    tenant_id = tenant_id_of(app, installed_site)
    with app.app_context():
        session = db.session()
        integration = create_integration(
            session,
            tenant_id,
            NewIntegration(
                provider=provider,
                credentials=Credentials(AuthType.NONE),
                display_name="no hooks",
                base_url="https://git.example/repo.git",
            ),
        )
        session.commit()
        url = f"/webhooks/{integration.id}/{integration.webhook_token}"
    assert client.post(url, data=b"{}").status_code == 404


def test_only_post_is_routed(client: FlaskClient) -> None:
    assert client.get("/webhooks/1/abc").status_code == 405
    assert client.get("/webhooks/1/abc").get_json()["error"]["code"] == "method_not_allowed"


# --------------------------------------------------------------------------- size


def test_oversized_body_is_413_before_anything_is_read(
    app: Flask,
    client: FlaskClient,
    installed_site: JiraSite,
    index_requests: IndexRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    with_settings(monkeypatch, app, webhook_max_body_bytes=1000)
    body = fixture("github", "push.json")
    assert len(body) > 1000

    class Unreadable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("the body was read although Content-Length was over the limit")

        def readinto(self, _buffer: Any) -> int:
            raise AssertionError("the body was read although Content-Length was over the limit")

    response = client.post(
        hook.url,
        input_stream=Unreadable(body),
        content_length=len(body),
        headers=github_headers(body, hook.secret),
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert stored(app) == []


def test_oversized_stream_without_content_length_is_413(
    app: Flask,
    client: FlaskClient,
    installed_site: JiraSite,
    index_requests: IndexRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    with_settings(monkeypatch, app, webhook_max_body_bytes=1000)
    body = fixture("github", "push.json") + b" " * 4_000_000
    read: list[int] = []

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            read.append(len(chunk))
            return chunk

        def readinto(self, buffer: Any) -> int:
            n = super().readinto(buffer)
            read.append(n)
            return n

    response = client.post(
        hook.url,
        input_stream=Counting(body),
        headers=github_headers(body, hook.secret),
        # chunked, no Content-Length, from a server that terminates the stream itself
        environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"},
    )
    assert response.status_code == 413
    assert sum(read) == 1001  # read up to one byte past the limit, not the whole body
    assert stored(app) == []


def test_small_limit_still_accepts_a_body_under_it(
    app: Flask,
    client: FlaskClient,
    installed_site: JiraSite,
    index_requests: IndexRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "push.json")
    with_settings(monkeypatch, app, webhook_max_body_bytes=len(body))
    assert client.post(hook.url, data=body, headers=github_headers(body, hook.secret)).status_code == 202


# --------------------------------------------------------------------------- malformed


MALFORMED = [
    (ProviderId.GITHUB, github_headers, b'{"ref": "refs/heads/main", '),
    (ProviderId.GITLAB, gitlab_headers, b"not json at all"),
    (ProviderId.BITBUCKET_CLOUD, bitbucket_headers, b"[1, 2"),
    (ProviderId.AZURE_DEVOPS, azure_headers, b"\xff\xfe garbage"),
    # valid JSON, unexpected shapes
    (ProviderId.AZURE_DEVOPS, azure_headers, b'{"eventType": "git.push", "resource": ["a list"]}'),
    (ProviderId.GITLAB, gitlab_headers, b'{"event_name": "project_create"}'),
    (ProviderId.BITBUCKET_CLOUD, bitbucket_headers, b"[]"),
]


@pytest.mark.parametrize(("provider", "sign", "body"), MALFORMED)
def test_malformed_delivery_with_a_good_signature_is_stored_and_400(
    app: Flask,
    client: FlaskClient,
    installed_site: JiraSite,
    index_requests: IndexRecorder,
    provider: ProviderId,
    sign: Callable[..., dict[str, str]],
    body: bytes,
) -> None:
    hook = make_hook(app, installed_site, provider, "1", namespace="fabrikam")
    headers = sign(body, hook.secret)
    response = client.post(hook.url, data=body, headers=headers)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "malformed_payload" and error["message"].startswith("The delivery could not be read: ")
    assert "Traceback" not in response.get_data(as_text=True)
    [row] = stored(app)
    assert row.status == DeliveryStatus.MALFORMED.value
    assert row.body == body and row.error
    assert index_requests.calls == []
    # the host retries it: still a clean 400, still one row
    assert client.post(hook.url, data=body, headers=headers).status_code == 400
    assert len(stored(app)) == 1


def test_malformed_body_is_kept_bounded(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "1")
    body = b"{" + b"x" * (deliveries.MAX_STORED_BODY * 2)
    assert client.post(hook.url, data=body, headers=github_headers(body, hook.secret)).status_code == 400
    [row] = stored(app)
    assert row.body is not None and len(row.body) == deliveries.MAX_STORED_BODY
    assert row.summary == {"body_bytes": len(body), "body_truncated": True}


# --------------------------------------------------------------------------- Redis down


def test_redis_down_leaves_the_delivery_pending_then_enqueue_pending_sends_it(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "push.json")
    index_requests.redis_down = True
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret))
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "delivery": stored(app)[0].id, "enqueued": False}
    [row] = stored(app)
    assert row.status == DeliveryStatus.RECEIVED.value and row.enqueued_at is None
    assert row.repository_ids == [hook.repository_id]
    with app.app_context():  # the index request itself reached the database before Redis failed
        repo = db.session().get(Repository, hook.repository_id)
        assert repo is not None and repo.reindex_requested_at is not None

    later = utcnow() + timedelta(seconds=30)
    with app.app_context():
        assert deliveries.enqueue_pending(db.session(), now=later) == 0  # still down: stays pending
    assert stored(app)[0].status == DeliveryStatus.RECEIVED.value

    index_requests.redis_down = False  # Redis is back
    with app.app_context():
        assert deliveries.enqueue_pending(db.session(), now=later) == 1
        assert deliveries.enqueue_pending(db.session(), now=later) == 0  # idempotent
    [row] = stored(app)
    assert row.status == DeliveryStatus.ENQUEUED.value and row.enqueued_at is not None
    assert index_requests.calls == [([hook.repository_id], Trigger.WEBHOOK)]
    # and a redelivery meanwhile changed nothing
    assert client.post(hook.url, data=body, headers=github_headers(body, hook.secret)).status_code == 200
    assert len(index_requests.calls) == 1


def test_redis_down_for_a_discovery_request(
    app: Flask,
    client: FlaskClient,
    installed_site: JiraSite,
    index_requests: IndexRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, None, selection=RepositorySelection.ALL_FUTURE)
    body = fixture("github", "repository.created.json")

    def down(*args: Any, **kwargs: Any) -> bool:
        raise RedisConnectionError("Connection refused")

    with monkeypatch.context() as m:
        m.setattr(queueing, "enqueue_unique", down)
        response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret, "repository", "c-1"))
    assert response.status_code == 202 and response.get_json()["enqueued"] is False
    assert stored(app)[0].status == DeliveryStatus.RECEIVED.value
    with app.app_context():
        assert deliveries.enqueue_pending(db.session(), now=utcnow() + timedelta(seconds=30)) == 1
        runs = db.session().scalars(select(IndexRun).where(IndexRun.kind == RunKind.DISCOVER.value)).all()
    assert len(runs) == 1  # the failed attempt left no run behind; the retry queued one
    [job] = _discovery_jobs(app)
    assert job.args == (hook.integration_id, runs[0].id)


# --------------------------------------------------------------------------- payload data never reaches git


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record (and refuse) every process start: the intake must not run git at all."""
    started: list[Any] = []

    class Refused(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, args: Any, *a: Any, **kw: Any) -> None:
            started.append(args)
            raise AssertionError(f"the webhook intake started a process: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", Refused)
    return started


def test_option_like_refs_and_urls_in_a_payload_never_reach_git(
    app: Flask,
    client: FlaskClient,
    installed_site: JiraSite,
    index_requests: IndexRecorder,
    no_subprocess: list[Any],
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    payload = json.loads(fixture("github", "push.json"))
    evil = "--upload-pack=touch /tmp/pwned"
    payload["ref"] = evil
    payload["base_ref"] = evil
    payload["repository"].update(clone_url=evil, git_url=evil, ssh_url=evil, html_url=evil, full_name=evil)
    body = json.dumps(payload).encode()
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret))
    assert response.status_code == 202
    assert no_subprocess == []
    # the indexer gets our repository row (its stored clone URL), by id; nothing else
    assert index_requests.calls == [([hook.repository_id], Trigger.WEBHOOK)]
    with app.app_context():
        repo = db.session().get(Repository, hook.repository_id)
        assert repo is not None and repo.clone_url == "https://git.example/acme/widgets.git"
    [row] = stored(app)
    assert "upload-pack" not in json.dumps([row.summary, row.repository_ids, row.delivery_key, row.event])


def test_option_like_repository_id_is_just_an_unknown_repository(
    app: Flask,
    client: FlaskClient,
    installed_site: JiraSite,
    index_requests: IndexRecorder,
    no_subprocess: list[Any],
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITLAB, "15")
    payload = json.loads(fixture("gitlab", "webhook_push.json"))
    payload["project_id"] = "--upload-pack=evil"
    payload["project"]["git_http_url"] = "--upload-pack=evil"
    payload["ref"] = "-c core.sshCommand=evil"
    body = json.dumps(payload).encode()
    response = client.post(hook.url, data=body, headers=gitlab_headers(body, hook.secret))
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert no_subprocess == [] and index_requests.calls == []


# --------------------------------------------------------------------------- with the real scheduler


def test_real_request_index_enqueues_the_repository(app: Flask, client: FlaskClient, installed_site: JiraSite) -> None:
    if not hasattr(scheduler, "request_index"):
        pytest.skip("connect_app.indexing.scheduler.request_index is not written yet")
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    body = fixture("github", "push.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret))
    assert response.status_code == 202 and response.get_json()["enqueued"] is True
    with app.app_context():
        [run] = db.session().scalars(select(IndexRun).where(IndexRun.repository_id == hook.repository_id)).all()
        assert run.trigger == Trigger.WEBHOOK.value and run.kind == RunKind.INDEX.value
        job = Job.fetch(queueing.index_job_id(hook.repository_id), connection=redis_conn.client)
        assert job.func_name == queueing.INDEX_FUNC and job.args[0] == hook.repository_id
        assert job.origin == queueing.WEBHOOKS_QUEUE
    # a redelivery enqueues nothing more
    assert client.post(hook.url, data=body, headers=github_headers(body, hook.secret)).status_code == 200
    with app.app_context():
        assert len(db.session().scalars(select(IndexRun)).all()) == 1


def test_a_scheduler_failure_after_storing_still_answers_202(
    app: Flask, client: FlaskClient, installed_site: JiraSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(scheduler, "request_index", broken, raising=False)
    body = fixture("github", "push.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret))
    assert response.status_code == 202 and response.get_json()["enqueued"] is False
    [row] = stored(app)
    assert row.status == DeliveryStatus.RECEIVED.value and "RuntimeError" in (row.error or "")


def test_an_integration_whose_secret_cannot_be_read_answers_503(
    app: Flask, client: FlaskClient, installed_site: JiraSite, index_requests: IndexRecorder
) -> None:
    hook = make_hook(app, installed_site, ProviderId.GITHUB, "186853002")
    with app.app_context():
        integration = db.session().get(Integration, hook.integration_id)
        assert integration is not None
        integration.webhook_secret_encrypted = "not-a-fernet-token"  # e.g. ENCRYPTION_KEYS lost its key
        db.session().commit()
    body = fixture("github", "push.json")
    response = client.post(hook.url, data=body, headers=github_headers(body, hook.secret))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "webhook_unavailable"
    assert stored(app) == []
