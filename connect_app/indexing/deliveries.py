"""Webhook deliveries: store each one once, route it to repositories, enqueue the work.

The web intake (``connect_app.web.webhooks``) verifies a delivery, then calls
:func:`accept` (or :func:`record_malformed`). A delivery row is committed before the
host gets its 2xx; a redelivery hits the ``(integration_id, delivery_key)`` unique
constraint and changes nothing. Routing resolves the payload's repository ids to our
:class:`~connect_app.models.Repository` rows *before* the row is stored, so the row
holds everything needed to enqueue later (the body itself is not kept): when Redis is
down the delivery stays ``received`` and :func:`enqueue_pending` (called by the
periodic dispatcher) routes it again. Enqueueing is idempotent (the scheduler's
``request_index`` and ``request_discovery``: one unique job per repository, one queued
discovery per integration), so doing it twice is harmless.

A delivery is acted on only while the Jira site and the integration are enabled and the
integration's ``webhooks`` feature is on, and only for its enabled repositories that the host
still lists. Otherwise it is still verified, stored and acknowledged (a host that sees errors
may switch the webhook off for good), as ``ignored`` with the reason in ``summary["reason"]``
(``summary["skipped_repositories"]`` names disabled or removed ones). Pushes from a repository
we do not know on an "all future repositories" integration request a discovery, which adds it.

Nothing from a payload reaches ``git``: jobs are enqueued by repository id only, and
the indexer refetches refs from the host itself. Ref names and URLs in a payload are
never stored, never passed on.

Delivery keys, per host (the first that is present):

* the ``delivery_id`` the host module put on the parsed events: GitHub
  ``X-GitHub-Delivery``; GitLab ``Idempotency-Key`` (stable across retries), then
  ``X-Gitlab-Event-UUID`` / ``X-Gitlab-Webhook-UUID``; Bitbucket Cloud
  ``X-Request-UUID`` (``X-Hook-UUID`` names the subscription, not the delivery);
  Bitbucket Data Center ``X-Request-Id``; Azure DevOps the payload's ``id``;
* the same headers read directly (deliveries that parse to no event, or not at all);
* ``"sha256:" + hex(sha256(body))``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connect_app.errors import AppError
from connect_app.hosts.base import ProviderId, RepositoryAction, WebhookEvent, WebhookEventType
from connect_app.models import (
    DeliveryStatus,
    EventLevel,
    EventSource,
    Integration,
    IntegrationStatus,
    Repository,
    RepositorySelection,
    RepositoryStatus,
    Tenant,
    Trigger,
    WebhookDelivery,
    utcnow,
)
from connect_app.services.integration_log import record_event
from connect_app.services.integration_settings import Feature, feature_enabled

log = logging.getLogger(__name__)

MAX_STORED_BODY = 64 * 1024  # what a malformed delivery keeps for diagnosis
ERROR_TEXT_LIMIT = 2000
KEY_LIMIT = 128  # WebhookDelivery.delivery_key
EVENT_LIMIT = 64  # WebhookDelivery.event
SUMMARY_EVENTS_LIMIT = 20
PENDING_MIN_AGE = timedelta(seconds=5)  # leave a delivery to the request that stored it first
PENDING_BATCH = 500
MAX_ENQUEUE_ATTEMPTS = 8  # failed hand-overs (not counting Redis being down) before a delivery is given up
RETRY_BASE = timedelta(seconds=30)  # then 1, 2, 4 ... minutes, at most RETRY_CAP
RETRY_CAP = timedelta(hours=1)
INTEGRATION_DISABLED = "the integration is disabled"
WEBHOOKS_OFF = "webhooks are switched off for this integration"


# Headers naming one delivery, in the order the host modules prefer them.
DELIVERY_HEADERS: dict[ProviderId, tuple[str, ...]] = {
    ProviderId.GITHUB: ("X-GitHub-Delivery",),
    ProviderId.GITHUB_ENTERPRISE: ("X-GitHub-Delivery",),
    ProviderId.GITLAB: ("Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"),
    ProviderId.GITLAB_SELF_MANAGED: ("Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"),
    ProviderId.BITBUCKET_CLOUD: ("X-Request-UUID",),
    ProviderId.BITBUCKET_DATACENTER: ("X-Request-Id",),
}
EVENT_HEADERS = ("X-GitHub-Event", "X-Gitlab-Event", "X-Event-Key")


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # stored; index (or discovery) requested, or pending until Redis is back
    IGNORED = "ignored"  # stored; nothing to do (ping, a repository we do not index, ...)
    DUPLICATE = "duplicate"  # a redelivery of a stored delivery: nothing done
    MALFORMED = "malformed"  # stored with its body; the host sent something we cannot read


@dataclass(frozen=True)
class IntakeResult:
    outcome: Outcome
    delivery_id: int | None = None
    enqueued: bool = False  # ACCEPTED only: False while Redis is unreachable
    error: str | None = None  # MALFORMED only


@dataclass
class Plan:
    """Where a delivery's events lead: repositories to index, and whether to rediscover."""

    repository_ids: list[int] = field(default_factory=list)
    discover: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def has_work(self) -> bool:
        return bool(self.repository_ids or self.discover)


