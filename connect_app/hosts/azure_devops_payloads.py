"""What Azure DevOps sends us, as this app's dataclasses: REST list bodies, repositories,
pull requests, and Service Hooks deliveries (verified, then parsed).

Azure quirks handled here:
* list bodies are ``{"count": n, "value": [...]}`` on the wire, bare arrays in the
  published description: :func:`list_values` accepts both;
* a pull request has no "updated" time: ``closedDate`` when closed, else ``creationDate``
  (``0001-01-01T00:00:00``, DateTime.MinValue, means "never");
* Service Hooks post with basic auth whose password is our webhook secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connect_app.errors import AuthError, BadRequest, HostError
from connect_app.hosts.base import (
    PullRequest,
    PullRequestAction,
    PullRequestState,
    RefUpdate,
    RemoteRepository,
    WebhookEvent,
    WebhookEventType,
)

HOOK_EVENTS = ("git.push", "git.pullrequest.created", "git.pullrequest.updated", "git.pullrequest.merged")
HOOK_USERNAME = "git-connect-for-jira"
ZERO_SHA = "0" * 40
_PR_STATES = {"completed": PullRequestState.MERGED, "abandoned": PullRequestState.DECLINED}
_PR_ACTIONS = {"completed": PullRequestAction.MERGED, "abandoned": PullRequestAction.DECLINED}


def list_values(body: Any) -> list[Any]:
    value = body.get("value") if isinstance(body, dict) else body
    if not isinstance(value, list):
        raise HostError("Azure DevOps answered with an unexpected list shape", code="host_bad_response")
    return value


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None  # Azure writes DateTime.MinValue for "never"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sha_or_none(value: Any) -> str | None:
    return None if value in (None, "", ZERO_SHA) else str(value)


def short_ref(ref: Any) -> str:
    return str(ref or "").removeprefix("refs/heads/")


def full_ref(ref: str) -> str:
    return ref if ref.startswith("refs/") else f"refs/heads/{ref}"


def quote_segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def parse_repository(raw: Mapping[str, Any]) -> RemoteRepository:
    project = raw.get("project") or {}
    project_name = project.get("name")
    name = str(raw.get("name") or raw.get("id"))
    return RemoteRepository(
        external_id=str(raw["id"]),
        name=f"{project_name}/{name}" if project_name else name,
        clone_url=str(raw.get("remoteUrl") or ""),
        web_url=raw.get("webUrl") or raw.get("remoteUrl"),
        default_branch=short_ref(raw.get("defaultBranch")) or None,
        namespace=project_name,
        private=project.get("visibility") != "public",
    )


def parse_pull_request(raw: Mapping[str, Any], repo_web_url: str | None = None) -> PullRequest:
    created, closed = parse_time(raw.get("creationDate")), parse_time(raw.get("closedDate"))
    number = str(raw["pullRequestId"])
    web = repo_web_url or (raw.get("repository") or {}).get("remoteUrl")
    return PullRequest(
        external_id=number,
        title=str(raw.get("title") or ""),
        state=_PR_STATES.get(str(raw.get("status")), PullRequestState.OPEN),
        source_branch=short_ref(raw.get("sourceRefName")),
        target_branch=short_ref(raw.get("targetRefName")),
        url=f"{web}/pullrequest/{number}" if web else str(raw.get("url") or ""),
        updated_at=closed or created or datetime.now(UTC),
        description=str(raw.get("description") or ""),
        author=(raw.get("createdBy") or {}).get("displayName"),
        created_at=created,
    )


# --- Service Hooks ------------------------------------------------------------------------


def hook_subscription(event: str, project_id: str, repository_id: str, url: str, secret: str) -> dict[str, Any]:
    """The body of ``POST _apis/hooks/subscriptions`` for one event of one repository."""
    return {
        "publisherId": "tfs",
        "eventType": event,
        "resourceVersion": "1.0",
        "consumerId": "webHooks",
        "consumerActionId": "httpRequest",
        "publisherInputs": {"projectId": project_id, "repository": repository_id},
        "consumerInputs": {"url": url, "basicAuthUsername": HOOK_USERNAME, "basicAuthPassword": secret},
    }


def verify_delivery(headers: Mapping[str, str], secret: str) -> None:
    """Raise ``AuthError`` unless the delivery's basic-auth password is ``secret`` (constant time)."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise AuthError("the Azure DevOps delivery has no basic-auth credentials")
    try:
        password = base64.b64decode(encoded.strip(), validate=True).partition(b":")[2]
    except (binascii.Error, ValueError) as e:
        raise AuthError("the Azure DevOps delivery has malformed basic-auth credentials") from e
    if not hmac.compare_digest(password, secret.encode()):
        raise AuthError("the Azure DevOps delivery has the wrong webhook secret")


def parse_delivery(raw_body: bytes) -> list[WebhookEvent]:
    try:
        payload = json.loads(raw_body)
    except ValueError as e:
        raise BadRequest("the Azure DevOps delivery is not JSON") from e
    if not isinstance(payload, dict):
        raise BadRequest("the Azure DevOps delivery is not a JSON object")
    event_type = str(payload.get("eventType") or "")
    resource = payload.get("resource") or {}
    repository = resource.get("repository") or {}
    delivery = payload.get("id") or payload.get("notificationId")
    common: dict[str, Any] = {
        "repository_external_id": repository.get("id"),
        "delivery_id": None if delivery is None else str(delivery),
        "repository_name": repository.get("name"),
    }
    if event_type == "git.push":
        refs = tuple(
            RefUpdate(u.get("name", ""), u.get("oldObjectId"), sha_or_none(u.get("newObjectId")))
            for u in resource.get("refUpdates") or []
        )
        commits = tuple(str(c["commitId"]) for c in resource.get("commits") or [] if c.get("commitId"))
        return [WebhookEvent(WebhookEventType.PUSH, refs=refs, commit_ids=commits, **common)]
    if event_type.startswith("git.pullrequest.") and "pullRequestId" in resource:
        pr = parse_pull_request(resource, repository.get("webUrl") or repository.get("remoteUrl"))
        action = _PR_ACTIONS.get(str(resource.get("status")))
        if action is None:
            action = PullRequestAction.OPENED if event_type.endswith(".created") else PullRequestAction.UPDATED
        event = WebhookEvent(WebhookEventType.PULL_REQUEST, pull_request=pr, pull_request_action=action, **common)
        return [event]
    return []
