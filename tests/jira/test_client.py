"""Outbound calls to Jira: signed per call, timeouts, 429 Retry-After honoured."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from connect_app.errors import HostAuthError, HostUnavailable, RateLimited
from connect_app.jira.client import JiraClient, retry_after_seconds
from tests.support.jira_stub import JiraStub


def _client(base_url: str, secret: str, **kw) -> JiraClient:
    return JiraClient(base_url=base_url, app_key="git-connect-for-jira", shared_secret=secret, **kw)


def test_calls_are_signed_with_qsh_of_the_request(site, jira_stub: JiraStub) -> None:
    client = _client(site.base_url, site.shared_secret)
    body = client.post_json("/rest/api/3/permissions/check", {"accountId": "x", "globalPermissions": ["ADMINISTER"]})
    assert body == {"globalPermissions": [], "projectPermissions": []}
    assert client.get_json("/rest/api/3/myself")["accountType"] == "app"
    assert all(c.auth_ok for c in jira_stub.calls)


def test_wrong_secret_is_an_auth_error_without_the_secret_in_it(site) -> None:
    client = _client(site.base_url, "not-the-secret-" * 3)
    with pytest.raises(HostAuthError) as info:
        client.get_json("/rest/api/3/myself")
    assert "not-the-secret-" not in str(info.value)


def test_429_waits_for_retry_after_then_succeeds(site, jira_stub: JiraStub) -> None:
    jira_stub.rate_limit_next = 2
    jira_stub.retry_after = "3"
    slept: list[float] = []
    client = _client(site.base_url, site.shared_secret, sleep=slept.append)
    assert client.get_json("/rest/api/3/myself")["accountId"] == "app-user"
    assert slept == [3.0, 3.0]
    assert len(jira_stub.calls) == 3


def test_429_beyond_the_wait_limit_raises_rate_limited(site, jira_stub: JiraStub) -> None:
    jira_stub.rate_limit_next = 1
    jira_stub.retry_after = "600"
    client = _client(site.base_url, site.shared_secret, sleep=lambda s: None, max_retry_wait=30)
    with pytest.raises(RateLimited) as info:
        client.get_json("/rest/api/3/myself")
    assert info.value.reset_at is not None
    assert len(jira_stub.calls) == 1


def test_timeout_is_enforced() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    client = _client(f"http://127.0.0.1:{listener.getsockname()[1]}", "s" * 32, timeout=(1.0, 0.5))
    started = time.monotonic()
    with pytest.raises(HostUnavailable):
        client.get_json("/rest/api/3/myself")
    assert time.monotonic() - started < 5
    listener.close()


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