# --------------------------------------------------------------------------- keys


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _clean_key(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if len(text) > KEY_LIMIT or not text.isprintable():
        return "id-sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
    return text


def body_key(raw_body: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw_body).hexdigest()


def delivery_key(
    provider: str, headers: Mapping[str, str], raw_body: bytes, events: Sequence[WebhookEvent] = ()
) -> str:
    """The key a delivery is deduplicated by (see the module docstring for the order)."""
    for event in events:
        key = _clean_key(event.delivery_id)
        if key:
            return key
    try:
        names = DELIVERY_HEADERS.get(ProviderId(provider), ())
    except ValueError:
        names = ()
    for name in names:
        key = _clean_key(_header(headers, name))
        if key:
            return key
    return body_key(raw_body)


def event_name(headers: Mapping[str, str], events: Sequence[WebhookEvent] = ()) -> str | None:
    for name in EVENT_HEADERS:
        value = (_header(headers, name) or "").strip()
        if value:
            return value[:EVENT_LIMIT]
    return events[0].type.value if events else None


# --------------------------------------------------------------------------- routing


def _is_indexed(repo: Repository) -> bool:
    return _repository_skip(repo) is None


def _repository_skip(repo: Repository) -> str | None:
    if not repo.enabled:
        return "repository disabled"
    if repo.removed_at is not None or repo.status == RepositoryStatus.REMOVED.value:
        return "repository no longer visible to the integration's credentials"
    return None


def intake_skip(session: Session, integration: Integration) -> str | None:
    """Why nothing from this integration's deliveries is acted on now (None: they are)."""
    if integration.status == IntegrationStatus.DISABLED.value:
        return INTEGRATION_DISABLED
    tenant = session.get(Tenant, integration.tenant_id)
    if tenant is None or not tenant.enabled:
        return "Git Connect is disabled on this Jira site"
    if not feature_enabled(integration, Feature.WEBHOOKS):
        return WEBHOOKS_OFF
    return None


def _event_summary(event: WebhookEvent) -> dict[str, Any]:
    item: dict[str, Any] = {"type": event.type.value, "repository": event.repository_external_id}
    if event.type is WebhookEventType.PUSH:
        item.update(refs=len(event.refs), commits=len(event.commit_ids))
    elif event.pull_request_action is not None:
        item["action"] = event.pull_request_action.value
    elif event.repository_action is not None:
        item["action"] = event.repository_action.value
    return item


def plan(session: Session, integration: Integration, events: Sequence[WebhookEvent]) -> Plan:
    """Resolve events to this integration's repositories (by the host's external id only)."""
    external_ids = list(
        dict.fromkeys(
            e.repository_external_id
            for e in events
            if e.repository_external_id and e.type in (WebhookEventType.PUSH, WebhookEventType.PULL_REQUEST)
        )
    )
    mentioned = list(dict.fromkeys(e.repository_external_id for e in events if e.repository_external_id))
    known: dict[str, Repository] = {}
    if mentioned:
        rows = session.scalars(
            select(Repository).where(Repository.integration_id == integration.id, Repository.external_id.in_(mentioned))
        )
        known = {r.external_id: r for r in rows}
    all_future = integration.repository_selection == RepositorySelection.ALL_FUTURE.value

    result = Plan()
    skipped: list[dict[str, Any]] = []
    for ext in external_ids:
        repo = known.get(ext)
        if repo is None or repo.id in result.repository_ids:
            continue
        why = _repository_skip(repo)
        if why is None:
            result.repository_ids.append(repo.id)
        elif len(skipped) < SUMMARY_EVENTS_LIMIT:
            skipped.append({"id": repo.id, "reason": why})
    unknown = [ext for ext in external_ids if ext not in known]
    if unknown and all_future:
        result.discover = True  # a repository created since the last discovery is already pushing
    for event in events:
        if event.type is not WebhookEventType.REPOSITORY:
            continue
        if event.repository_action is RepositoryAction.CREATED and all_future:
            result.discover = True
        repo = known.get(event.repository_external_id or "")
        if event.repository_action is RepositoryAction.DELETED and repo is not None and repo.removed_at is None:
            result.discover = True
    blocked = intake_skip(session, integration)
    if blocked is not None:  # acknowledged, kept for the record, nothing done
        result.repository_ids, result.discover = [], False

    summary: dict[str, Any] = {"events": [_event_summary(e) for e in events[:SUMMARY_EVENTS_LIMIT]]}
    if len(events) > SUMMARY_EVENTS_LIMIT:
        summary["events_omitted"] = len(events) - SUMMARY_EVENTS_LIMIT
    if unknown:
        summary["unknown_repositories"] = unknown[:SUMMARY_EVENTS_LIMIT]
    if skipped:
        summary["skipped_repositories"] = skipped
    if result.discover:
        summary["discover"] = True
    if not result.has_work:
        summary["reason"] = blocked or _ignored_reason(events, unknown, skipped)
    result.summary = summary
    return result


def _ignored_reason(events: Sequence[WebhookEvent], unknown: list[str], skipped: list[dict[str, Any]]) -> str:
    if not events:
        return "event not indexed"
    if all(e.type is WebhookEventType.PING for e in events):
        return "ping"
    if skipped:
        return str(skipped[0]["reason"])
    if unknown:
        return "repository not indexed by this integration"
    return "nothing to index"


# --------------------------------------------------------------------------- intake


def _store(session: Session, delivery: WebhookDelivery) -> WebhookDelivery | None:
    """Insert and commit; None when this (integration, key) is stored already."""
    session.add(delivery)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return delivery


def accept(
    session: Session,
    integration: Integration,
    headers: Mapping[str, str],
    raw_body: bytes,
    events: Sequence[WebhookEvent],
) -> IntakeResult:
    """Store an authentic, parsed delivery (deduplicated), then enqueue what it asks for."""
    work = plan(session, integration, events)
    delivery = WebhookDelivery(
        tenant_id=integration.tenant_id,
        integration_id=integration.id,
        delivery_key=delivery_key(integration.provider, headers, raw_body, events),
        event=event_name(headers, events),
        status=(DeliveryStatus.RECEIVED if work.has_work else DeliveryStatus.IGNORED).value,
        received_at=utcnow(),
        repository_ids=work.repository_ids,
        summary=work.summary,
    )
    key = delivery.delivery_key
    if _store(session, delivery) is None:
        log.info("webhook redelivery ignored: integration=%s key=%s", integration.id, key)
        return IntakeResult(Outcome.DUPLICATE)
    if not work.has_work:
        log.info("webhook stored, nothing to do: integration=%s key=%s", integration.id, key)
        return IntakeResult(Outcome.IGNORED, delivery.id)
    delivery_id = delivery.id
    outcome = dispatch_delivery(session, delivery)
    if outcome is Dispatch.IGNORED:
        return IntakeResult(Outcome.IGNORED, delivery_id)
    return IntakeResult(Outcome.ACCEPTED, delivery_id, enqueued=outcome is Dispatch.ENQUEUED)


def error_text(error: BaseException) -> str:
    if isinstance(error, AppError):
        text = error.message
    elif isinstance(error, ValueError):
        text = "the body is not valid JSON" if "JSON" in type(error).__name__ else f"invalid value ({error})"
    else:
        text = f"unexpected payload shape ({type(error).__name__})"
    return text[:ERROR_TEXT_LIMIT]


def record_malformed(
    session: Session,
    integration: Integration,
    headers: Mapping[str, str],
    raw_body: bytes,
    error: BaseException,
) -> IntakeResult:
    """Keep an authentic delivery we could not parse (body bounded) for diagnosis."""
    text = error_text(error)
    delivery = WebhookDelivery(
        tenant_id=integration.tenant_id,
        integration_id=integration.id,
        delivery_key=delivery_key(integration.provider, headers, raw_body),
        event=event_name(headers),
        status=DeliveryStatus.MALFORMED.value,
        received_at=utcnow(),
        repository_ids=[],
        summary={"body_bytes": len(raw_body), "body_truncated": len(raw_body) > MAX_STORED_BODY},
        body=raw_body[:MAX_STORED_BODY],
        error=text,
    )
    stored = _store(session, delivery)
    log.info("malformed webhook delivery: integration=%s error=%s", integration.id, text)
    return IntakeResult(Outcome.MALFORMED, stored.id if stored else None, error=text)


# --------------------------------------------------------------------------- enqueueing


class Dispatch(StrEnum):
    """What one attempt to enqueue a stored delivery's work came to."""

    ENQUEUED = "enqueued"  # the delivery is done
    IGNORED = "ignored"  # nothing left to do (integration disabled, repositories gone)
    REDIS_DOWN = "redis_down"  # stays received; retrying others now is pointless
    FAILED = "failed"  # stays received, error recorded; the next delivery may still go


def dispatch_delivery(session: Session, delivery: WebhookDelivery) -> Dispatch:
    """Enqueue a stored delivery's work through the scheduler; the delivery stays
    ``received`` (for :func:`enqueue_pending`) unless it is enqueued or ignored."""
    # Imported here: the scheduler's dispatcher imports this module (enqueue_pending).
    from connect_app.indexing import scheduler

    integration = session.get(Integration, delivery.integration_id)
    if integration is None:
        return _finish(session, delivery, DeliveryStatus.IGNORED, "the integration is gone")
    blocked = intake_skip(session, integration)  # switched off since the delivery was stored
    if blocked is not None:
        return _finish(session, delivery, DeliveryStatus.IGNORED, blocked)
    repos: list[Repository] = []
    if delivery.repository_ids:
        rows = session.scalars(
            select(Repository)
            .where(Repository.id.in_(delivery.repository_ids), Repository.integration_id == integration.id)
            .order_by(Repository.id)
        )
        repos = [r for r in rows if _is_indexed(r)]
    discover = bool((delivery.summary or {}).get("discover"))
    if not repos and not discover:
        return _finish(session, delivery, DeliveryStatus.IGNORED, "its repositories are no longer indexed")
    delivery_id = delivery.id
    try:
        if repos:
            # No waiting for the scheduler lock: in a burst of deliveries each one would queue for
            # it in turn. The request is stored; the pass holding the lock or the dispatcher's
            # next tick (DISPATCH_INTERVAL_SECONDS) enqueues it, many deliveries in one pass.
            scheduler.request_index(session, repos, Trigger.WEBHOOK, wait=None)
        if discover:  # False when one is queued or running already: coalesces bursts of events
            scheduler.request_discovery(session, integration, Trigger.WEBHOOK)
    except RedisError as e:
        session.rollback()
        log.warning("webhook delivery %s stays pending: Redis is unreachable (%s)", delivery_id, type(e).__name__)
        return Dispatch.REDIS_DOWN
    except Exception as e:  # the delivery is stored: answer 202 and let the dispatcher retry it
        session.rollback()
        log.exception("webhook delivery %s stays pending: enqueueing failed", delivery_id)
        _failed_attempt(session, delivery, integration, e)
        return Dispatch.FAILED
    return _finish(session, delivery, DeliveryStatus.ENQUEUED)


def retry_delay(attempts: int) -> timedelta:
    """How long the dispatcher waits after the ``attempts``-th failed hand-over."""
    delay: timedelta = RETRY_BASE * (2 ** max(0, attempts - 1))
    return min(delay, RETRY_CAP)


def _failed_attempt(session: Session, delivery: WebhookDelivery, integration: Integration, error: Exception) -> None:
    """Count a failed hand-over: retried later with backoff, given up (``failed``, in the
    integration's log) after :data:`MAX_ENQUEUE_ATTEMPTS`, so a delivery that always fails
    neither runs every tick nor keeps newer ones out of the dispatcher's batch."""
    delivery.attempts = (delivery.attempts or 0) + 1
    if delivery.attempts < MAX_ENQUEUE_ATTEMPTS:
        delivery.error = f"enqueueing failed ({type(error).__name__}); retried by the dispatcher"
        delivery.next_attempt_at = utcnow() + retry_delay(delivery.attempts)
    else:
        delivery.status = DeliveryStatus.FAILED.value
        delivery.next_attempt_at = None
        delivery.error = (
            f"enqueueing failed {delivery.attempts} times ({type(error).__name__}); given up: the next "
            "scheduled index of its repositories picks the changes up"
        )
        record_event(
            session,
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            level=EventLevel.ERROR,
            source=EventSource.WEBHOOK,
            message="A webhook delivery could not be handed to indexing and was given up; the next scheduled "
            "index of its repositories picks its changes up.",
            detail={"delivery": delivery.delivery_key, "event": delivery.event, "attempts": delivery.attempts},
        )
    session.commit()


def _finish(session: Session, delivery: WebhookDelivery, status: DeliveryStatus, reason: str | None = None) -> Dispatch:
    delivery.status = status.value
    if status is DeliveryStatus.ENQUEUED:
        delivery.enqueued_at = utcnow()
    delivery.error = reason
    if reason is not None:
        delivery.summary = {**(delivery.summary or {}), "reason": reason}
    session.commit()
    return Dispatch.ENQUEUED if status is DeliveryStatus.ENQUEUED else Dispatch.IGNORED


def pending(session: Session, *, now: datetime | None = None, min_age: timedelta = PENDING_MIN_AGE) -> list[int]:
    """Deliveries still to hand over, oldest first, skipping those backing off after a failure."""
    now = now or utcnow()
    cutoff = now - min_age
    return list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.RECEIVED.value,
                WebhookDelivery.received_at <= cutoff,
                or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now),
            )
            .order_by(WebhookDelivery.received_at, WebhookDelivery.id)
            .limit(PENDING_BATCH)
        )
    )


def enqueue_pending(session: Session, *, now: datetime | None = None, min_age: timedelta = PENDING_MIN_AGE) -> int:
    """Enqueue deliveries stored while Redis was down (older than ``min_age``, so the
    request that stored one gets the first try). Idempotent; stops at the first Redis
    failure, skips past any other. Returns how many deliveries were enqueued."""
    enqueued = 0
    for delivery_id in pending(session, now=now, min_age=min_age):
        delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
        if delivery is None or delivery.status != DeliveryStatus.RECEIVED.value:
            continue  # another dispatcher got there first
        outcome = dispatch_delivery(session, delivery)
        if outcome is Dispatch.REDIS_DOWN:
            break  # the next dispatch tries again
        if outcome is Dispatch.ENQUEUED:
            enqueued += 1
    return enqueued
