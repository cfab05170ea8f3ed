"""GitLab payloads as our values: REST objects (branches, merge requests) and webhook
deliveries (verification and parsing). Pure functions, no I/O; ``gitlab.py`` is the client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connect_app.errors import AuthError, HostError, ValidationError
from connect_app.hosts.base import (
    PullRequest,
    PullRequestAction,
    PullRequestState,
    RefUpdate,
    RemoteBranch,
    RepositoryAction,
    WebhookEvent,
    WebhookEventType,
)

SIGNATURE_TOLERANCE_SECONDS = 300
ZERO_SHA = "0" * 40

_MR_STATES = {
    "opened": PullRequestState.OPEN,
    "merged": PullRequestState.MERGED,
    "closed": PullRequestState.DECLINED,
    "locked": PullRequestState.DECLINED,
}
_MR_ACTIONS = {
    "open": PullRequestAction.OPENED,
    "reopen": PullRequestAction.OPENED,
    "merge": PullRequestAction.MERGED,
    "close": PullRequestAction.DECLINED,
}
_SYSTEM_EVENTS = {"project_create": RepositoryAction.CREATED, "project_destroy": RepositoryAction.DELETED}


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace(" UTC", "+00:00").replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def enc(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def branch(item: Mapping[str, Any]) -> RemoteBranch:
    commit = item.get("commit")
    sha = commit.get("id") if isinstance(commit, dict) else None
    return RemoteBranch(name=str(item["name"]), head_sha=sha, url=item.get("web_url"))


def merge_request(item: Mapping[str, Any]) -> PullRequest:
    author = item.get("author")
    updated = parse_time(item.get("updated_at")) or parse_time(item.get("created_at"))
    if updated is None:
        raise HostError("GitLab sent a merge request without dates", code="host_bad_response")
    return PullRequest(
        external_id=str(item["iid"]),
        title=str(item.get("title") or ""),
        state=_MR_STATES.get(str(item.get("state")), PullRequestState.OPEN),
        source_branch=str(item.get("source_branch") or ""),
        target_branch=str(item.get("target_branch") or ""),
        url=str(item.get("web_url") or item.get("url") or ""),
        updated_at=updated,
        description=str(item.get("description") or ""),
        author=author.get("username") if isinstance(author, dict) else None,
        created_at=parse_time(item.get("created_at")),
    )


def signing_token_for(secret: str) -> str:
    """The Standard Webhooks key GitLab signs with, derived from our webhook secret so
    that the plaintext ``X-Gitlab-Token`` never doubles as the signing key."""
    key = hmac.new(secret.encode(), b"git-connect-for-jira/gitlab-signing-token", hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(key).decode()


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def verify_delivery(headers: Mapping[str, str], raw_body: bytes, secret: str, *, now: float) -> None:
    h = _lowered(headers)
    token = h.get("x-gitlab-token")
    if token is None:
        raise AuthError("GitLab webhook delivery has no X-Gitlab-Token header")
    if not hmac.compare_digest(token.encode(), secret.encode()):
        raise AuthError("GitLab webhook token does not match")
    signature = h.get("webhook-signature")
    if signature is None:
        return
    msg_id, stamp = h.get("webhook-id", ""), h.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        raise AuthError("GitLab webhook signature comes without webhook-id/webhook-timestamp")
    if abs(now - int(stamp)) > SIGNATURE_TOLERANCE_SECONDS:
        raise AuthError("GitLab webhook signature is too old (replayed?) or from the future")
    key = base64.b64decode(signing_token_for(secret).removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + raw_body, hashlib.sha256).digest()
    expected = base64.b64encode(digest)
    for candidate in signature.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise AuthError("GitLab webhook signature does not match")


def delivery_id(headers: Mapping[str, str]) -> str | None:
    h = _lowered(headers)
    # Idempotency-Key stays the same when GitLab retries a delivery; the UUIDs are fallbacks
    return h.get("idempotency-key") or h.get("x-gitlab-event-uuid") or h.get("x-gitlab-webhook-uuid")


def parse_delivery(headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
    try:
        body = json.loads(raw_body)
    except ValueError as e:
        raise ValidationError("GitLab webhook body is not JSON") from e
    if not isinstance(body, dict):
        return []
    delivery = delivery_id(headers)
    kind = body.get("object_kind")
    if kind in ("push", "tag_push"):
        return [_push_event(body, delivery)]
    if kind == "merge_request":
        return [_merge_request_event(body, delivery)]
    action = _SYSTEM_EVENTS.get(str(body.get("event_name")))
    if action is not None:
        return [
            WebhookEvent(
                type=WebhookEventType.REPOSITORY,
                repository_external_id=str(body["project_id"]),
                delivery_id=delivery,
                repository_action=action,
                repository_name=body.get("path_with_namespace"),
            )
        ]
    return []


def _sha(value: Any) -> str | None:
    return value if isinstance(value, str) and value and value != ZERO_SHA else None


def _project_id(body: Mapping[str, Any]) -> str | None:
    project = body.get("project")
    value = body.get("project_id") or (project.get("id") if isinstance(project, dict) else None)
    return str(value) if value is not None else None


def _push_event(body: Mapping[str, Any], delivery: str | None) -> WebhookEvent:
    commits = body.get("commits")
    commits = commits if isinstance(commits, list) else []
    project = body.get("project")
    return WebhookEvent(
        type=WebhookEventType.PUSH,
        repository_external_id=_project_id(body),
        delivery_id=delivery,
        refs=(RefUpdate(str(body.get("ref")), _sha(body.get("before")), _sha(body.get("after"))),),
        commit_ids=tuple(str(c["id"]) for c in commits if isinstance(c, dict) and "id" in c),
        repository_name=project.get("path_with_namespace") if isinstance(project, dict) else None,
    )


def _merge_request_event(body: Mapping[str, Any], delivery: str | None) -> WebhookEvent:
    attrs = dict(body.get("object_attributes") or {})
    attrs.setdefault("web_url", attrs.get("url"))
    user = body.get("user")
    if isinstance(user, dict) and attrs.get("author_id") == user.get("id"):
        attrs["author"] = user
    project = body.get("project")
    return WebhookEvent(
        type=WebhookEventType.PULL_REQUEST,
        repository_external_id=_project_id(body),
        delivery_id=delivery,
        pull_request=merge_request(attrs),
        pull_request_action=_MR_ACTIONS.get(str(attrs.get("action")), PullRequestAction.UPDATED),
        repository_name=project.get("path_with_namespace") if isinstance(project, dict) else None,
    )
