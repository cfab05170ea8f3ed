"""GitHub webhook deliveries: signature check and payload parsing (pure functions).

:class:`~connect_app.hosts.github.GitHubHost` delegates ``verify_webhook`` and
``parse_webhook`` here. Nothing in this module does I/O.

* Signature: HMAC over the raw body with the webhook's secret, ``X-Hub-Signature-256``
  (``sha256=<hex>``); the legacy SHA-1 ``X-Hub-Signature`` only when GitHub sent no
  SHA-256 header, so a bad SHA-256 is never rescued by a good SHA-1. Compared in
  constant time.
* Events: ``push`` (refs and commit ids), ``pull_request`` (opened / updated / merged /
  declined; labels, assignees and reviews are ignored), ``repository`` (created /
  deleted) and ``ping``; anything else parses to no events.

:func:`to_pull_request` maps GitHub's REST pull request object, which is also what a
``pull_request`` delivery carries; the REST listing uses it too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connect_app.errors import AuthError, HostError
from connect_app.hosts.base import (
    PullRequest,
    PullRequestAction,
    PullRequestState,
    RefUpdate,
    RepositoryAction,
    WebhookEvent,
    WebhookEventType,
)

_ZERO_SHA = re.compile(r"^0+$")
_REPOSITORY_ACTIONS = {"created": RepositoryAction.CREATED, "deleted": RepositoryAction.DELETED}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name."""
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sha(value: Any) -> str | None:
    return value if isinstance(value, str) and value and not _ZERO_SHA.match(value) else None


def to_pull_request(item: Mapping[str, Any]) -> PullRequest:
    """GitHub's REST pull request object (a list item, a created PR, a delivery's ``pull_request``)."""
    if item.get("merged_at") or item.get("merged") is True:
        state = PullRequestState.MERGED
    elif item.get("state") == "closed":
        state = PullRequestState.DECLINED
    else:
        state = PullRequestState.OPEN
    updated = _parse_time(item.get("updated_at")) or _parse_time(item.get("created_at"))
    return PullRequest(
        external_id=str(item["number"]),
        title=str(item.get("title") or ""),
        state=state,
        source_branch=str((item.get("head") or {}).get("ref") or ""),
        target_branch=str((item.get("base") or {}).get("ref") or ""),
        url=str(item.get("html_url") or ""),
        updated_at=updated or datetime.now(UTC),
        description=str(item.get("body") or ""),
        author=(item.get("user") or {}).get("login"),
        created_at=_parse_time(item.get("created_at")),
    )


def verify_signature(headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
    """Raise :class:`AuthError` unless the delivery is signed with ``secret``."""
    if not secret:
        raise AuthError("This webhook has no secret configured; refusing the delivery")
    signature = header(headers, "x-hub-signature-256")
    algorithm, digest = ("sha256", hashlib.sha256)
    if signature is None:  # legacy SHA-1 header only when GitHub sent no SHA-256 one
        signature = header(headers, "x-hub-signature")
        algorithm, digest = ("sha1", hashlib.sha1)
    if not signature:
        raise AuthError("The GitHub delivery carries no X-Hub-Signature-256 header")
    expected = f"{algorithm}=" + hmac.new(secret.encode(), raw_body, digest).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        raise AuthError("The GitHub delivery's signature does not match this webhook's secret")


def parse_delivery(headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
    """The events in one (already verified) delivery; ``[]`` for what the index ignores."""
    event = (header(headers, "x-github-event") or "").strip()
    delivery = header(headers, "x-github-delivery")
    try:
        payload = json.loads(raw_body)
    except ValueError as e:
        raise HostError("The GitHub delivery is not valid JSON", code="bad_webhook", status=400) from e
    if not isinstance(payload, dict):
        return []
    repository = payload.get("repository") or {}
    repo_id = str(repository["id"]) if "id" in repository else None
    common: dict[str, Any] = {
        "repository_external_id": repo_id,
        "delivery_id": delivery,
        "repository_name": repository.get("full_name"),
    }
    if event == "push":
        return [_push_event(payload, common)]
    if event == "pull_request":
        action = _pull_request_action(payload)
        if action is None or not isinstance(payload.get("pull_request"), dict):
            return []
        pr = to_pull_request(payload["pull_request"])
        return [WebhookEvent(WebhookEventType.PULL_REQUEST, pull_request=pr, pull_request_action=action, **common)]
    if event == "repository":
        repo_action = _REPOSITORY_ACTIONS.get(str(payload.get("action")))
        if repo_action is None:
            return []
        return [WebhookEvent(WebhookEventType.REPOSITORY, repository_action=repo_action, **common)]
    if event == "ping":
        return [WebhookEvent(WebhookEventType.PING, **common)]
    return []


def _pull_request_action(payload: Mapping[str, Any]) -> PullRequestAction | None:
    action = payload.get("action")
    if action == "opened":
        return PullRequestAction.OPENED
    if action in ("edited", "synchronize", "reopened", "ready_for_review"):
        return PullRequestAction.UPDATED
    if action == "closed":
        merged = (payload.get("pull_request") or {}).get("merged")
        return PullRequestAction.MERGED if merged else PullRequestAction.DECLINED
    return None  # labels, assignees, reviews: nothing the index shows


def _push_event(payload: Mapping[str, Any], common: dict[str, Any]) -> WebhookEvent:
    deleted = bool(payload.get("deleted"))
    ref = RefUpdate(
        ref=str(payload.get("ref") or ""),
        before=_sha(payload.get("before")),
        after=None if deleted else _sha(payload.get("after")),
    )
    commits = tuple(str(c["id"]) for c in payload.get("commits") or [] if isinstance(c, dict) and c.get("id"))
    return WebhookEvent(WebhookEventType.PUSH, refs=(ref,), commit_ids=commits, **common)
