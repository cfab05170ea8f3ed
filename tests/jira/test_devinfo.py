"""Pushing to Jira's Development panel: what is sent and when, Jira's answers (202 partial, 413,
429, 401/403), resuming, deletions, preventTransitions and the smart-commit hand-over --
behaviour against tests/support/jira_stub.py, requests against Prism serving the Jira Software
description."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import delete, select

from connect_app.errors import HostUnavailable, RateLimited
from connect_app.extensions import db
from connect_app.jira import devinfo
from connect_app.jira.client import JiraClient
from connect_app.jira.devinfo import (
    BULK_PATH,
    DevinfoResult,
    delete_integration,
    delete_repository,
    push_repository,
    push_repository_changes,
    repository_log,
    repository_state,
    tenant_state,
)
from connect_app.jira.devinfo_payloads import DevinfoLimits, encode_id
from connect_app.models import (
    Branch,
    DevinfoStatus,
    IssueLink,
    LinkKind,
    SmartCommitExecution,
    Tenant,
    utcnow,
)
from tests.conftest import APP_KEY
from tests.jira.devinfo_data import GitData, quick_client, tenant_of
from tests.support.connect import JiraSite
from tests.support.jira_stub import JiraStub
from tests.support.prism import PrismMock, request_violations


@pytest.fixture(autouse=True)
def _reset_stub(jira_stub: JiraStub) -> Iterator[None]:
    yield
    jira_stub.reset_devinfo()
    jira_stub.reset_smart_commits()


@pytest.fixture
def data(app: Flask, installed_site: JiraSite) -> Iterator[GitData]:
    with app.app_context():
        yield GitData(tenant_of(installed_site).id)
        db.session.remove()


def _bulk_calls(stub: JiraStub) -> list[Any]:
    return [c for c in stub.calls_to(BULK_PATH) if c.method == "POST"]


def _sent(stub: JiraStub, kind: str = "commits") -> list[tuple[str, bool]]:
    """(entity id, preventTransitions) of every entity the stub received, in order."""
    return [
        (e["id"], c.body.get("preventTransitions"))
        for c in _bulk_calls(stub)
        if c.body
        for r in c.body["repositories"]
        for e in r.get(kind, [])
    ]


def _sent_of(stub: JiraStub, *shas: str) -> list[tuple[str, bool]]:
    return sorted(p for p in _sent(stub) if p[0] in shas)


def _sha(n: int) -> str:
    return f"{n:040x}"


# ----------------------------------------------------------------------------- a first push


def test_a_first_push_sends_every_linked_entity_as_a_backfill(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    integration = data.integration()
    repo = data.repository(integration)
    data.commit(repo, _sha(1), "ABC-1 fix the login", ["ABC-1"])
    data.commit(repo, _sha(2), "merge", ["ABC-2"], parents=2)
    data.commit(repo, _sha(3), "no keys here")  # not linked: not sent
    data.commit(repo, _sha(4), "a changelog", [f"ABC-{i}" for i in range(1, 151)])
    data.branch(repo, "feature/ABC-1-login", _sha(1), ["ABC-1"])
    data.branch(repo, "release/many", _sha(4), [f"ABC-{i}" for i in range(1, 251)])
    data.pull_request(repo, "7", "ABC-1 login", ["ABC-1"])

    result = push_repository(db.session, repo.id, since=None, backfill=False)

    assert result.status == "ok" and result.backfill  # the first push of a repository is a backfill
    assert result.sent == {"commits": 3, "branches": 4, "pullRequests": 1}
    assert result.failed == [] and result.live == 0
    [overflow] = result.key_overflow
    assert overflow.entity_id == _sha(4) and len(overflow.dropped) == 50
    key = installed_site.client_key
    commits = jira_stub.devinfo_entities(key, str(repo.id), "commits")
    assert set(commits) == {_sha(1), _sha(2), _sha(4)}
    assert commits[_sha(2)]["flags"] == ["MERGE_COMMIT"]
    assert len(commits[_sha(4)]["issueKeys"]) == 100
    branches = jira_stub.devinfo_entities(key, str(repo.id), "branches")
    base = encode_id("release/many")
    assert set(branches) == {encode_id("feature/ABC-1-login"), base, base + "~k1", base + "~k2"}
    assert branches[encode_id("feature/ABC-1-login")]["name"] == "feature/ABC-1-login"
    assert set(jira_stub.devinfo_entities(key, str(repo.id), "pullRequests")) == {"7"}
    calls = _bulk_calls(jira_stub)
    assert all(c.auth_ok and c.client_key == key for c in calls)
    assert all(c.body["preventTransitions"] is True for c in calls)
    assert all(c.body["properties"] == {"integrationId": str(integration.id)} for c in calls)
    state = repository_state(db.session, repo.id)
    assert state is not None and state.status == DevinfoStatus.OK.value
    assert state.pending is None and state.last_success_started_at is not None
    assert state.link_cursor == db.session.scalar(select(IssueLink.id).order_by(IssueLink.id.desc()).limit(1))
    assert state.last_result["key_overflow"][0]["dropped_count"] == 50
    assert sorted(state.pushed_branch_ids) == sorted(branches)
    log = repository_log(db.session, repo.id)
    assert log is not None and log["status"] == "ok" and not log["resuming"]


def test_incremental_pushes_send_what_changed_and_let_recent_entities_fire(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(1), "ABC-1 first", ["ABC-1"])
    data.branch(repo, "feature/ABC-1", _sha(1), ["ABC-1"])
    data.pull_request(repo, "1", "ABC-1", ["ABC-1"])
    push_repository_changes(db.session, repo.id)
    jira_stub.calls.clear()

    data.commit(repo, _sha(2), "ABC-2 recent", ["ABC-2"])
    data.commit(repo, _sha(3), "ABC-3 pushed late, written long ago", ["ABC-3"], when=utcnow() - timedelta(days=40))
    branch = db.session.scalar(select(Branch).where(Branch.repository_id == repo.id))
    assert branch is not None
    branch.head_sha, branch.updated_at = _sha(2), utcnow()  # the indexer moved the head
    db.session.commit()
    result = push_repository_changes(db.session, repo.id)

    assert result.status == "ok" and not result.backfill
    # New links fire (when recent); the first commit's link is re-sent by the overlap with the
    # previous push (a link committed late by a concurrent index run is not lost) and cannot fire.
    assert sorted(_sent(jira_stub)) == [(_sha(1), True), (_sha(2), False), (_sha(3), True)]
    assert _sent(jira_stub, "branches") == [(encode_id("feature/ABC-1"), False)]  # its head moved
    assert _sent(jira_stub, "pullRequests") == [("1", False)]  # updated on the host within the lag
    assert result.live == 3

    # Much later, with nothing new: only pull requests updated within the lag are re-sent.
    jira_stub.calls.clear()
    later = utcnow() + timedelta(hours=2)
    state = repository_state(db.session, repo.id)
    assert state is not None
    state.last_success_started_at = later - timedelta(minutes=30)
    db.session.commit()
    result = push_repository_changes(db.session, repo.id, now=later)
    assert result.sent == {"commits": 0, "branches": 0, "pullRequests": 1}
    assert _sent(jira_stub) == []


def test_a_backfill_never_fires_transitions(data: GitData, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(1), "ABC-1 a", ["ABC-1"])
    push_repository_changes(db.session, repo.id)
    data.commit(repo, _sha(2), "ABC-2 b", ["ABC-2"])
    jira_stub.calls.clear()
    push_repository(db.session, repo.id, since=None, backfill=True)
    assert sorted(_sent(jira_stub)) == [(_sha(1), True), (_sha(2), True)]


# ----------------------------------------------------------------------------- limits and Jira's answers


def test_big_pushes_respect_the_limits_and_413_splits(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    for n in range(1, 1201):
        data.commit(repo, _sha(n), f"ABC-{n} work", [f"ABC-{n}"])
    jira_stub.devinfo_max_entities = 150  # anything bigger is "too large"
    result = push_repository(db.session, repo.id, since=None, backfill=True)
    assert result.status == "ok" and result.failed == []
    stored = jira_stub.devinfo_entities(installed_site.client_key, str(repo.id), "commits")
    assert len(stored) == 1200
    statuses = [c for c in _bulk_calls(jira_stub)]
    assert all(len(c.body["repositories"][0]["commits"]) <= 400 for c in statuses)
    assert result.requests == len(statuses) > 3


def test_a_202_with_refused_entities_and_unknown_keys_is_recorded(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(1), "ABC-1 ok", ["ABC-1"])
    data.commit(repo, _sha(2), "ABC-2 refused", ["ABC-2"])
    data.commit(repo, _sha(3), "UTF-8 is not an issue", ["UTF-8", "ABC-3"])
    jira_stub.devinfo_refuse_ids = {_sha(2)}
    jira_stub.devinfo_known_keys = {"ABC-1", "ABC-2", "ABC-3"}
    result = push_repository(db.session, repo.id, since=None, backfill=True)
    assert result.status == "ok"
    assert [(f.kind, f.entity_id, f.messages) for f in result.failed] == [
        ("commits", _sha(2), ("refused by the stub",))
    ]
    assert result.unknown_issue_keys == ["UTF-8"]
    assert result.accepted["commits"] == 2
    state = repository_state(db.session, repo.id)
    assert state is not None
    assert state.unknown_issue_keys == ["UTF-8"]
    assert state.last_result["failed"][0]["id"] == _sha(2)
    assert state.last_result["unknown_issue_keys"] == ["UTF-8"]


def test_a_single_entity_jira_refuses_as_too_large_is_recorded_not_retried(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(1), "ABC-1", ["ABC-1"])
    data.commit(repo, _sha(2), "ABC-2", ["ABC-2"])
    jira_stub.devinfo_script = [413, 413]  # the pair, then the first alone; the second is accepted
    jira_stub.devinfo_max_entities = None
    result = push_repository(db.session, repo.id, since=None, backfill=True)
    assert result.requests == 3
    assert [(f.entity_id, f.messages[0].startswith("Jira refused the request (HTTP 413")) for f in result.failed] == [
        (_sha(1), True)
    ]
    assert set(jira_stub.devinfo_entities(installed_site.client_key, str(repo.id), "commits")) == {_sha(2)}


class _Flaky:
    """The app's client, failing the ``fail_at``-th bulk request with ``error``."""

    def __init__(self, inner: JiraClient, fail_at: int, error: Exception) -> None:
        self.inner, self.fail_at, self.error, self.bulk = inner, fail_at, error, 0
        self.base_url = inner.base_url

    def request(self, method: str, path: str, **kw: Any) -> Any:
        if path == BULK_PATH:
            self.bulk += 1
            if self.bulk == self.fail_at:
                raise self.error
        return self.inner.request(method, path, **kw)

    def get_json(self, path: str, **kw: Any) -> Any:
        return self.inner.get_json(path, **kw)


