# ruff: noqa: F811 - the fixtures imported from test_smart_commits are parameters here
"""What running smart commits (mode "app") writes to the integration's log: no matching Jira
user (once per commit, naming the email), impersonation unavailable (once a day), Jira's
refusals in its words, transitions that do not exist (listing the available ones), malformed
commands -- each once, and at most a bounded number per run."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from connect_app.extensions import db
from connect_app.jira.smart_commit_events import SmartCommitLog
from connect_app.jira.smart_commit_parser import parse_smart_commits
from connect_app.jira.user_lookup import ConnectImpersonation
from connect_app.models import IntegrationEvent, utcnow
from tests.jira.devinfo_data import GitData
from tests.jira.test_smart_commits import _reset_stub, _run, data, tokens  # noqa: F401 - fixtures
from tests.support.connect import JiraSite
from tests.support.http_server import LoopbackServer
from tests.support.indexing_fixtures import make_tenant
from tests.support.jira_stub import JiraStub


def _events(integration_id: int) -> list[IntegrationEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(IntegrationEvent)
            .where(IntegrationEvent.integration_id == integration_id)
            .order_by(IntegrationEvent.id)
        )
    )


def test_no_matching_user_is_logged_once_per_commit_with_the_email(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    integration = data.integration(smart_commits_by="app")
    repo = data.repository(integration)
    data.commit(repo, "a" * 40, "ABC-1 #comment hi #done", ["ABC-1"], author_email="sam@example.com")
    data.commit(repo, "b" * 40, "ABC-1 #comment again", ["ABC-1"], author_email="nobody@example.org")
    assert _run(data, installed_site, repo.id, tokens).skipped == 3
    first, second = _events(integration.id)
    assert (first.level, first.source, first.repository_id) == ("warning", "smart_commit", repo.id)
    assert first.message.startswith("Smart commits of commit aaaaaaaaaaaa in acme/widgets were not run")
    assert "(#comment, #done)" in first.message and "2 Jira users match sam@example.com" in first.message
    assert first.detail["email"] == "sam@example.com" and first.detail["code"] == "no_jira_user"
    assert "no active Jira user has the email address nobody@example.org" in second.message
    # The ledger holds the skips: a second run says nothing again.
    _run(data, installed_site, repo.id, tokens)
    assert len(_events(integration.id)) == 2


def test_impersonation_unavailable_is_logged_once(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, jira_stub_server: LoopbackServer
) -> None:
    integration = data.integration(smart_commits_by="app")
    repo = data.repository(integration)
    data.commit(repo, "a" * 40, "ABC-1 #comment one", ["ABC-1"])
    data.commit(repo, "b" * 40, "ABC-1 #comment two", ["ABC-1"])
    unavailable = ConnectImpersonation(
        secret_for=lambda t: installed_site.shared_secret, authorization_server=jira_stub_server.url
    )
    assert _run(data, installed_site, repo.id, unavailable).skipped == 2
    data.commit(repo, "c" * 40, "ABC-1 #comment three", ["ABC-1"])
    assert _run(data, installed_site, repo.id, unavailable).skipped == 1
    [event] = _events(integration.id)
    assert event.level == "error" and event.detail["code"] == "impersonation_unavailable"
    assert "cannot act as their authors" in event.message and "oauthClientId" in event.message


def test_jiras_refusals_are_logged_in_its_words_with_the_available_transitions(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    integration = data.integration(smart_commits_by="app")
    repo = data.repository(integration)
    data.commit(repo, "a" * 40, "ABC-2 #time 1h #deploy\nABC-1 #comment fine", ["ABC-1", "ABC-2"])
    result = _run(data, installed_site, repo.id, tokens)
    assert (result.done, result.failed) == (1, 2)
    time_event, transition_event = _events(integration.id)
    assert time_event.message.startswith("#time 1h on ABC-2 from commit aaaaaaaaaaaa in acme/widgets failed:")
    assert "Time Tracking is disabled" in time_event.message and time_event.detail["code"] == "command_failed"
    assert "no transition 'deploy'" in transition_event.message
    assert transition_event.detail["code"] == "transition_not_found"
    assert transition_event.detail["available_transitions"] == ["Done", "Start Progress", "Start Review"]


def test_malformed_commands_are_logged_once_per_commit(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    integration = data.integration(smart_commits_by="app")
    repo = data.repository(integration)
    data.commit(repo, "a" * 40, "#done before any key\nABC-1 #time soon #comment\nABC-1 #comment ok", ["ABC-1"])
    assert _run(data, installed_site, repo.id, tokens).done == 1
    [event] = _events(integration.id)
    assert event.message.startswith("3 smart-commit commands in commit aaaaaaaaaaaa in acme/widgets ignored")
    assert "#time without a duration" in event.message and "no issue key before the command" in event.message
    assert [p["line"] for p in event.detail["problems"]] == [1, 2, 2]
    _run(data, installed_site, repo.id, tokens)
    assert len(_events(integration.id)) == 1


def test_nothing_is_logged_when_everything_runs_or_jira_runs_them(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    app_mode = data.integration("app", smart_commits_by="app")
    repo = data.repository(app_mode)
    data.commit(repo, "a" * 40, "ABC-1 #comment all good", ["ABC-1"])
    assert _run(data, installed_site, repo.id, tokens).done == 1
    jira_mode = data.integration("jira")
    other = data.repository(jira_mode, "other")
    data.commit(other, "b" * 40, "ABC-1 #comment Jira's job", ["ABC-1"])
    assert _run(data, installed_site, other.id, tokens).skipped_reason
    assert _events(app_mode.id) == [] and _events(jira_mode.id) == []


def test_a_run_logs_a_bounded_number_of_events(app: Flask) -> None:
    with app.app_context():
        data = GitData(make_tenant(app))
        integration = data.integration()
        repo = data.repository(integration)
        log = SmartCommitLog(db.session(), data.tenant_id, integration.id, repo.id, repo.name, utcnow(), limit=2)
        problems = parse_smart_commits("#done").problems
        for n in range(5):
            log.malformed(f"{n:040x}", problems)
        log.close()
        db.session.commit()
        events = _events(integration.id)
        assert [e.detail["code"] for e in events] == ["malformed_commands", "malformed_commands", "more_not_logged"]
        assert events[-1].detail["count"] == 3 and events[-1].level == "info"
        assert "3 more smart-commit outcomes" in events[-1].message
        # A later run may log again (the cap is per run), and says nothing when nothing was held back.
        again = SmartCommitLog(
            db.session(), data.tenant_id, integration.id, repo.id, repo.name, utcnow() + timedelta(minutes=1)
        )
        again.close()
        assert len(_events(integration.id)) == 3
        db.session.remove()
