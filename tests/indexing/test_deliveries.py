"""connect_app.indexing.deliveries: delivery keys per host, routing, the pending retry."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.extensions import db
from connect_app.hosts.base import (
    AuthType,
    Credentials,
    ProviderId,
    RefUpdate,
    RemoteRepository,
    RepositoryAction,
    WebhookEvent,
    WebhookEventType,
)
from connect_app.indexing import deliveries, scheduler
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.models import (
    DeliveryStatus,
    Integration,
    IntegrationEvent,
    IntegrationStatus,
    Repository,
    RepositorySelection,
    RepositoryStatus,
    Tenant,
    Trigger,
    WebhookDelivery,
    utcnow,
)
from tests.support.connect import JiraSite

# --------------------------------------------------------------------------- delivery keys (pure)


def push(delivery_id: str | None = None, repo: str | None = "1") -> WebhookEvent:
    return WebhookEvent(WebhookEventType.PUSH, repository_external_id=repo, delivery_id=delivery_id)


@pytest.mark.parametrize(
    ("provider", "headers", "expected"),
    [
        (ProviderId.GITHUB, {"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab"}, "72d3162e-cc78-11e3-81ab"),
        (ProviderId.GITHUB_ENTERPRISE, {"x-github-delivery": "ghe-1"}, "ghe-1"),
        # GitLab: Idempotency-Key is the one that survives retries
        (ProviderId.GITLAB, {"X-Gitlab-Event-UUID": "ev", "Idempotency-Key": "idem"}, "idem"),
        (ProviderId.GITLAB_SELF_MANAGED, {"X-Gitlab-Event-UUID": "ev", "X-Gitlab-Webhook-UUID": "wh"}, "ev"),
        # Bitbucket Cloud: X-Hook-UUID names the subscription, the same for every delivery
        (ProviderId.BITBUCKET_CLOUD, {"X-Hook-UUID": "hook", "X-Request-UUID": "req"}, "req"),
        (ProviderId.BITBUCKET_CLOUD, {"X-Hook-UUID": "hook"}, None),
        (ProviderId.BITBUCKET_DATACENTER, {"X-Request-Id": "dc-1"}, "dc-1"),
        (ProviderId.AZURE_DEVOPS, {"X-Request-Id": "not-azure's"}, None),  # Azure's id is in the payload
        (ProviderId.GITHUB, {"X-GitHub-Delivery": "   "}, None),
    ],
)  # fmt: skip
def test_key_from_headers_when_nothing_parsed(
    provider: ProviderId, headers: dict[str, str], expected: str | None
) -> None:
    key = deliveries.delivery_key(provider.value, headers, b"{}")
    assert key == (expected or deliveries.body_key(b"{}"))


def test_key_prefers_the_delivery_id_the_host_module_parsed() -> None:
    # Azure DevOps: the host module reads the payload's "id"
    events = [push(None), push("azure-event-id")]
    assert deliveries.delivery_key(ProviderId.AZURE_DEVOPS.value, {}, b"{}", events) == "azure-event-id"


def test_key_falls_back_to_the_body_hash() -> None:
    key = deliveries.delivery_key(ProviderId.AZURE_DEVOPS.value, {}, b'{"a": 1}', [push(None)])
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64
    assert key != deliveries.delivery_key(ProviderId.AZURE_DEVOPS.value, {}, b'{"a": 2}', [push(None)])
    assert deliveries.delivery_key("no-such-provider", {"X-GitHub-Delivery": "x"}, b"") == deliveries.body_key(b"")


def test_long_or_unprintable_ids_are_hashed_to_fit() -> None:
    long_key = deliveries.delivery_key(ProviderId.GITHUB.value, {"X-GitHub-Delivery": "x" * 500}, b"")
    odd_key = deliveries.delivery_key(ProviderId.GITHUB.value, {"X-GitHub-Delivery": "a\x00b"}, b"")
    for key in (long_key, odd_key):
        assert key.startswith("id-sha256:") and len(key) <= deliveries.KEY_LIMIT
    assert long_key != odd_key


def test_event_name() -> None:
    assert deliveries.event_name({"X-GitHub-Event": "push"}) == "push"
    assert deliveries.event_name({"x-gitlab-event": "Merge Request Hook"}) == "Merge Request Hook"
    assert deliveries.event_name({"X-Event-Key": "repo:push"}) == "repo:push"
    assert deliveries.event_name({}, [push()]) == "push"
    assert deliveries.event_name({}) is None
    assert deliveries.event_name({"X-GitHub-Event": "e" * 200}) == "e" * deliveries.EVENT_LIMIT


def test_error_text_never_carries_a_traceback() -> None:
    assert deliveries.error_text(KeyError("project_id")) == "unexpected payload shape (KeyError)"
    assert "JSON" in deliveries.error_text(__import__("json").JSONDecodeError("x", "doc", 0))
    assert len(deliveries.error_text(ValueError("v" * 5000))) == deliveries.ERROR_TEXT_LIMIT


# --------------------------------------------------------------------------- with the database


@dataclass
class IndexRecorder:
    calls: list[list[int]] = field(default_factory=list)
    fail: bool = False

    def __call__(
        self, session: Session, repositories: Sequence[Repository], trigger: Trigger, **_: Any
    ) -> None:
        assert trigger is Trigger.WEBHOOK
        session.commit()
        if self.fail:
            raise RedisConnectionError("down")
        self.calls.append([r.id for r in repositories])


@pytest.fixture
def index_requests(monkeypatch: pytest.MonkeyPatch) -> IndexRecorder:
    recorder = IndexRecorder()
    monkeypatch.setattr(scheduler, "request_index", recorder, raising=False)
    return recorder


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield db.session()


def _integration(
    session: Session, site: JiraSite, externals: Sequence[str], selection: RepositorySelection
) -> tuple[Integration, list[Repository]]:
    tenant = session.scalars(select(Tenant).where(Tenant.client_key == site.client_key)).one()
    integration = create_integration(
        session,
        tenant.id,
        NewIntegration(
            provider=ProviderId.GITHUB,
            credentials=Credentials(AuthType.PAT, token="pat-0123456789"),
            display_name="gh",
            repository_selection=selection,
        ),
    )
    repos = add_repositories(
        session, integration, [RemoteRepository(e, f"acme/{e}", f"https://git.example/acme/{e}.git") for e in externals]
    )
    session.commit()
    return integration, repos


@pytest.fixture
def github(installed_site: JiraSite, session: Session) -> tuple[Integration, list[Repository]]:
    return _integration(session, installed_site, ["10", "20", "30"], RepositorySelection.SELECTED)


def test_plan_routes_by_external_id_within_the_integration(
    session: Session, installed_site: JiraSite, github: tuple[Integration, list[Repository]]
) -> None:
    integration, (r10, r20, r30) = github
    _, [other10] = _integration(session, installed_site, ["10"], RepositorySelection.SELECTED)
    r30.status = RepositoryStatus.REMOVED.value
    r30.removed_at = utcnow()
    session.commit()
    events = [push(repo="20"), push(repo="10"), push(repo="20"), push(repo="30"), push(repo="77"), push(repo=None)]
    plan = deliveries.plan(session, integration, events)
    assert plan.repository_ids == [r20.id, r10.id]  # in event order, once each, never another integration's
    assert other10.id not in plan.repository_ids
    assert plan.discover is False  # selected repositories only: an unknown one is not ours to add
    assert plan.summary["unknown_repositories"] == ["77"]
    assert plan.summary["events"][0] == {"type": "push", "repository": "20", "refs": 0, "commits": 0}


def test_plan_keeps_no_ref_names(session: Session, github: tuple[Integration, list[Repository]]) -> None:
    integration, _ = github
    event = WebhookEvent(
        WebhookEventType.PUSH, "10", refs=(RefUpdate("--upload-pack=evil", None, "a" * 40),), commit_ids=("a" * 40,)
    )
    plan = deliveries.plan(session, integration, [event])
    assert "evil" not in repr(plan.summary)


def test_plan_repository_events(
    session: Session, installed_site: JiraSite, github: tuple[Integration, list[Repository]]
) -> None:
    integration, _ = github
    created = WebhookEvent(WebhookEventType.REPOSITORY, "99", repository_action=RepositoryAction.CREATED)
    deleted_known = WebhookEvent(WebhookEventType.REPOSITORY, "10", repository_action=RepositoryAction.DELETED)
    deleted_unknown = WebhookEvent(WebhookEventType.REPOSITORY, "98", repository_action=RepositoryAction.DELETED)
    assert deliveries.plan(session, integration, [created]).discover is False  # selected: new ones not followed
    assert deliveries.plan(session, integration, [deleted_known]).discover is True
    assert deliveries.plan(session, integration, [deleted_unknown]).discover is False
    following, _ = _integration(session, installed_site, [], RepositorySelection.ALL_FUTURE)
    assert deliveries.plan(session, following, [created]).discover is True
    assert deliveries.plan(session, following, [push(repo="55")]).discover is True
    ping = deliveries.plan(session, following, [WebhookEvent(WebhookEventType.PING, None)])
    assert not ping.has_work and ping.summary["reason"] == "ping"


def _pending(session: Session, integration: Integration, repos: Sequence[Repository], key: str, **kw: Any) -> int:
    delivery = WebhookDelivery(
        tenant_id=integration.tenant_id,
        integration_id=integration.id,
        delivery_key=key,
        status=DeliveryStatus.RECEIVED.value,
        received_at=kw.pop("received_at", utcnow() - timedelta(minutes=1)),
        repository_ids=[r.id for r in repos],
        summary=kw.pop("summary", {}),
    )
    session.add(delivery)
    session.commit()
    return delivery.id


def _status(session: Session, delivery_id: int) -> str:
    row = session.get(WebhookDelivery, delivery_id, populate_existing=True)
    assert row is not None
    return row.status


def test_enqueue_pending_leaves_fresh_deliveries_to_their_request(
    session: Session, github: tuple[Integration, list[Repository]], index_requests: IndexRecorder
) -> None:
    integration, (r10, r20, _) = github
    old = _pending(session, integration, [r10], "old")
    fresh = _pending(session, integration, [r20], "fresh", received_at=utcnow())
    assert deliveries.enqueue_pending(session) == 1
    assert index_requests.calls == [[r10.id]]
    assert (_status(session, old), _status(session, fresh)) == ("enqueued", "received")
    assert deliveries.enqueue_pending(session, now=utcnow() + timedelta(minutes=1)) == 1
    assert index_requests.calls == [[r10.id], [r20.id]]


def test_enqueue_pending_stops_at_the_first_redis_failure(
    session: Session, github: tuple[Integration, list[Repository]], index_requests: IndexRecorder
) -> None:
    integration, (r10, r20, _) = github
    first = _pending(session, integration, [r10], "a")
    second = _pending(session, integration, [r20], "b")
    index_requests.fail = True
    assert deliveries.enqueue_pending(session) == 0
    assert (_status(session, first), _status(session, second)) == ("received", "received")
    index_requests.fail = False
    assert deliveries.enqueue_pending(session) == 2
    assert deliveries.enqueue_pending(session) == 0


def test_enqueue_pending_drops_what_is_no_longer_indexed(
    session: Session, github: tuple[Integration, list[Repository]], index_requests: IndexRecorder
) -> None:
    integration, (r10, r20, r30) = github
    gone = _pending(session, integration, [r10], "gone")
    partly = _pending(session, integration, [r20, r30], "partly")
    r10.enabled = False
    r30.removed_at = utcnow()
    session.commit()
    assert deliveries.enqueue_pending(session) == 1
    assert index_requests.calls == [[r20.id]]
    assert (_status(session, gone), _status(session, partly)) == ("ignored", "enqueued")
    row = session.get(WebhookDelivery, gone)
    assert row is not None and row.error == "its repositories are no longer indexed"


def test_enqueue_pending_ignores_deliveries_of_a_disabled_integration(
    session: Session, github: tuple[Integration, list[Repository]], index_requests: IndexRecorder
) -> None:
    integration, (r10, _, _) = github
    delivery = _pending(session, integration, [r10], "x")
    integration.status = IntegrationStatus.DISABLED.value
    session.commit()
    assert deliveries.enqueue_pending(session) == 0
    assert _status(session, delivery) == DeliveryStatus.IGNORED.value
    assert index_requests.calls == []


@pytest.mark.parametrize(
    ("switch", "reason"),
    [("status", "the integration is disabled"), ("webhooks", "webhooks are switched off for this integration")],
)
def test_enqueue_pending_drops_deliveries_switched_off_since_they_came(
    session: Session,
    github: tuple[Integration, list[Repository]],
    index_requests: IndexRecorder,
    switch: str,
    reason: str,
) -> None:
    integration, (r10, _, _) = github
    delivery = _pending(session, integration, [r10], "x", summary={"events": []})
    if switch == "status":
        integration.status = IntegrationStatus.DISABLED.value
    else:
        integration.features = {"webhooks": False}
    session.commit()
    assert deliveries.enqueue_pending(session) == 0
    row = session.get(WebhookDelivery, delivery, populate_existing=True)
    assert row is not None and row.status == DeliveryStatus.IGNORED.value
    assert row.error == reason and row.summary == {"events": [], "reason": reason}
    assert index_requests.calls == []


def test_plan_says_why_a_known_repository_is_skipped(
    session: Session, github: tuple[Integration, list[Repository]]
) -> None:
    integration, (r10, r20, r30) = github
    r10.enabled = False
    r20.status, r20.removed_at = RepositoryStatus.REMOVED.value, utcnow()
    session.commit()
    plan = deliveries.plan(session, integration, [push(repo="10"), push(repo="20"), push(repo="30")])
    assert plan.repository_ids == [r30.id]
    assert plan.summary["skipped_repositories"] == [
        {"id": r10.id, "reason": "repository disabled"},
        {"id": r20.id, "reason": "repository no longer visible to the integration's credentials"},
    ]
    alone = deliveries.plan(session, integration, [push(repo="10")])
    assert not alone.has_work and alone.summary["reason"] == "repository disabled"


def test_pending_discovery_goes_through_the_scheduler(
    session: Session, github: tuple[Integration, list[Repository]], monkeypatch: pytest.MonkeyPatch
) -> None:
    integration, _ = github
    asked: list[tuple[int, Trigger]] = []

    def request_discovery(_session: Session, target: Integration, trigger: Trigger) -> bool:
        asked.append((target.id, trigger))
        return True

    monkeypatch.setattr(scheduler, "request_discovery", request_discovery)
    delivery = _pending(session, integration, [], "created", summary={"discover": True})
    assert deliveries.enqueue_pending(session) == 1
    assert asked == [(integration.id, Trigger.WEBHOOK)]
    assert _status(session, delivery) == DeliveryStatus.ENQUEUED.value


def test_enqueue_pending_skips_past_a_delivery_that_fails_for_another_reason(
    session: Session,
    github: tuple[Integration, list[Repository]],
    index_requests: IndexRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    integration, (r10, r20, _) = github
    poison = _pending(session, integration, [r10], "poison")
    fine = _pending(session, integration, [r20], "fine")

    def request_index(s: Session, repositories: Sequence[Repository], trigger: Trigger, **_: Any) -> None:
        if repositories[0].id == r10.id:
            raise RuntimeError("a bug in the scheduler")
        index_requests(s, repositories, trigger)

    monkeypatch.setattr(scheduler, "request_index", request_index)
    assert deliveries.enqueue_pending(session) == 1
    assert index_requests.calls == [[r20.id]]
    assert (_status(session, poison), _status(session, fine)) == ("received", "enqueued")
    row = session.get(WebhookDelivery, poison)
    assert row is not None and row.error == "enqueueing failed (RuntimeError); retried by the dispatcher"
    assert row.attempts == 1


def test_a_delivery_that_keeps_failing_backs_off_then_is_given_up(
    session: Session,
    github: tuple[Integration, list[Repository]],
    index_requests: IndexRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    integration, (r10, _, _) = github
    poison = _pending(session, integration, [r10], "poison")
    calls: list[int] = []

    def request_index(s: Session, repositories: Sequence[Repository], trigger: Trigger, **_: Any) -> None:
        calls.append(repositories[0].id)
        raise RuntimeError("a bug in the scheduler")

    monkeypatch.setattr(scheduler, "request_index", request_index)
    now = utcnow()
    assert deliveries.enqueue_pending(session, now=now) == 0
    assert deliveries.enqueue_pending(session, now=now) == 0  # backing off: not tried again at once
    assert len(calls) == 1
    for attempt in range(2, deliveries.MAX_ENQUEUE_ATTEMPTS + 1):
        now += deliveries.retry_delay(attempt - 1)
        deliveries.enqueue_pending(session, now=now + timedelta(seconds=1))
        assert len(calls) == attempt
    row = session.get(WebhookDelivery, poison, populate_existing=True)
    assert row is not None and row.status == DeliveryStatus.FAILED.value and "given up" in (row.error or "")
    assert row.attempts == deliveries.MAX_ENQUEUE_ATTEMPTS
    assert deliveries.pending(session, now=now + timedelta(days=1)) == []  # never retried again
    events = session.scalars(select(IntegrationEvent).where(IntegrationEvent.integration_id == integration.id)).all()
    assert [(e.level, e.source, e.detail["attempts"]) for e in events] == [
        ("error", "webhook", deliveries.MAX_ENQUEUE_ATTEMPTS)
    ]
    assert [deliveries.retry_delay(n).total_seconds() for n in (1, 2, 3, 9, 20)] == [30, 60, 120, 3600, 3600]
