"""Real Bitbucket deliveries (Cloud captures, Data Center doc examples and captures; see each
folder's SOURCES.md) go through the same parsers as the hand-made fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connect_app.hosts.base import (
    AuthType,
    Credentials,
    PullRequestAction,
    PullRequestState,
    WebhookEventType,
)
from connect_app.hosts.bitbucket_cloud import BitbucketCloud
from connect_app.hosts.bitbucket_dc import BitbucketDataCenter

FIXTURES = Path(__file__).parent.parent / "fixtures"
PAT = Credentials(AuthType.PAT, token="t")


@pytest.mark.parametrize(
    ("name", "key", "action", "state"),
    [
        ("pullrequest_created.json", "pullrequest:created", PullRequestAction.OPENED, PullRequestState.OPEN),
        ("pullrequest_updated.json", "pullrequest:updated", PullRequestAction.UPDATED, PullRequestState.OPEN),
        ("pullrequest_fulfilled.json", "pullrequest:fulfilled", PullRequestAction.MERGED, PullRequestState.MERGED),
        ("pullrequest_rejected.json", "pullrequest:rejected", PullRequestAction.DECLINED, PullRequestState.DECLINED),
    ],
)
def test_cloud_captured_pull_requests(name: str, key: str, action: PullRequestAction, state: PullRequestState) -> None:
    body = (FIXTURES / "bitbucket_cloud" / "captured" / name).read_bytes()
    payload = json.loads(body)
    [event] = BitbucketCloud(PAT).parse_webhook({"X-Event-Key": key, "X-Request-UUID": "u-1"}, body)
    assert event.type is WebhookEventType.PULL_REQUEST and event.pull_request_action is action
    assert event.delivery_id == "u-1"
    assert event.repository_external_id == payload["repository"]["uuid"]
    pr = event.pull_request
    assert pr is not None and pr.state is state
    assert pr.external_id == str(payload["pullrequest"]["id"])
    assert pr.title == payload["pullrequest"]["title"]
    assert pr.source_branch == payload["pullrequest"]["source"]["branch"]["name"]
    assert pr.target_branch == payload["pullrequest"]["destination"]["branch"]["name"]
    assert pr.updated_at.tzinfo is not None


def test_cloud_captured_push() -> None:
    body = (FIXTURES / "bitbucket_cloud" / "captured" / "repo_push.json").read_bytes()
    payload = json.loads(body)
    [event] = BitbucketCloud(PAT).parse_webhook({"X-Event-Key": "repo:push", "X-Request-UUID": "u-2"}, body)
    assert event.type is WebhookEventType.PUSH
    assert event.repository_external_id == payload["repository"]["uuid"]
    changes = payload["push"]["changes"]
    assert len(event.refs) == len(changes)
    for ref, change in zip(event.refs, changes, strict=True):
        assert ref.after == (change["new"] or {}).get("target", {}).get("hash")
        assert ref.before == (change["old"] or {}).get("target", {}).get("hash")


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (FIXTURES / "bitbucket_dc").glob("*-*.json") if "-" in p.stem.split("_")[-1])
)
def test_data_center_docs_and_captures_parse(name: str) -> None:
    body = (FIXTURES / "bitbucket_dc" / name).read_bytes()
    payload = json.loads(body)
    events = BitbucketDataCenter("https://bitbucket.example.com", PAT).parse_webhook(
        {"X-Event-Key": payload["eventKey"], "X-Request-Id": "r-1"}, body
    )
    assert events, name
    [event] = events
    assert event.repository_external_id == str(
        (payload.get("repository") or payload["pullRequest"]["toRef"]["repository"])["id"]
    )
    if payload["eventKey"].startswith("pr:"):
        assert event.pull_request is not None
        assert event.pull_request.external_id == str(payload["pullRequest"]["id"])
    else:
        assert [r.ref for r in event.refs] == [c["refId"] for c in payload["changes"]]