@pytest.mark.parametrize(
    "error", [RateLimited("slow down", reset_at=utcnow() + timedelta(minutes=5)), HostUnavailable("down")]
)
def test_an_interrupted_push_saves_its_progress_and_resumes(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, error: Exception
) -> None:
    repo = data.repository(data.integration())
    for n in range(1, 2501):
        data.commit(repo, _sha(n), f"ABC-{n}", [f"ABC-{n}"])
    flaky = _Flaky(quick_client(installed_site), fail_at=4, error=error)  # the first request of window 2
    with pytest.raises(type(error)):
        push_repository(db.session, repo.id, since=None, backfill=True, client=flaky)
    state = repository_state(db.session, repo.id)
    assert state is not None and state.status == DevinfoStatus.PARTIAL.value
    assert state.pending is not None and state.pending["kind"] == "commits"
    assert state.pending["after"] == _sha(1000)
    assert "resumes" in (state.last_error or "")
    assert state.last_success_started_at is None
    assert repository_log(db.session, repo.id)["resuming"] is True  # type: ignore[index]
    jira_stub.calls.clear()

    result = push_repository_changes(db.session, repo.id, client=quick_client(installed_site))
    assert result.status == "ok" and result.backfill
    assert result.sent["commits"] == 1500  # the first 1000 are not sent again
    assert len(jira_stub.devinfo_entities(installed_site.client_key, str(repo.id), "commits")) == 2500
    state = repository_state(db.session, repo.id)
    assert state is not None and state.pending is None and state.status == DevinfoStatus.OK.value


