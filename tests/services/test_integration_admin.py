"""The admin services without Flask: input parsing, host error wording, the create/update/
delete transactions (against a scripted host object), the status word, feature switches."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connect_app.errors import (
    AppError,
    Conflict,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
    UnsafeInput,
    ValidationError,
)
from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.hosts.registry import provider_info
from connect_app.indexing import scheduler
from connect_app.integrations import credentials_of
from connect_app.models import (
    IndexRun,
    Integration,
    IntegrationEvent,
    IntegrationStatus,
    Repository,
    RepositorySelection,
    RepositoryStatus,
    Tenant,
    utcnow,
)
from connect_app.runtime import runtime
from connect_app.services import host_checks
from connect_app.services import integration_admin as admin
from connect_app.services.admin_input import (
    ConnectionRequest,
    FieldError,
    Fields,
    parse_create,
    parse_credentials,
    parse_integration_patch,
    parse_repository_choice,
)
from connect_app.services.admin_stats import (
    IntegrationStats,
    IntervalHint,
    Status,
    integration_status,
    recommended_interval,
)
from connect_app.services.integration_settings import (
    DEFAULT_BRANCH_TEMPLATE,
    Feature,
    branch_name_template,
    feature_enabled,
    features_of,
    template_problem,
)

GITHUB = provider_info(ProviderId.GITHUB)
GIT = provider_info(ProviderId.GIT)


# --- parsing -----------------------------------------------------------------------


def test_aws_credentials_take_friendly_names() -> None:
    fields = Fields(
        {"type": "aws", "access_key_id": "AKIA1", "secret_access_key": "s3cr3t", "region": "eu-west-1"}, "auth"
    )
    creds = parse_credentials(fields, provider_info(ProviderId.AWS_CODECOMMIT))
    assert (creds.username, creds.password, dict(creds.extra)) == ("AKIA1", "s3cr3t", {"region": "eu-west-1"})
    with pytest.raises(FieldError) as missing:
        parse_credentials(
            Fields({"type": "aws", "access_key_id": "A", "secret_access_key": "s"}, "auth"),
            provider_info(ProviderId.AWS_CODECOMMIT),
        )
    assert missing.value.field == "auth.region"


def test_anonymous_git_credentials_drop_whatever_else_was_sent() -> None:
    creds = parse_credentials(Fields({"type": "none", "token": "stray", "x": "y"}, "auth"), GIT)
    assert creds == Credentials(AuthType.NONE)


def test_extra_credential_fields_are_bounded() -> None:
    with pytest.raises(FieldError) as bad_name:
        parse_credentials(Fields({"type": "pat", "token": "t", "a b": "c"}, "auth"), GITHUB)
    assert bad_name.value.field == "auth"
    many = {"type": "pat", "token": "t", **{f"k{i}": "v" for i in range(20)}}
    with pytest.raises(FieldError):
        parse_credentials(Fields(many, "auth"), GITHUB)


def test_repository_choice_accepts_numeric_ids_and_dedupes() -> None:
    choice = parse_repository_choice([101, "101", " acme/x "])
    assert (choice.selection, choice.picked) == (RepositorySelection.SELECTED, ("101", "acme/x"))
    assert parse_repository_choice("all").selection is RepositorySelection.ALL
    for bad in ("selected", 5, [True], [""], {"ids": []}):
        with pytest.raises(FieldError):
            parse_repository_choice(bad)


def test_create_defaults() -> None:
    spec = parse_create({"provider": "github", "auth": {"type": "pat", "token": " t "}})
    assert spec.repositories.selection is RepositorySelection.ALL_FUTURE and spec.settings == {}
    assert spec.connection.credentials.token == "t" and spec.connection.base_url is None
    self_hosted = parse_create(
        {
            "provider": "gitlab-self-managed",
            "base_url": "https://gitlab.example.com/",
            "auth": {"type": "pat", "token": "t"},
        }
    )
    assert self_hosted.connection.base_url == "https://gitlab.example.com"


def test_patch_refuses_what_would_make_it_another_integration() -> None:
    for key in ("provider", "base_url", "namespace"):
        with pytest.raises(FieldError) as caught:
            parse_integration_patch({key: "x"}, GITHUB)
        assert caught.value.code == "immutable_field"
    assert parse_integration_patch({}, GITHUB) == parse_integration_patch({"settings": {}}, GITHUB)


@pytest.mark.parametrize(
    ("template", "ok"),
    [
        (DEFAULT_BRANCH_TEMPLATE, True),
        ("feature/${projectkey}/${issuekey}_${issuetype}", True),
        ("${issuekey}", True),
        ("${summary}", False),
        ("${issuekey}-${summary", False),
        ("${issuekey}-${Summary}", False),
        ("bug fix/${issuekey}", False),
        ("${issuekey}..x", False),
        ("${issuekey}~1", False),
        ("-${issuekey}", False),
        ("${issuekey}.lock", False),
        ("   ", False),
    ],
)
def test_branch_name_templates(template: str, ok: bool) -> None:
    assert (template_problem(template) is None) is ok


# --- host errors, in words an admin can act on -------------------------------------


@pytest.mark.parametrize(
    ("raised", "status", "code", "field_path"),
    [
        (HostAuthError("refused"), 400, "bad_credentials", "auth"),
        (HostPermissionDenied("lacks scope(s): repo"), 400, "missing_scopes", "auth"),
        (HostPermissionDenied("no access to the project"), 400, "insufficient_permissions", "auth"),
        (HostNotFound("no such org"), 400, "host_not_found", "namespace"),
        (HostUnavailable("connection refused"), 400, "host_unreachable", "base_url"),
        (UnsafeInput("private address"), 400, "unsafe_url", "base_url"),
        (
            ValidationError("needs the organization", code="organization_required"),
            400,
            "organization_required",
            "namespace",
        ),
        (HostError("server error 500"), 502, "host_error", None),
        (RateLimited("slow down"), 429, "rate_limited", None),
    ],
)
def test_host_errors_become_admin_errors(raised: AppError, status: int, code: str, field_path: str | None) -> None:
    with pytest.raises(AppError) as caught, host_checks.host_errors(GITHUB, "https://ghe.example.com", "acme"):
        raise raised
    error = caught.value
    assert (error.status, error.code) == (status, code)
    assert getattr(error, "field", None) == field_path
    if isinstance(raised, HostUnavailable):
        assert "https://ghe.example.com" in error.message


# --- the transactions, against a scripted host -------------------------------------


@dataclass
class ScriptedHost:
    account: str = "me"
    remotes: list[RemoteRepository] = field(default_factory=list)
    fail_validate: AppError | None = None
    deleted: list[str] = field(default_factory=list)
    fail_delete: dict[str, AppError] = field(default_factory=dict)
    closed: bool = False

    def validate_credentials(self) -> str:
        if self.fail_validate:
            raise self.fail_validate
        return self.account

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]:
        yield from self.remotes

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        if webhook_id in self.fail_delete:
            raise self.fail_delete[webhook_id]
        self.deleted.append(webhook_id)

    def close(self) -> None:
        self.closed = True


def remote(i: int) -> RemoteRepository:
    return RemoteRepository(external_id=str(i), name=f"acme/r{i}", clone_url=f"https://github.com/acme/r{i}.git")


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> ScriptedHost:
    scripted = ScriptedHost(remotes=[remote(1), remote(2), remote(3)])
    monkeypatch.setattr(host_checks, "build_host", lambda config: scripted)
    monkeypatch.setattr(host_checks, "check_url", lambda url, **kw: None)  # no DNS for example.com names
    return scripted


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def start(session: Session, integration: Integration) -> bool:
        calls.append(integration.id)
        return True

    monkeypatch.setattr(scheduler, "start_integration", start)
    monkeypatch.setattr(
        scheduler, "request_discovery", lambda session, integration, *a, **kw: start(session, integration)
    )
    return calls


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield db.session()


@pytest.fixture
def tenant(session: Session) -> Tenant:
    now = utcnow()
    row = Tenant(
        client_key=f"svc-{secrets.token_hex(4)}",
        base_url="https://svc.atlassian.net",
        shared_secret_encrypted=runtime().secrets.encrypt("s" * 32),
        installed_at=now,
        secret_rotated_at=now,
    )
    session.add(row)
    session.commit()
    return row


def github_request(**overrides: Any) -> Any:
    body = {"provider": "github", "base_url": "https://api.example.com", "auth": {"type": "pat", "token": "tok-1"}}
    body.update(overrides)
    return parse_create(body)


def rows(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_create_stores_everything_in_one_transaction(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int]
) -> None:
    request = github_request(repositories=["1", "acme/r3"], settings={"features": {"smart_commits": False}})
    created = admin.create(session, tenant.id, request, created_by="acct-1", allow_private=False)
    assert created.repositories_added == 2 and created.indexing_started and host.closed
    integration = created.integration
    assert (integration.account_name, integration.display_name) == ("me", "GitHub (me)")
    assert credentials_of(integration).token == "tok-1"
    assert feature_enabled(integration, Feature.SMART_COMMITS) is False
    assert feature_enabled(integration, Feature.CREATE_PULL_REQUEST) is True
    assert started == [integration.id]


def test_nothing_is_half_created_when_a_write_fails(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: Any, **_kw: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(admin, "add_repositories", broken)
    with pytest.raises(RuntimeError):
        admin.create(session, tenant.id, github_request(repositories=["1"]), created_by=None, allow_private=False)
    assert rows(session, Integration) == 0 and rows(session, Repository) == 0 and started == []


def test_refused_credentials_store_nothing(session: Session, tenant: Tenant, host: ScriptedHost) -> None:
    host.fail_validate = HostAuthError("GitHub refused the token (401)")
    with pytest.raises(FieldError) as caught:
        admin.create(session, tenant.id, github_request(), created_by=None, allow_private=False)
    assert caught.value.code == "bad_credentials" and caught.value.status == 400
    assert rows(session, Integration) == 0


def test_create_with_the_queue_down_keeps_the_integration_and_says_so(
    session: Session, tenant: Tenant, host: ScriptedHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_a: Any, **_kw: Any) -> bool:
        raise RedisConnectionError("refused")

    monkeypatch.setattr(scheduler, "start_integration", down)
    created = admin.create(session, tenant.id, github_request(), created_by=None, allow_private=False)
    assert created.indexing_started is False and created.note and "Redis" in created.note
    assert rows(session, Integration) == 1  # the dispatcher discovers never-discovered integrations


def test_duplicates(session: Session, tenant: Tenant, host: ScriptedHost, started: list[int]) -> None:
    admin.create(session, tenant.id, github_request(), created_by=None, allow_private=False)
    for spelling in ("https://api.example.com/", "HTTPS://API.EXAMPLE.COM"):
        with pytest.raises(Conflict):
            admin.create(session, tenant.id, github_request(base_url=spelling), created_by=None, allow_private=False)
    admin.create(session, tenant.id, github_request(namespace="acme"), created_by=None, allow_private=False)
    other_token = github_request(auth={"type": "pat", "token": "tok-2"})
    admin.create(session, tenant.id, other_token, created_by=None, allow_private=False)
    assert rows(session, Integration) == 3


def test_update_applies_nothing_when_the_new_credentials_fail(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int]
) -> None:
    created = admin.create(session, tenant.id, github_request(), created_by=None, allow_private=False)
    host.fail_validate = HostPermissionDenied("The token lacks scope(s): repo")
    patch = parse_integration_patch({"display_name": "new", "auth": {"type": "pat", "token": "tok-9"}}, GITHUB)
    with pytest.raises(FieldError):
        admin.update_integration(session, created.integration, patch, allow_private=False)
    session.expire_all()
    stored = session.get(Integration, created.integration.id)
    assert stored is not None and stored.display_name != "new" and credentials_of(stored).token == "tok-1"


def test_delete_reports_each_webhook(session: Session, tenant: Tenant, host: ScriptedHost, started: list[int]) -> None:
    created = admin.create(
        session, tenant.id, github_request(repositories=["1", "2", "3"]), created_by=None, allow_private=False
    )
    repos = list(session.scalars(select(Repository).order_by(Repository.external_id)))
    for repo, hook in zip(repos, ("h1", "h2", None), strict=True):
        repo.webhook_id = hook
    session.add(
        IndexRun(
            tenant_id=tenant.id, integration_id=created.integration.id, repository_id=repos[0].id, trigger="manual"
        )
    )
    session.commit()
    host.fail_delete["h2"] = HostPermissionDenied("the token may not manage hooks")
    result = admin.delete_integration(session, created.integration, allow_private=False)
    assert host.deleted == ["h1"]
    assert [(o.webhook_id, o.deleted, o.error) for o in result.webhooks] == [
        ("h1", True, None),
        ("h2", False, "the token may not manage hooks"),
    ]
    assert rows(session, Integration) == rows(session, Repository) == rows(session, IndexRun) == 0


def test_delete_stops_calling_the_host_when_its_time_is_up(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    created = admin.create(session, tenant.id, github_request(repositories=["1"]), created_by=None, allow_private=False)
    session.scalars(select(Repository)).one().webhook_id = "h1"
    session.commit()
    monkeypatch.setattr(admin, "WEBHOOK_DELETE_BUDGET_SECONDS", -1.0)
    result = admin.delete_integration(session, created.integration, allow_private=False)
    (outcome,) = result.webhooks
    assert not outcome.deleted and "not attempted" in (outcome.error or "")
    assert host.deleted == [] and rows(session, Integration) == 0


# --- what the admin reads ----------------------------------------------------------


def _integration(**fields: Any) -> Integration:
    base = {
        "provider": "github",
        "status": IntegrationStatus.ACTIVE.value,
        "features": {},
        "last_discovered_at": utcnow(),
    }
    return Integration(**{**base, **fields})


def _stats(**by_status: int) -> IntegrationStats:
    stats = IntegrationStats(repositories=sum(by_status.values()))
    stats.by_status.update(by_status)
    return stats


@pytest.mark.parametrize(
    ("integration", "stats", "expected"),
    [
        (_integration(status="disabled"), _stats(failed=1), Status.DISABLED),
        (_integration(status="auth_failed", status_detail="401"), _stats(ok=2), Status.ERROR),
        (_integration(), _stats(ok=2, queued=1), Status.INDEXING),
        (_integration(), _stats(ok=2, new=1), Status.INDEXING),
        (_integration(), _stats(ok=1, rate_limited=1, failed=1), Status.RATE_LIMITED),
        (_integration(), _stats(ok=1, failed=1), Status.ERROR),
        (_integration(), _stats(ok=3), Status.INDEXED),
        (_integration(last_discovered_at=None), _stats(), Status.PENDING),
        (_integration(), _stats(), Status.INDEXED),
    ],
)
def test_status_word(integration: Integration, stats: IntegrationStats, expected: str) -> None:
    assert integration_status(integration, stats)[0] == expected


def test_a_running_discovery_means_indexing() -> None:
    stats = _stats(ok=1)
    stats.discovery = IndexRun(status="running", kind="discover")
    assert integration_status(_integration(), stats) == (Status.INDEXING, None)
    stats.discovery = IndexRun(status="failed", kind="discover", error="GitHub at x answered 404")
    assert integration_status(_integration(last_discovered_at=None), _stats()) == (Status.PENDING, None)
    never = _stats()
    never.discovery = stats.discovery
    assert integration_status(_integration(last_discovered_at=None), never) == (
        Status.ERROR,
        "GitHub at x answered 404",
    )


def test_features_of_never_reports_what_the_host_cannot_do() -> None:
    git = _integration(provider="git", features={"create_pull_request": True, "webhooks": True, "smart_commits": False})
    assert features_of(git) == {
        "create_branch": True,
        "create_pull_request": False,
        "smart_commits": False,
        "development_panel": True,
        "webhooks": False,
    }
    assert branch_name_template(git) == DEFAULT_BRANCH_TEMPLATE
    git.features = {"branch_name_template": "${issuekey}"}
    assert branch_name_template(git) == "${issuekey}"


def test_repositories_statuses_are_known_to_the_status_word() -> None:
    counted = {"ok", "new", "queued", "indexing", "failed", "rate_limited"}
    assert counted | {"removed"} == {s.value for s in RepositoryStatus}


def test_connection_of_uses_the_stored_credentials(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int]
) -> None:
    created = admin.create(session, tenant.id, github_request(namespace="acme"), created_by=None, allow_private=False)
    conn = admin.connection_of(created.integration)
    assert conn == ConnectionRequest(
        GITHUB, Credentials(AuthType.PAT, token="tok-1"), "https://api.example.com", "acme"
    )


def test_recommended_interval_leaves_room_for_a_whole_pass(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int]
) -> None:
    integration = admin.create(session, tenant.id, github_request(), created_by=None, allow_private=False).integration
    assert recommended_interval(session, integration, 10, 2) == IntervalHint(None, 0, None)
    start = utcnow()
    for seconds in (500, 700):  # average 10 minutes a run
        session.add(
            IndexRun(
                tenant_id=tenant.id,
                integration_id=integration.id,
                trigger="scheduled",
                status="done",
                started_at=start,
                finished_at=start + timedelta(seconds=seconds),
            )
        )
    session.add(
        IndexRun(
            tenant_id=tenant.id,
            integration_id=integration.id,
            trigger="manual",
            status="failed",
            started_at=start,
            finished_at=start + timedelta(hours=5),
        )
    )  # failures do not count
    session.commit()
    # 10 repositories, 2 at a time: a pass takes 50 minutes; four passes' room: 200 minutes
    assert recommended_interval(session, integration, 10, 2) == IntervalHint(200, 2, 600.0)
    assert recommended_interval(session, integration, 1, 2).minutes == 40  # one repository: one run at a time
    assert recommended_interval(session, integration, 1000, 1).minutes == 24 * 60
    quick = admin.create(session, tenant.id, github_request(namespace="quick"), created_by=None, allow_private=False)
    session.add(
        IndexRun(
            tenant_id=tenant.id,
            integration_id=quick.integration.id,
            trigger="scheduled",
            status="done",
            started_at=start,
            finished_at=start + timedelta(seconds=3),
        )
    )
    session.commit()
    assert recommended_interval(session, quick.integration, 3, 2).minutes == 15  # never below the adaptive floor


# --- what a change sets off (connect_app.services.integration_effects) --------------


@dataclass
class FollowUps:
    hooks: list[int] = field(default_factory=list)
    jira: list[int] = field(default_factory=list)


@pytest.fixture
def follow_ups(monkeypatch: pytest.MonkeyPatch) -> FollowUps:
    from connect_app.indexing import webhook_sync
    from connect_app.jira import visibility

    calls = FollowUps()
    monkeypatch.setattr(webhook_sync, "request_sync", lambda integration: calls.hooks.append(integration.id) or True)
    monkeypatch.setattr(
        visibility, "request_reconcile", lambda integration_id: calls.jira.append(integration_id) or True
    )
    return calls


def settings_log(session: Session, integration: Integration) -> list[tuple[str, int | None]]:
    rows = session.scalars(
        select(IntegrationEvent)
        .where(IntegrationEvent.integration_id == integration.id, IntegrationEvent.source == "settings")
        .order_by(IntegrationEvent.id)
    )
    return [(e.detail["code"], e.repository_id) for e in rows]


@pytest.mark.parametrize(
    ("patch", "codes", "hooks", "jira"),
    [
        ({"enabled": False}, ["integration_disabled"], True, True),
        ({"settings": {"features": {"webhooks": False}}}, ["webhooks_off"], True, False),
        ({"settings": {"features": {"development_panel": False}}}, ["development_panel_off"], False, True),
        ({"settings": {"features": {"smart_commits": False}}}, ["smart_commits_off"], False, False),
        ({"display_name": "renamed"}, [], False, False),
        ({"settings": {"features": {"webhooks": True}}}, [], False, False),  # on already: no change
    ],
)
def test_switches_are_logged_and_followed_up_after_the_commit(
    session: Session,
    tenant: Tenant,
    host: ScriptedHost,
    started: list[int],
    follow_ups: FollowUps,
    patch: dict[str, Any],
    codes: list[str],
    hooks: bool,
    jira: bool,
) -> None:
    integration = admin.create(session, tenant.id, github_request(), created_by=None, allow_private=False).integration
    admin.update_integration(session, integration, parse_integration_patch(patch, GITHUB), allow_private=False)
    assert [code for code, _ in settings_log(session, integration)] == codes
    assert follow_ups.hooks == ([integration.id] if hooks else [])
    assert follow_ups.jira == ([integration.id] if jira else [])


def test_switching_back_on_is_logged_too(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int], follow_ups: FollowUps
) -> None:
    integration = admin.create(session, tenant.id, github_request(), created_by=None, allow_private=False).integration
    for enabled in (False, True):
        admin.update_integration(
            session, integration, parse_integration_patch({"enabled": enabled}, GITHUB), allow_private=False
        )
    assert settings_log(session, integration) == [("integration_disabled", None), ("integration_enabled", None)]
    assert follow_ups.hooks == follow_ups.jira == [integration.id, integration.id]
    assert started == [integration.id, integration.id]  # enabling again also rediscovers


def test_a_repository_switched_off_or_on_is_logged_and_followed_up(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int], follow_ups: FollowUps
) -> None:
    from connect_app.services.admin_input import parse_repository_patch

    created = admin.create(session, tenant.id, github_request(repositories=["1"]), created_by=None, allow_private=False)
    repo = session.scalars(select(Repository)).one()
    admin.update_repository(session, repo, parse_repository_patch({"project_keys": ["ABC"]}))
    assert follow_ups.hooks == [] and settings_log(session, created.integration) == []
    admin.update_repository(session, repo, parse_repository_patch({"enabled": False}))
    admin.update_repository(session, repo, parse_repository_patch({"enabled": False}))  # no change: nothing more
    admin.update_repository(session, repo, parse_repository_patch({"enabled": True}))
    assert settings_log(session, created.integration) == [
        ("repository_disabled", repo.id),
        ("repository_enabled", repo.id),
    ]
    assert follow_ups.hooks == follow_ups.jira == [created.integration.id] * 2


def test_picking_repositories_follows_up(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int], follow_ups: FollowUps
) -> None:
    created = admin.create(session, tenant.id, github_request(repositories=["1"]), created_by=None, allow_private=False)
    result = admin.add_picked(session, created.integration, ("2",), allow_private=False)
    assert result.repositories_added == 1 and result.note is None
    assert follow_ups.hooks == follow_ups.jira == [created.integration.id]


def test_a_queue_that_is_down_is_a_note_not_an_error(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from connect_app.indexing import followup_jobs

    def down(*_a: Any, **_kw: Any) -> bool:
        raise RedisConnectionError("refused")

    monkeypatch.setattr(followup_jobs, "request", down)
    integration = admin.create(session, tenant.id, github_request(), created_by=None, allow_private=False).integration
    result = admin.update_integration(
        session, integration, parse_integration_patch({"enabled": False}, GITHUB), allow_private=False
    )
    assert result.note and "Redis" in result.note
    session.expire_all()
    assert session.get(Integration, integration.id).status == "disabled"  # type: ignore[union-attr]
    assert [c for c, _ in settings_log(session, integration)] == ["integration_disabled"]


def test_deleting_cancels_the_follow_up_jobs_too(
    session: Session, tenant: Tenant, host: ScriptedHost, started: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(admin, "cancel_jobs", lambda conn, ids: asked.extend(ids) or 0)
    integration = admin.create(session, tenant.id, github_request(), created_by=None, allow_private=False).integration
    admin.delete_integration(session, integration, allow_private=False)
    iid = integration.id
    assert {
        f"webhooks-{iid}",
        f"webhooks-{iid}-again",
        f"jira-visibility-{iid}",
        f"jira-visibility-{iid}-again",
    } <= set(asked)
