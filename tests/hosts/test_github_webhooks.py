"""GitHub webhook deliveries (``connect_app/hosts/github_webhooks.py``).

Real HMAC signatures over GitHub's official example payloads (``tests/fixtures/github``,
see its SOURCES.md); ``GitHubHost.verify_webhook`` / ``parse_webhook`` delegate here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from connect_app.errors import AuthError, HostError
from connect_app.hosts.base import (
    AuthType,
    Credentials,
    PullRequestAction,
    PullRequestState,
    RepositoryAction,
    WebhookEventType,
)
from connect_app.hosts.github import GitHubHost
from connect_app.hosts.github_webhooks import header, parse_delivery, verify_signature

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"
SECRET = "It's a Secret to Everybody"


def _payload(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _signed(body: bytes, event: str, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": event, "X-GitHub-Delivery": "d-1"}


def test_github_documents_this_signature() -> None:
    # the worked example in GitHub's "Validating webhook deliveries"
    body = b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_signature({"x-hub-signature-256": expected}, body, SECRET)


def test_verify_good_tampered_missing_wrong_secret() -> None:
    body = _payload("push.json")
    headers = _signed(body, "push")
    verify_signature(headers, body, SECRET)
    with pytest.raises(AuthError):
        verify_signature(headers, body.replace(b"master", b"mister"), SECRET)
    with pytest.raises(AuthError):
        verify_signature({"X-GitHub-Event": "push"}, body, SECRET)
    with pytest.raises(AuthError):
        verify_signature(headers, body, "another secret")
    with pytest.raises(AuthError):
        verify_signature(headers, body, "")


def test_sha1_signature_only_when_sha256_is_absent() -> None:
    body = _payload("ping.json")
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    verify_signature({"X-Hub-Signature": sha1}, body, SECRET)
    with pytest.raises(AuthError):  # a bad sha256 is not rescued by a good sha1
        verify_signature({"X-Hub-Signature": sha1, "X-Hub-Signature-256": "sha256=00"}, body, SECRET)


def test_headers_are_found_whatever_their_case() -> None:
    assert header({"X-GitHub-Event": "push"}, "x-github-event") == "push"
    assert header({"x-github-event": "push"}, "X-GitHub-Event") == "push"
    assert header({}, "x-github-event") is None


def test_parse_push() -> None:
    body = _payload("push.json")
    [event] = parse_delivery(_signed(body, "push"), body)
    assert event.type is WebhookEventType.PUSH and event.delivery_id == "d-1"
    assert event.repository_external_id == "186853002" and event.repository_name == "Codertocat/Hello-World"
    [ref] = event.refs
    assert ref.ref == "refs/heads/master" and ref.before is None  # a new branch: before is all zeros
    assert ref.after == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert event.commit_ids == ("6113728f27ae82c7b1a177c8d03f9e96e0adf246",)


def test_parse_push_deleting_a_ref() -> None:
    body = _payload("push.tag-deleted.json")
    [event] = parse_delivery(_signed(body, "push"), body)
    assert event.refs[0].ref == "refs/tags/simple-tag" and event.refs[0].after is None and event.commit_ids == ()


@pytest.mark.parametrize(
    ("fixture", "merged", "action", "state"),
    [
        ("pull_request.opened.json", None, PullRequestAction.OPENED, PullRequestState.OPEN),
        ("pull_request.synchronize.json", None, PullRequestAction.UPDATED, PullRequestState.OPEN),
        ("pull_request.closed.json", None, PullRequestAction.DECLINED, PullRequestState.DECLINED),
        ("pull_request.closed.json", True, PullRequestAction.MERGED, PullRequestState.MERGED),
    ],
)
def test_parse_pull_request(
    fixture: str, merged: bool | None, action: PullRequestAction, state: PullRequestState
) -> None:
    body = _payload(fixture)
    if merged:  # no official merged example exists (SOURCES.md); this is what GitHub sends for one
        payload = json.loads(body)
        payload["pull_request"].update(merged=True, merged_at=payload["pull_request"]["closed_at"])
        body = json.dumps(payload).encode()
    headers = _signed(body, "pull_request")
    verify_signature(headers, body, SECRET)
    [event] = parse_delivery(headers, body)
    assert event.type is WebhookEventType.PULL_REQUEST and event.pull_request_action is action
    assert event.pull_request is not None and event.pull_request.state is state
    assert event.pull_request.external_id == str(json.loads(body)["number"])
    assert event.pull_request.source_branch and event.pull_request.target_branch


def test_parse_repository_ping_and_ignored_events() -> None:
    created, deleted, ping = (
        _payload("repository.created.json"),
        _payload("repository.deleted.json"),
        _payload("ping.json"),
    )
    [c] = parse_delivery(_signed(created, "repository"), created)
    [d] = parse_delivery(_signed(deleted, "repository"), deleted)
    assert (c.repository_action, d.repository_action) == (RepositoryAction.CREATED, RepositoryAction.DELETED)
    assert c.repository_external_id == str(json.loads(created)["repository"]["id"])
    [p] = parse_delivery(_signed(ping, "ping"), ping)
    assert p.type is WebhookEventType.PING
    labeled = _payload("pull_request.labeled.json")
    assert parse_delivery(_signed(labeled, "pull_request"), labeled) == []
    assert parse_delivery(_signed(ping, "star"), ping) == []


def test_a_body_that_is_not_json_is_a_bad_webhook() -> None:
    with pytest.raises(HostError) as caught:
        parse_delivery({"X-GitHub-Event": "push"}, b"{not json")
    assert (caught.value.code, caught.value.status) == ("bad_webhook", 400)
    assert parse_delivery({"X-GitHub-Event": "push"}, b"[]") == []


def test_the_host_delegates_to_these_functions() -> None:
    host = GitHubHost(Credentials(AuthType.PAT, token="ghp_x"))
    body = _payload("pull_request.opened.json")
    headers = _signed(body, "pull_request")
    host.verify_webhook(headers, body, SECRET)
    with pytest.raises(AuthError):
        host.verify_webhook(headers, body, "another secret")
    assert host.parse_webhook(headers, body) == parse_delivery(headers, body)