def test_a_long_retry_after_raises_rate_limited_with_its_reset_time(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(1), "ABC-1", ["ABC-1"])
    jira_stub.rate_limit_next = 1
    jira_stub.retry_after = "600"
    with pytest.raises(RateLimited) as info:
        push_repository(db.session, repo.id, since=None, backfill=True)
    assert info.value.reset_at is not None and info.value.reset_at > utcnow() + timedelta(minutes=9)
    jira_stub.retry_after = "1"
    assert push_repository_changes(db.session, repo.id, client=quick_client(installed_site)).status == "ok"


def test_a_short_retry_after_is_waited_out(data: GitData, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(1), "ABC-1", ["ABC-1"])
    jira_stub.rate_limit_next = 2
    jira_stub.retry_after = "1"
    result = push_repository(db.session, repo.id, since=None, backfill=True, client=quick_client(installed_site))
    assert result.status == "ok"
    assert len(_bulk_calls(jira_stub)) == 3


def test_refused_credentials_mark_the_tenant_and_stop_calling_jira(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(1), "ABC-1", ["ABC-1"])
    secret = jira_stub.secrets_by_client[installed_site.client_key]
    jira_stub.secrets_by_client[installed_site.client_key] = "rotated-" + secret
    try:
        result = push_repository(db.session, repo.id, since=None, backfill=True)
        assert result.status == "needs_attention" and "Reinstall" in (result.error or "")
        tstate = tenant_state(db.session, data.tenant_id)
        assert tstate is not None and tstate.status == DevinfoStatus.NEEDS_ATTENTION.value
        assert tstate.http_status == 401
        state = repository_state(db.session, repo.id)
        assert state is not None and state.status == DevinfoStatus.NEEDS_ATTENTION.value
        calls = len(jira_stub.calls)
        again = push_repository(db.session, repo.id, since=None, backfill=True)
        assert again.status == "needs_attention" and len(jira_stub.calls) == calls  # not retried
    finally:
        jira_stub.secrets_by_client[installed_site.client_key] = secret
    # A reinstall (a new shared secret) lets the next push try at once.
    tenant = db.session.get(Tenant, data.tenant_id)
    assert tenant is not None
    tenant.secret_rotated_at = utcnow() + timedelta(seconds=1)
    db.session.commit()
    assert push_repository(db.session, repo.id, since=None, backfill=True).status == "ok"
    tstate = tenant_state(db.session, data.tenant_id)
    assert tstate is not None and tstate.status == DevinfoStatus.OK.value


