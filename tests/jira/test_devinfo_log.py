"""What Development panel pushes write to the integration's log: one event per push that had
something to tell (refusals, unknown keys, dropped keys, smart commits left to Jira, an
interruption, Jira refusing the app), nothing for an uneventful push, nothing repeated while a
condition lasts -- against tests/support/jira_stub.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from connect_app.errors import HostUnavailable, RateLimited
from connect_app.extensions import db
from connect_app.jira import devinfo
from connect_app.jira.devinfo import push_repository, push_repository_changes
from connect_app.jira.devinfo_events import entity_label
from connect_app.jira.devinfo_payloads import encode_id
from connect_app.models import IntegrationEvent, utcnow
from tests.jira.devinfo_data import GitData, quick_client, tenant_of
from tests.jira.test_devinfo import _Flaky
from tests.support.connect import JiraSite
from tests.support.jira_stub import JiraStub


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


def _sha(n: int) -> str:
    return f"{n:040x}"


def _events(integration_id: int) -> list[IntegrationEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(IntegrationEvent)
            .where(IntegrationEvent.integration_id == integration_id)
            .order_by(IntegrationEvent.id)
        )
    )


def test_an_uneventful_push_writes_nothing(data: GitData, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    integration = data.integration()
    repo = data.repository(integration)
    for n in range(1, 6):
        data.commit(repo, _sha(n), f"ABC-{n} work", [f"ABC-{n}"])
    data.branch(repo, "feature/ABC-1", _sha(1), ["ABC-1"])
    assert push_repository_changes(db.session, repo.id).status == "ok"
    assert push_repository_changes(db.session, repo.id).status == "ok"
    assert _events(integration.id) == []


def test_refusals_unknown_keys_and_dropped_keys_make_one_event_per_push(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    integration = data.integration()
    repo = data.repository(integration)
    data.commit(repo, _sha(1), "ABC-1 fine", ["ABC-1"])
    data.commit(repo, _sha(2), "ABC-2 refused", ["ABC-2"])
    data.commit(repo, _sha(3), "UTF-8 is not an issue", ["UTF-8", "ABC-3"])
    data.commit(repo, _sha(4), "a changelog", [f"ABC-{i}" for i in range(1, 131)])
    data.branch(repo, "feature/ABC-9", _sha(1), ["ABC-9"])
    jira_stub.devinfo_refuse_ids = {_sha(2), encode_id("feature/ABC-9")}
    jira_stub.devinfo_known_keys = {f"ABC-{i}" for i in range(1, 131)} | {"ABC-9"}

    push_repository(db.session, repo.id, since=None, backfill=True)

    [event] = _events(integration.id)
    assert (event.level, event.source, event.repository_id) == ("warning", "devinfo", repo.id)
    assert event.message.startswith("Development panel push of acme/widgets: Jira refused 2 entities")
    assert f"commit {_sha(2)[:12]}: refused by the stub" in event.message
    assert "branch feature/ABC-9: refused by the stub" in event.message  # the name, not the encoded id
    assert "Jira does not know 1 issue key linked here: UTF-8" in event.message
    assert "1 commit link more than 100 issue keys" in event.message and "30 keys left out" in event.message
    detail = event.detail
    assert detail["code"] == "devinfo_push" and detail["refused_count"] == 2
    assert {r["label"] for r in detail["refused"]} == {f"commit {_sha(2)[:12]}", "branch feature/ABC-9"}
    assert detail["unknown_issue_keys"] == ["UTF-8"]
    assert detail["key_overflow"][0]["dropped_count"] == 30 and len(detail["key_overflow"][0]["dropped"]) == 20
    assert detail["sent"]["commits"] == 4

    # Sent again, the same unknown key is not news; the refusals are (Jira refused them again).
    jira_stub.devinfo_refuse_ids = set()
    push_repository(db.session, repo.id, since=None, backfill=True)
    events = _events(integration.id)
    assert len(events) == 2 and "UTF-8" not in events[1].message and "refused" not in events[1].message
    assert "more than 100 issue keys" in events[1].message  # still dropped: said each time it is sent


def test_jira_refusing_the_app_is_logged_once_per_day(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    integration = data.integration()
    repo = data.repository(integration)
    data.commit(repo, _sha(1), "ABC-1", ["ABC-1"])
    jira_stub.devinfo_status = 403
    assert push_repository(db.session, repo.id, since=None, backfill=True).status == "needs_attention"
    assert push_repository(db.session, repo.id, since=None, backfill=True).status == "needs_attention"  # not called
    [event] = _events(integration.id)
    assert event.level == "error" and "Jira Software" in event.message and "once a day" in event.message
    assert event.detail == {"code": "devinfo_app_refused", "http_status": 403}

    later = utcnow() + devinfo.ATTENTION_RETRY + timedelta(minutes=1)
    assert push_repository(db.session, repo.id, since=None, backfill=True, now=later).status == "needs_attention"
    assert [e.detail["code"] for e in _events(integration.id)] == ["devinfo_app_refused", "devinfo_app_refused"]


def test_an_interruption_says_when_the_push_resumes_and_is_not_repeated(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    integration = data.integration()
    repo = data.repository(integration)
    for n in range(1, 4):
        data.commit(repo, _sha(n), f"ABC-{n}", [f"ABC-{n}"])
    reset = utcnow() + timedelta(minutes=10)
    for _ in range(2):
        flaky = _Flaky(quick_client(installed_site), fail_at=1, error=RateLimited("slow down", reset_at=reset))
        with pytest.raises(RateLimited):
            push_repository_changes(db.session, repo.id, client=flaky)
    [event] = _events(integration.id)
    assert event.level == "warning" and "rate-limited" in event.message
    assert f"resumes after {reset.strftime('%Y-%m-%d %H:%M')} UTC" in event.message
    assert event.detail["code"] == "devinfo_interrupted" and event.detail["retry_at"] == reset.isoformat()

    down = _Flaky(quick_client(installed_site), fail_at=1, error=HostUnavailable("Jira answered 503"))
    with pytest.raises(HostUnavailable):
        push_repository_changes(db.session, repo.id, client=down, now=utcnow() + timedelta(hours=2))
    last = _events(integration.id)[-1]
    assert "interrupted (Jira answered 503)" in last.message and "resumes where it stopped" in last.message


def test_an_interruption_keeps_the_findings_so_far(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devinfo, "WINDOW", 2)  # progress is saved every two commits
    integration = data.integration()
    repo = data.repository(integration)
    for n in range(1, 6):
        data.commit(repo, _sha(n), f"ABC-{n}", [f"ABC-{n}"])
    jira_stub.devinfo_refuse_ids = {_sha(1)}
    flaky = _Flaky(quick_client(installed_site), fail_at=2, error=RateLimited("later"))  # window 2
    with pytest.raises(RateLimited):
        push_repository(db.session, repo.id, since=None, backfill=True, client=flaky)
    [event] = _events(integration.id)
    assert "rate-limited" in event.message and f"commit {_sha(1)[:12]}: refused by the stub" in event.message
    assert event.detail["refused_count"] == 1 and event.detail["retry_at"] is None


def test_smart_commits_left_to_jira_are_logged(data: GitData, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    integration = data.integration()  # Jira runs smart commits
    repo = data.repository(integration)
    data.commit(repo, _sha(9), "ABC-9 base", ["ABC-9"])
    push_repository_changes(db.session, repo.id)  # the backfill: nothing to tell
    data.commit(repo, _sha(1), "ABC-1 #done #comment shipped", ["ABC-1"])
    push_repository_changes(db.session, repo.id)
    [event] = _events(integration.id)
    assert event.level == "info" and "Jira was left to run 2 smart-commit commands" in event.message
    assert event.detail["smart_commits_delegated"] == 2


def test_entity_labels() -> None:
    assert entity_label("commits", "a" * 40) == "commit " + "a" * 12
    assert entity_label("branches", encode_id("feature/ü")) == "branch feature/ü"
    assert entity_label("pullRequests", "12") == "pull request 12"
    assert entity_label("repository", "7") == "the repository"


def test_an_entity_jira_finds_too_large_alone_is_logged_with_its_words(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    integration = data.integration()
    repo = data.repository(integration)
    data.commit(repo, _sha(1), "ABC-1", ["ABC-1"])
    data.commit(repo, _sha(2), "ABC-2", ["ABC-2"])
    jira_stub.devinfo_script = [413, 413]  # the pair, then the first alone (split and retried)
    push_repository(db.session, repo.id, since=None, backfill=True)
    [event] = _events(integration.id)
    assert f"commit {_sha(1)[:12]}: Jira refused the request (HTTP 413: scripted 413)" in event.message
    assert "Jira refused 1 entity of the 2 it was sent" in event.message
