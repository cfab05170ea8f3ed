"""Smart commits run by the app ("smart_commits_by": "app"): acting as the commit's author
through Connect user impersonation, once per commit per tenant, within the age limit, every
outcome in the ledger -- behaviour against tests/support/jira_stub.py (which also plays
Atlassian's authorization server), requests against Prism serving the Jira platform description."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask
from sqlalchemy import select

from connect_app.errors import RateLimited
from connect_app.extensions import db, redis_conn
from connect_app.jira.client import JiraClient
from connect_app.jira.smart_commit_parser import parse_smart_commits
from connect_app.jira.smart_commits import (
    execute,
    fingerprint,
    jira_datetime,
    run_smart_commits,
    smart_commit_log,
    smart_commit_max_age,
    smart_commit_mode,
)
from connect_app.jira.user_lookup import (
    AUTHORIZATION_SERVER,
    AccessToken,
    ConnectImpersonation,
    ImpersonatedJiraClient,
    ImpersonationUnavailable,
    UserDirectory,
    UserMatch,
    find_user_by_email,
    impersonation_assertion,
)
from connect_app.models import SmartCommitExecution, SmartCommitMode, Tenant, utcnow
from connect_app.runtime import runtime
from tests.conftest import APP_KEY
from tests.jira.devinfo_data import GitData, quick_client, tenant_of
from tests.support.connect import JiraSite
from tests.support.http_server import LoopbackServer
from tests.support.jira_stub import JiraStub, stub_issue, stub_user
from tests.support.prism import PrismMock

OAUTH_CLIENT = "oauth-client-7"
JANE = "5b10ac8d82e05b22cc7d4ef5"


@pytest.fixture(autouse=True)
def _reset_stub(jira_stub: JiraStub) -> Iterator[None]:
    yield
    jira_stub.reset_devinfo()
    jira_stub.reset_smart_commits()


@pytest.fixture
def data(app: Flask, installed_site: JiraSite, jira_stub: JiraStub) -> Iterator[GitData]:
    key = installed_site.client_key
    jira_stub.oauth_clients[key] = OAUTH_CLIENT
    jira_stub.users_by_client[key] = [
        stub_user(JANE, "jane@example.com", "Jane Doe"),
        stub_user("acct-bob", "bob@example.com", "Bob", hidden=True),
        stub_user("acct-app", "bot@example.com", "Bot", accountType="app"),
        stub_user("acct-gone", "gone@example.com", "Gone", active=False),
        stub_user("acct-sam1", "sam@example.com", "Sam One", hidden=True),
        stub_user("acct-sam2", "sam@example.com.au", "Sam Two", hidden=True),
    ]
    jira_stub.issues_by_client[key] = {
        "ABC-1": stub_issue("Start Progress", "In Review", "Done"),
        "ABC-2": stub_issue("Start Progress", "Start Review", "Done", time_tracking=False),
    }
    with app.app_context():
        yield GitData(tenant_of(installed_site).id)
        db.session.remove()


@pytest.fixture
def tokens(installed_site: JiraSite, jira_stub_server: LoopbackServer) -> ConnectImpersonation:
    return ConnectImpersonation(
        secret_for=lambda t: installed_site.shared_secret,
        oauth_client_id_for=lambda t: OAUTH_CLIENT,
        authorization_server=jira_stub_server.url,
    )


def _run(data: GitData, site: JiraSite, repo_id: int, tokens: Any, **kw: Any) -> Any:
    return run_smart_commits(db.session, repo_id, client=quick_client(site), tokens=tokens, **kw)


def _ledger(tenant_id: int) -> list[tuple[str, str, int, str, str, str | None]]:
    db.session.expire_all()
    rows = db.session.scalars(
        select(SmartCommitExecution)
        .where(SmartCommitExecution.tenant_id == tenant_id)
        .order_by(SmartCommitExecution.sha, SmartCommitExecution.command_index, SmartCommitExecution.issue_key)
    )
    return [(r.sha[:4], r.issue_key, r.command_index, r.summary, r.status, r.account_id) for r in rows]


def _issue(stub: JiraStub, site: JiraSite, key: str) -> dict[str, Any]:
    return stub.issues_by_client[site.client_key][key]


def _text(adf: dict[str, Any]) -> str:
    return "".join(n.get("text", "") for p in adf["content"] for n in p.get("content", []))


# ----------------------------------------------------------------------------- executing


def test_commands_run_as_the_commits_author(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    repo = data.repository(data.integration(smart_commits_by="app"))
    message = "ABC-1 #time 1w 2d 4h 30m Total work logged #comment shipped it #in-review Ready for review"
    commit = data.commit(repo, "a" * 40, message, ["ABC-1"])

    result = _run(data, installed_site, repo.id, tokens)

    assert (result.mode, result.done, result.failed, result.skipped) == ("app", 3, 0, 0)
    issue = _issue(jira_stub, installed_site, "ABC-1")
    [worklog] = issue["worklogs"]
    assert worklog["timeSpent"] == "1w 2d 4h 30m"
    assert worklog["started"] == jira_datetime(commit.authored_at)
    assert _text(worklog["comment"]) == "Total work logged" and worklog["account_id"] == JANE
    assert [(_text(c["body"]), c["account_id"]) for c in issue["comments"]] == [
        ("shipped it", JANE),
        ("Ready for review", JANE),
    ]
    assert [(t["id"], t["account_id"]) for t in issue["transitioned"]] == [("21", JANE)]
    assert _ledger(data.tenant_id) == [
        ("aaaa", "ABC-1", 0, "#time 1w 2d 4h 30m", "done", JANE),
        ("aaaa", "ABC-1", 1, "#comment", "done", JANE),
        ("aaaa", "ABC-1", 2, "#in-review", "done", JANE),
    ]
    # The user was looked up as the app; the token was minted by the JWT bearer grant.
    [search] = jira_stub.calls_to("/rest/api/3/user/search")
    assert search.auth_ok and search.account_id is None and search.query["query"] == ["jane@example.com"]
    [grant] = jira_stub.token_requests
    assert grant["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer" and grant["scope"] == "READ WRITE"
    log = smart_commit_log(db.session, repo.integration_id)
    assert [(e["command"], e["status"], e["account_id"]) for e in log] == [
        ("#in-review", "done", JANE),
        ("#comment", "done", JANE),
        ("#time 1w 2d 4h 30m", "done", JANE),
    ]
    assert log[0]["detail"] == "transition: In Review"


def test_a_command_runs_once_per_tenant(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    integration = data.integration(smart_commits_by="app")
    first, fork = data.repository(integration, "widgets"), data.repository(integration, "fork")
    message = "ABC-1 #comment once"
    original = data.commit(first, "a" * 40, message, ["ABC-1"])
    assert _run(data, installed_site, first.id, tokens).done == 1
    # Reindexed, redelivered, in another repository, rebased (same author, date and message):
    assert _run(data, installed_site, first.id, tokens).done == 0
    data.commit(fork, "a" * 40, message, ["ABC-1"])
    assert _run(data, installed_site, fork.id, tokens).done == 0
    rebased = data.commit(first, "b" * 40, message, ["ABC-1"], when=original.committed_at + timedelta(minutes=1))
    assert fingerprint(rebased.author_email, rebased.authored_at, message) != fingerprint(
        original.author_email, original.authored_at, message
    )
    rebased.authored_at = original.authored_at
    db.session.commit()
    assert _run(data, installed_site, first.id, tokens).done == 0
    assert len(_issue(jira_stub, installed_site, "ABC-1")["comments"]) == 1
    assert [row[:5] for row in _ledger(data.tenant_id)] == [("aaaa", "ABC-1", 0, "#comment", "done")]


def test_only_recent_commits_run_and_the_age_is_configurable(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    integration = data.integration(smart_commits_by="app")
    repo = data.repository(integration)
    data.commit(repo, "a" * 40, "ABC-1 #comment old news", ["ABC-1"], when=utcnow() - timedelta(days=20))
    assert _run(data, installed_site, repo.id, tokens).commits_seen == 0
    integration.features = {**integration.features, "smart_commits_max_age_days": 30}
    db.session.commit()
    assert smart_commit_max_age(integration) == timedelta(days=30)
    assert _run(data, installed_site, repo.id, tokens).done == 1


def test_modes(data: GitData) -> None:
    assert smart_commit_mode(data.integration("a")) is SmartCommitMode.JIRA
    assert smart_commit_mode(data.integration("b", smart_commits_by="app")) is SmartCommitMode.APP
    assert smart_commit_mode(data.integration("c", development_panel=False)) is SmartCommitMode.APP
    assert smart_commit_mode(data.integration("d", development_panel=False, smart_commits_by="jira")) is (
        SmartCommitMode.APP
    )
    assert smart_commit_mode(data.integration("e", smart_commits=False)) is None


def test_nothing_runs_when_jira_runs_them_or_the_feature_is_off(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    for features, reason in (({}, "Jira runs"), ({"smart_commits": False}, "switched off")):
        repo = data.repository(data.integration(secrets.token_hex(3), **features))
        data.commit(repo, secrets.token_hex(20), "ABC-1 #comment hi", ["ABC-1"])
        result = _run(data, installed_site, repo.id, tokens)
        assert reason in (result.skipped_reason or "")
    assert jira_stub.calls == [] and _ledger(data.tenant_id) == []


# ----------------------------------------------------------------------------- users


@pytest.mark.parametrize(
    ("email", "account", "reason"),
    [
        ("jane@example.com", JANE, None),
        ("JANE@Example.com", JANE, None),
        ("bob@example.com", "acct-bob", None),  # the address is hidden, the only match
        ("sam@example.com", None, "2 Jira users match sam@example.com (their addresses are hidden)"),
        ("bot@example.com", None, "no active Jira user has the email address bot@example.com"),
        ("gone@example.com", None, "no active Jira user has the email address gone@example.com"),
        ("", None, "the commit has no author email address"),
    ],
)
def test_finding_the_jira_user(
    data: GitData, installed_site: JiraSite, email: str, account: str | None, reason: str | None
) -> None:
    match = find_user_by_email(quick_client(installed_site), email)
    assert (match.account_id, match.reason) == (account, reason)


def test_an_author_without_a_unique_jira_user_is_skipped_with_the_reason(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    repo = data.repository(data.integration(smart_commits_by="app"))
    data.commit(repo, "a" * 40, "ABC-1 #comment hi #done", ["ABC-1"], author_email="sam@example.com")
    result = _run(data, installed_site, repo.id, tokens)
    assert (result.done, result.skipped) == (0, 2)
    rows = db.session.scalars(select(SmartCommitExecution)).all()
    assert {r.status for r in rows} == {"skipped"}
    assert all("2 Jira users match sam@example.com" in (r.error or "") for r in rows)
    assert jira_stub.token_requests == []
    assert _issue(jira_stub, installed_site, "ABC-1")["comments"] == []


def test_user_answers_are_cached_per_tenant(data: GitData, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    client = quick_client(installed_site)
    first = UserDirectory(client, tenant_id=data.tenant_id, cache=redis_conn.client)
    assert first.account_for("jane@example.com").account_id == JANE
    assert first.account_for("nobody@example.com").account_id is None
    second = UserDirectory(client, tenant_id=data.tenant_id, cache=redis_conn.client)
    assert second.account_for("Jane@Example.com").account_id == JANE
    assert second.account_for("nobody@example.com").reason is not None
    assert len(jira_stub.calls_to("/rest/api/3/user/search")) == 2
    keys = [k.decode() for k in redis_conn.client.scan_iter(match="gcj:jira-user:*")]
    assert keys and not any("@" in k for k in keys)


# ----------------------------------------------------------------------------- impersonation


def test_the_assertion_carries_the_documented_claims() -> None:
    now = 1_700_000_000
    token = impersonation_assertion(
        oauth_client_id="cid", account_id="acct", tenant_base_url="https://x.atlassian.net/", secret="s" * 32, now=now
    )
    claims = pyjwt.decode(
        token, "s" * 32, algorithms=["HS256"], audience=AUTHORIZATION_SERVER, options={"verify_exp": False}
    )
    assert claims == {
        "iss": "urn:atlassian:connect:clientid:cid",
        "sub": "urn:atlassian:connect:useraccountid:acct",
        "tnt": "https://x.atlassian.net",
        "aud": AUTHORIZATION_SERVER,
        "iat": now,
        "exp": now + 60,
    }


def test_tokens_are_cached_and_renewed_after_a_401(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    tenant = db.session.get(Tenant, data.tenant_id)
    assert tenant is not None
    first = tokens.token_for(tenant, JANE)
    assert tokens.token_for(tenant, JANE) is first and "stub-" not in repr(first)
    client = ImpersonatedJiraClient(tenant=tenant, account_id=JANE, tokens=tokens)
    jira_stub.bearer_tokens.pop(first.token)  # Jira no longer accepts it
    assert client.get_json("/rest/api/3/issue/ABC-1/transitions")["transitions"]
    assert len(jira_stub.token_requests) == 2
    assert jira_stub.calls[-1].account_id == JANE


def test_without_an_oauth_client_id_commands_are_skipped(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, jira_stub_server: LoopbackServer
) -> None:
    repo = data.repository(data.integration(smart_commits_by="app"))
    data.commit(repo, "a" * 40, "ABC-1 #comment hi", ["ABC-1"])
    unavailable = ConnectImpersonation(
        secret_for=lambda t: installed_site.shared_secret, authorization_server=jira_stub_server.url
    )  # the default: Tenant has no oauth_client_id (yet)
    result = _run(data, installed_site, repo.id, unavailable)
    assert result.skipped == 1
    [row] = db.session.scalars(select(SmartCommitExecution)).all()
    assert row.status == "skipped" and "oauthClientId" in (row.error or "")


def test_the_default_provider_needs_the_tenants_oauth_client_id_and_calls_nobody_without_it(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    repo = data.repository(data.integration(smart_commits_by="app"))
    data.commit(repo, "a" * 40, "ABC-1 #comment hi", ["ABC-1"])
    result = run_smart_commits(db.session, repo.id, client=quick_client(installed_site))  # default tokens
    assert result.skipped == 1
    assert jira_stub.token_requests == []  # Atlassian's real authorization server was never contacted


def test_a_refused_grant_is_impersonation_unavailable(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, jira_stub_server: LoopbackServer
) -> None:
    tenant = db.session.get(Tenant, data.tenant_id)
    assert tenant is not None
    wrong = ConnectImpersonation(
        secret_for=lambda t: "not-the-shared-secret-of-this-site",
        oauth_client_id_for=lambda t: OAUTH_CLIENT,
        authorization_server=jira_stub_server.url,
    )
    with pytest.raises(ImpersonationUnavailable) as info:
        wrong.token_for(tenant, JANE)
    assert "ACT_AS_USER" in info.value.message


# ----------------------------------------------------------------------------- failures


def test_jiras_refusals_are_recorded_per_command(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    repo = data.repository(data.integration(smart_commits_by="app"))
    data.commit(repo, "a" * 40, "ABC-2 #time 1h #start #deploy\nABC-9 #comment nobody home", ["ABC-2", "ABC-9"])
    result = _run(data, installed_site, repo.id, tokens)
    assert (result.done, result.failed) == (0, 4)
    rows = {(r.issue_key, r.summary): r.error for r in db.session.scalars(select(SmartCommitExecution))}
    assert "Time Tracking is disabled" in (rows[("ABC-2", "#time 1h")] or "")
    assert "ambiguous" in (rows[("ABC-2", "#start")] or "")
    assert "no transition 'deploy'" in (rows[("ABC-2", "#deploy")] or "")
    assert "Jira has no issue ABC-9" in (rows[("ABC-9", "#comment")] or "")


def test_malformed_commands_are_logged_not_raised(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    repo = data.repository(data.integration(smart_commits_by="app"))
    data.commit(repo, "a" * 40, "ABC-1 #time soon #comment\nABC-1 #comment fine", ["ABC-1"])
    result = _run(data, installed_site, repo.id, tokens)
    assert result.done == 1 and len(result.problems) == 2
    assert _ledger(data.tenant_id) == [
        ("aaaa", "-", 0, "#time soon", "skipped", None),
        ("aaaa", "-", 1, "#comment", "skipped", None),
        ("aaaa", "ABC-1", 2, "#comment", "done", JANE),
    ]
    assert _run(data, installed_site, repo.id, tokens).done == 0  # and logged once
    assert len(_ledger(data.tenant_id)) == 3


def test_a_rate_limit_releases_the_claim_for_the_next_run(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    repo = data.repository(data.integration(smart_commits_by="app"))
    data.commit(repo, "a" * 40, "ABC-1 #comment one #comment two", ["ABC-1"])

    class Limited:
        def __init__(self, inner: Any) -> None:
            self.inner, self.base_url, self.calls = inner, inner.base_url, 0

        def request(self, method: str, path: str, **kw: Any) -> Any:
            self.calls += 1
            if self.calls == 2:
                raise RateLimited("later", reset_at=utcnow() + timedelta(minutes=1))
            return self.inner.request(method, path, **kw)

        def get_json(self, path: str, **kw: Any) -> Any:
            return self.request("GET", path, **kw).json()

    def limited(tenant: Tenant, account_id: str, provider: Any) -> Any:
        return Limited(ImpersonatedJiraClient(tenant=tenant, account_id=account_id, tokens=provider))

    with pytest.raises(RateLimited):
        _run(data, installed_site, repo.id, tokens, user_client_factory=limited)
    assert [r[4] for r in _ledger(data.tenant_id)] == ["done"]
    result = _run(data, installed_site, repo.id, tokens)
    assert (result.done, result.already_done) == (1, 1)
    assert [_text(c["body"]) for c in _issue(jira_stub, installed_site, "ABC-1")["comments"]] == ["one", "two"]


def test_only_linked_keys_are_acted_on(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, tokens: ConnectImpersonation
) -> None:
    repo = data.repository(data.integration(smart_commits_by="app"))
    data.commit(repo, "a" * 40, "ABC-1 OTHER-5 #comment both?", ["ABC-1"])  # OTHER is not a project here
    result = _run(data, installed_site, repo.id, tokens)
    assert result.done == 1 and any("OTHER-5 is not linked" in p for p in result.problems)


# ----------------------------------------------------------------------------- contract (Prism)


class _Jane:
    def account_for(self, email: str) -> UserMatch:
        return UserMatch(JANE, None, "Jane")


class _FixedTokens:
    def token_for(self, tenant: Tenant, account_id: str, *, refresh: bool = False) -> AccessToken:
        return AccessToken("prism-token", datetime.now(UTC) + timedelta(minutes=15), account_id)


@pytest.mark.slow
def test_smart_commit_requests_fit_the_platform_description(
    app: Flask, prism_jira_platform: PrismMock, jira_stub: JiraStub
) -> None:
    """User search as the app, then comment, worklog and transition (GET, POST) as the user --
    the whole executor against Jira's published platform description."""
    with app.app_context():
        now = utcnow()
        tenant = Tenant(
            client_key=f"client-{secrets.token_hex(6)}",
            base_url=prism_jira_platform.root_url,
            shared_secret_encrypted=runtime(app).secrets.encrypt("s" * 32),
            installed_at=now,
            secret_rotated_at=now,
        )
        db.session.add(tenant)
        db.session.commit()
        data = GitData(tenant.id)
        repo = data.repository(data.integration(smart_commits_by="app"))
        message = "ABC-1 #time 1w 2.5d Total #comment corrected indent issue #close Fixed this today"
        data.commit(repo, "c" * 40, message, ["ABC-1"], author_email="mia@example.com")
        client = JiraClient(base_url=prism_jira_platform.root_url, app_key=APP_KEY, shared_secret="s" * 32)
        with prism_jira_platform.recording() as rec:
            # The description's example answers every search with two *inactive* users: no match.
            missing = find_user_by_email(client, "mia@example.com")
            result = run_smart_commits(db.session, repo.id, client=client, tokens=_FixedTokens(), users=_Jane())
        rec.assert_all_valid(min_requests=6)
        assert missing.account_id is None and "no active Jira user" in (missing.reason or "")
        assert (result.done, result.failed, result.skipped) == (3, 0, 0), _ledger(tenant.id)
        paths = [(e.method, e.url.split("?")[0].removeprefix(prism_jira_platform.root_url)) for e in rec.exchanges]
        assert paths == [
            ("GET", "/rest/api/3/user/search"),
            ("POST", "/rest/api/3/issue/ABC-1/worklog"),
            ("POST", "/rest/api/3/issue/ABC-1/comment"),
            ("GET", "/rest/api/3/issue/ABC-1/transitions"),
            ("POST", "/rest/api/3/issue/ABC-1/transitions"),  # "Close Issue", from the example
            ("POST", "/rest/api/3/issue/ABC-1/comment"),
        ]
        rows = db.session.scalars(select(SmartCommitExecution).order_by(SmartCommitExecution.command_index)).all()
        assert [r.error for r in rows] == [None, None, "transition: Close Issue"]
        assert all(r.account_id == JANE for r in rows)
        db.session.remove()


@pytest.mark.slow
def test_execute_sends_adf_and_jiras_worklog_time_format(prism_jira_platform: PrismMock) -> None:
    tenant = Tenant(id=1, base_url=prism_jira_platform.root_url)
    api = ImpersonatedJiraClient(tenant=tenant, account_id=JANE, tokens=_FixedTokens())
    parsed = parse_smart_commits("ABC-1 #time 30m #comment ünïcödé 😀")
    from connect_app.jira.smart_commits import CommitFacts

    facts = CommitFacts(1, "d" * 40, "m", "a@b", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), datetime.now(UTC))
    with prism_jira_platform.recording() as rec:
        for key, command in parsed.actions():
            execute(api, key, command, facts)
    rec.assert_all_valid(min_requests=2)
    worklog = rec.exchanges[0].response.request
    assert b'"started": "2024-01-02T03:04:05.000+0000"' in worklog.body