def test_forbidden_is_needs_attention_and_retried_after_the_cool_down(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(1), "ABC-1", ["ABC-1"])
    jira_stub.devinfo_status = 403
    result = push_repository(db.session, repo.id, since=None, backfill=True)
    assert result.status == "needs_attention" and "Jira Software" in (result.error or "")
    jira_stub.devinfo_status = None
    assert push_repository(db.session, repo.id, since=None, backfill=True).status == "needs_attention"
    later = utcnow() + devinfo.ATTENTION_RETRY + timedelta(minutes=1)
    assert push_repository(db.session, repo.id, since=None, backfill=True, now=later).status == "ok"


def test_nothing_is_sent_when_the_feature_or_the_site_is_off(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    off = data.repository(data.integration("off", development_panel=False))
    data.commit(off, _sha(1), "ABC-1", ["ABC-1"])
    result = push_repository(db.session, off.id, since=None, backfill=True)
    assert result.status == "skipped" and "switched off" in (result.skipped_reason or "")
    repo = data.repository(data.integration("on"))
    tenant = db.session.get(Tenant, data.tenant_id)
    assert tenant is not None
    tenant.enabled = False
    db.session.commit()
    assert push_repository(db.session, repo.id, since=None, backfill=True).status == "skipped"
    assert _bulk_calls(jira_stub) == []


# ----------------------------------------------------------------------------- deletions


def test_branches_that_go_away_are_deleted_in_jira(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(1), "ABC-1", ["ABC-1"])
    data.branch(repo, "feature/ABC-1", _sha(1), ["ABC-1"])
    data.branch(repo, "feature/many", _sha(1), [f"ABC-{i}" for i in range(1, 151)])
    push_repository_changes(db.session, repo.id)
    held = jira_stub.devinfo_entities(installed_site.client_key, str(repo.id), "branches")
    assert len(held) == 3
    # The indexer deleted the first branch and its links, and the other lost 60 keys.
    db.session.execute(delete(Branch).where(Branch.name == "feature/ABC-1"))
    db.session.execute(
        delete(IssueLink).where(IssueLink.kind == LinkKind.BRANCH.value, IssueLink.ref == "feature/ABC-1")
    )
    db.session.execute(
        delete(IssueLink).where(
            IssueLink.kind == LinkKind.BRANCH.value,
            IssueLink.ref == "feature/many",
            IssueLink.issue_key.in_([f"ABC-{i}" for i in range(91, 151)]),
        )
    )
    db.session.commit()
    result = push_repository_changes(db.session, repo.id)
    assert sorted(result.deleted_branches) == sorted([encode_id("feature/ABC-1"), encode_id("feature/many") + "~k1"])
    assert set(jira_stub.devinfo_entities(installed_site.client_key, str(repo.id), "branches")) == {
        encode_id("feature/many")
    }


def test_deleting_a_repository_or_an_integration_deletes_its_data(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    first = data.integration("first")
    a, b = data.repository(first, "a"), data.repository(first, "b")
    other = data.repository(data.integration("second"), "c")
    for n, repo in enumerate((a, b, other), start=1):
        data.commit(repo, _sha(n), f"ABC-{n}", [f"ABC-{n}"])
        push_repository(db.session, repo.id, since=None, backfill=True)
    key = installed_site.client_key
    assert set(jira_stub.devinfo[key]) == {str(a.id), str(b.id), str(other.id)}

    delete_repository(db.session, tenant_id=data.tenant_id, repository_id=a.id)
    assert set(jira_stub.devinfo[key]) == {str(b.id), str(other.id)}
    assert repository_state(db.session, a.id) is None

    delete_integration(db.session, tenant_id=data.tenant_id, integration_id=first.id)
    assert set(jira_stub.devinfo[key]) == {str(other.id)}
    [call] = jira_stub.calls_to(devinfo.BY_PROPERTIES_PATH)
    assert call.method == "DELETE" and call.query == {"integrationId": [str(first.id)]} and call.auth_ok


# ----------------------------------------------------------------------------- smart commits: who runs them


def _ledger(tenant_id: int) -> list[tuple[str, str, int, str, str]]:
    db.session.expire_all()
    rows = db.session.scalars(
        select(SmartCommitExecution)
        .where(SmartCommitExecution.tenant_id == tenant_id)
        .order_by(SmartCommitExecution.id)
    )
    return [(r.sha, r.issue_key, r.command_index, r.mode, r.status) for r in rows]


def test_jira_runs_smart_commits_once_per_tenant(data: GitData, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    integration = data.integration()  # smart_commits_by unset: Jira runs them (devinfo is on)
    first, fork = data.repository(integration, "widgets"), data.repository(integration, "widgets-fork")
    for repo in (first, fork):
        data.commit(repo, _sha(100 + repo.id), "ABC-9 base", ["ABC-9"])
        push_repository_changes(db.session, repo.id)  # the backfill
    message = "ABC-1 #done #comment shipped"
    data.commit(first, _sha(1), message, ["ABC-1"])
    data.commit(first, _sha(2), "ABC-2 #done, but old", ["ABC-2"], when=utcnow() - timedelta(days=20))
    data.commit(first, _sha(3), "ABC-3 nothing to run", ["ABC-3"])
    jira_stub.calls.clear()

    result = push_repository_changes(db.session, first.id)
    assert _sent_of(jira_stub, _sha(1), _sha(2), _sha(3)) == [(_sha(1), False), (_sha(2), True), (_sha(3), False)]
    assert result.smart_commits_delegated == 2
    assert _ledger(data.tenant_id) == [
        (_sha(1), "ABC-1", 0, "jira", "delegated"),
        (_sha(1), "ABC-1", 1, "jira", "delegated"),
    ]

    # The same commit reaches Jira again: a full re-push, and through another repository.
    jira_stub.calls.clear()
    push_repository(db.session, first.id, since=None, backfill=False)
    data.commit(fork, _sha(1), message, ["ABC-1"])
    push_repository_changes(db.session, fork.id)
    assert _sent_of(jira_stub, _sha(1)) == [(_sha(1), True), (_sha(1), True)]
    assert len(_ledger(data.tenant_id)) == 2


def test_in_app_mode_jira_never_sees_commands_it_could_run(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration(smart_commits_by="app"))
    data.commit(repo, _sha(9), "ABC-9 base", ["ABC-9"])
    push_repository_changes(db.session, repo.id)
    data.commit(repo, _sha(1), "ABC-1 #done", ["ABC-1"])
    data.commit(repo, _sha(2), "ABC-2 plain", ["ABC-2"])
    jira_stub.calls.clear()
    push_repository_changes(db.session, repo.id)
    assert _sent_of(jira_stub, _sha(1), _sha(2)) == [(_sha(1), True), (_sha(2), False)]
    assert _ledger(data.tenant_id) == []


def test_with_smart_commits_off_nobody_runs_them(data: GitData, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    repo = data.repository(data.integration(smart_commits=False))
    data.commit(repo, _sha(9), "ABC-9 base", ["ABC-9"])
    push_repository_changes(db.session, repo.id)
    data.commit(repo, _sha(1), "ABC-1 #done", ["ABC-1"])
    jira_stub.calls.clear()
    push_repository_changes(db.session, repo.id)
    assert _sent_of(jira_stub, _sha(1)) == [(_sha(1), True)]


def test_a_refused_live_commit_fails_its_ledger_rows(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(9), "ABC-9 base", ["ABC-9"])
    push_repository_changes(db.session, repo.id)
    data.commit(repo, _sha(1), "ABC-1 #done", ["ABC-1"])
    jira_stub.devinfo_refuse_ids = {_sha(1)}
    push_repository_changes(db.session, repo.id)
    assert _ledger(data.tenant_id) == [(_sha(1), "ABC-1", 0, "jira", "failed")]


def test_claims_of_an_interrupted_push_are_kept_for_its_retry(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, _sha(9), "ABC-9 base", ["ABC-9"])
    push_repository_changes(db.session, repo.id)
    data.commit(repo, _sha(1), "ABC-1 #done", ["ABC-1"])
    flaky = _Flaky(quick_client(installed_site), fail_at=1, error=RateLimited("later"))
    with pytest.raises(RateLimited):
        push_repository_changes(db.session, repo.id, client=flaky)
    assert _ledger(data.tenant_id) == [(_sha(1), "ABC-1", 0, "jira", "delegating")]
    jira_stub.calls.clear()
    push_repository_changes(db.session, repo.id, client=quick_client(installed_site))
    assert _sent_of(jira_stub, _sha(1)) == [(_sha(1), False)]
    assert _ledger(data.tenant_id) == [(_sha(1), "ABC-1", 0, "jira", "delegated")]


def test_results_are_plain_data() -> None:
    result = DevinfoResult(5)
    summary = result.summary()
    assert summary["repository_id"] == 5 and summary["accepted"] == {"commits": 0, "branches": 0, "pullRequests": 0}


# ----------------------------------------------------------------------------- contract (Prism)


@pytest.mark.slow
def test_devinfo_requests_fit_the_jira_software_description(
    data: GitData, installed_site: JiraSite, prism_jira_software: PrismMock
) -> None:
    integration = data.integration()
    repo = data.repository(integration)
    data.commit(repo, _sha(1), "ABC-1 " + "long message " * 200, ["ABC-1"], parents=2)
    data.commit(repo, _sha(2), "ABC-2 #done", ["ABC-2"])
    data.branch(repo, "feature/ABC-1 ü", _sha(1), ["ABC-1"])
    data.branch(repo, "headless", _sha(99), ["ABC-3"])
    data.pull_request(repo, "12", "ABC-1 " + "t" * 2000, [f"ABC-{i}" for i in range(1, 130)])
    client = JiraClient(base_url=prism_jira_software.root_url, app_key=APP_KEY, shared_secret="s" * 32)
    with prism_jira_software.recording() as rec:
        result = push_repository(
            db.session, repo.id, since=None, backfill=True, client=client, limits=DevinfoLimits(max_entities=3)
        )
        # An incremental push after it (preventTransitions false for recent entities).
        data.commit(repo, _sha(3), "ABC-4 recent", ["ABC-4"])
        push_repository_changes(db.session, repo.id, client=client)
        delete_repository(db.session, tenant_id=data.tenant_id, repository_id=repo.id, client=client)
        delete_integration(db.session, tenant_id=data.tenant_id, integration_id=integration.id, client=client)
    rec.assert_all_valid(min_requests=5)
    assert result.status == "ok" and result.requests >= 2
    methods = {(e.method, e.url.split("?")[0].removeprefix(prism_jira_software.root_url)) for e in rec.exchanges}
    assert ("POST", BULK_PATH) in methods
    assert ("DELETE", f"/rest/devinfo/0.10/repository/{repo.id}") in methods
    assert ("DELETE", devinfo.BY_PROPERTIES_PATH) in methods
    assert all(e.status in (202, 200) for e in rec.exchanges)
    # The harness can fail: an entity without issue keys breaks the description.
    bad = requests.post(
        prism_jira_software.root_url + BULK_PATH,
        json={
            "repositories": [
                {
                    "id": "1",
                    "name": "r",
                    "url": "https://x",
                    "updateSequenceId": 1,
                    "commits": [{"id": "a", "issueKeys": []}],
                }
            ]
        },
        headers={"Authorization": "JWT a.b.c"},
        timeout=30,
    )
    assert request_violations(bad)
