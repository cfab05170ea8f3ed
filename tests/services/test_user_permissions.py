"""``services.user_permissions``: the permission checker behind "enforce git service permissions".

The host is GitHub served by Prism (``repository_permission`` with the user's token: READ for a
repository GitHub's example describes, its documented 404 for one the token cannot see), or a
scripted ``ask`` where the point is the checker's own behaviour: cache TTL, failures kept briefly,
bounded concurrency, the overall time budget, refused tokens, tenants."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from connect_app.errors import HostAuthError, HostUnavailable
from connect_app.extensions import db
from connect_app.hosts.base import Permission
from connect_app.models import Integration, Repository, UserRepositoryPermission, UserToken, utcnow
from connect_app.services import user_permission_cache, user_tokens
from connect_app.services.development import permission_checker
from connect_app.services.user_permissions import PermissionCheck, UserTokenPermissions, forget
from tests.support.connect import JiraSite
from tests.support.prism import PrismMock
from tests.web.development_data import tenant_id_of
from tests.web.user_token_support import (
    HIDDEN_REPO,
    OPEN_REPO,
    USER_TOKEN,
    github_integration,
    github_users,
    repositories,
    stored_token,
)

__all__ = ["github_users"]  # fixtures used by name

ALICE = "acct-alice"


@pytest.fixture
def ctx(app: Flask) -> Iterator[Any]:
    with app.app_context():
        yield db.session()


@pytest.fixture
def tenant(ctx: Any, installed_site: JiraSite) -> int:
    return tenant_id_of(installed_site)


@dataclass
class Host:
    """A scripted ``ask``: answers per repository name, counts calls."""

    answers: dict[str, Permission | Exception] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, check: PermissionCheck) -> Permission:
        with self.lock:
            self.asked.append(check.repository.name)
        answer = self.answers.get(check.repository.name, Permission.NONE)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Setup:
    integration: Integration
    repos: dict[str, Repository]

    def ids(self, *names: str) -> frozenset[int]:
        return frozenset(self.repos[n].id for n in names)

    def candidates(self, *names: str) -> dict[int, frozenset[int]]:
        return {self.integration.id: self.ids(*(names or tuple(self.repos)))}


def setup(ctx: Any, tenant: int, base_url: str | None = None, *names: str, token: bool = True) -> Setup:
    integration = github_integration(ctx, tenant, base_url, enforce_permissions=True)
    repos = repositories(ctx, integration, *(names or ("acme/a", "acme/b", "acme/c")))
    if token:
        stored_token(ctx, tenant, ALICE, integration)
    return Setup(integration, {r.name: r for r in repos})


def cached(ctx: Any, tenant: int) -> dict[int, int]:
    rows = ctx.execute(
        select(UserRepositoryPermission.repository_id, UserRepositoryPermission.permission).where(
            UserRepositoryPermission.tenant_id == tenant
        )
    )
    return {repo_id: permission for repo_id, permission in rows}


def checker(host: Host, clock: Clock | None = None, **kw: Any) -> UserTokenPermissions:
    return UserTokenPermissions(ask=host, clock=clock or Clock(), ttl_seconds=300, **kw)


# --------------------------------------------------------------------------- against Prism


@pytest.mark.slow
def test_the_host_is_asked_with_the_users_token(ctx: Any, tenant: int, github_users: PrismMock) -> None:
    s = setup(ctx, tenant, github_users.base_url, OPEN_REPO, HIDDEN_REPO)
    with github_users.recording() as rec:
        result = UserTokenPermissions().readable(ctx, tenant, ALICE, s.candidates())
    rec.assert_all_valid(min_requests=2)
    assert result == {s.integration.id: s.ids(OPEN_REPO)}
    assert {e.response.request.headers["Authorization"] for e in rec.exchanges} == {f"Bearer {USER_TOKEN}"}
    assert cached(ctx, tenant) == {s.repos[OPEN_REPO].id: Permission.READ, s.repos[HIDDEN_REPO].id: Permission.NONE}


def test_the_app_installs_this_checker(app: Flask) -> None:
    assert isinstance(permission_checker(), UserTokenPermissions)


# --------------------------------------------------------------------------- tokens and tenants


def test_without_a_usable_token_an_integration_is_none(ctx: Any, tenant: int) -> None:
    s = setup(ctx, tenant, token=False)
    host = Host()
    check = checker(host)
    assert check.readable(ctx, tenant, ALICE, s.candidates()) == {}
    assert check.readable(ctx, tenant, None, s.candidates()) == {}  # an app-only request has no user
    stored_token(ctx, tenant, ALICE, s.integration)
    user_tokens.mark_token_invalid(ctx, tenant, ALICE, s.integration.id, "revoked")
    ctx.commit()
    assert check.readable(ctx, tenant, ALICE, s.candidates()) == {}
    assert host.asked == []


def test_a_token_is_never_used_for_another_tenant(ctx: Any, tenant: int, other_site: JiraSite) -> None:
    s = setup(ctx, tenant)
    host = Host({"acme/a": Permission.READ})
    # the same account id, asking in the other tenant about this tenant's integration and repositories
    assert checker(host).readable(ctx, tenant_id_of(other_site), ALICE, s.candidates()) == {}
    assert host.asked == []


def test_a_refused_token_is_marked_invalid(ctx: Any, tenant: int) -> None:
    s = setup(ctx, tenant)
    host = Host({"acme/a": HostAuthError("api.github.com refused the credentials (401): Bad credentials")})
    assert checker(host).readable(ctx, tenant, ALICE, s.candidates()) == {}
    ctx.expire_all()
    assert user_tokens.user_credentials(ctx, tenant, ALICE, s.integration.id) is None
    (entry,) = user_tokens.list_tokens(ctx, tenant, ALICE)
    assert entry.token is not None and "Bad credentials" in (entry.token.invalid_reason or "")
    assert cached(ctx, tenant) == {}


# --------------------------------------------------------------------------- the cache


def test_answers_are_cached_for_the_ttl_then_asked_again(ctx: Any, tenant: int) -> None:
    s = setup(ctx, tenant)
    host = Host({"acme/a": Permission.READ, "acme/b": Permission.ADMIN, "acme/c": Permission.NONE})
    clock = Clock()
    check = checker(host, clock)
    expected = {s.integration.id: s.ids("acme/a", "acme/b")}
    assert check.readable(ctx, tenant, ALICE, s.candidates()) == expected
    assert sorted(host.asked) == ["acme/a", "acme/b", "acme/c"]

    clock.now += timedelta(seconds=299)
    assert check.readable(ctx, tenant, ALICE, s.candidates()) == expected
    assert len(host.asked) == 3  # within the TTL: not asked again

    host.answers["acme/a"] = Permission.NONE  # access removed on the host
    clock.now += timedelta(seconds=2)
    assert check.readable(ctx, tenant, ALICE, s.candidates()) == {s.integration.id: s.ids("acme/b")}
    assert len(host.asked) == 6


def test_forget_makes_the_next_view_ask_again(ctx: Any, tenant: int) -> None:
    s = setup(ctx, tenant)
    host = Host({"acme/a": Permission.READ})
    check = checker(host)
    check.readable(ctx, tenant, ALICE, s.candidates())
    check.readable(ctx, tenant, ALICE, s.candidates())
    assert len(host.asked) == 3
    forget(ctx, tenant, ALICE)
    ctx.commit()
    assert cached(ctx, tenant) == {}
    check.readable(ctx, tenant, ALICE, s.candidates())
    assert len(host.asked) == 6


def test_host_failures_are_not_readable_and_remembered_briefly(ctx: Any, tenant: int) -> None:
    s = setup(ctx, tenant)
    host = Host({"acme/a": Permission.READ, "acme/b": HostUnavailable("api.github.com failed with 502")})
    clock = Clock()
    check = checker(host, clock)
    assert check.readable(ctx, tenant, ALICE, s.candidates()) == {s.integration.id: s.ids("acme/a")}
    assert s.repos["acme/b"].id not in cached(ctx, tenant)  # a failure is not an answer
    host.answers["acme/b"] = Permission.READ
    clock.now += timedelta(seconds=user_permission_cache.FAILURE_TTL_SECONDS - 1)
    assert check.readable(ctx, tenant, ALICE, s.candidates()) == {s.integration.id: s.ids("acme/a")}
    assert host.asked.count("acme/b") == 1  # not asked again while the failure is fresh
    clock.now += timedelta(seconds=2)
    assert check.readable(ctx, tenant, ALICE, s.candidates()) == {s.integration.id: s.ids("acme/a", "acme/b")}
    assert host.asked.count("acme/b") == 2


def test_one_query_when_everything_is_cached(ctx: Any, tenant: int) -> None:
    from sqlalchemy import event

    s = setup(ctx, tenant)
    check = checker(Host({"acme/a": Permission.READ}))
    check.readable(ctx, tenant, ALICE, s.candidates())
    statements: list[str] = []
    engine = ctx.get_bind()

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        check.readable(ctx, tenant, ALICE, s.candidates())
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements


# --------------------------------------------------------------------------- bounded calls


def test_calls_run_concurrently_but_no_more_than_the_bound(ctx: Any, tenant: int) -> None:
    names = tuple(f"acme/r{i}" for i in range(6))
    s = setup(ctx, tenant, None, *names)
    lock = threading.Lock()
    running = {"now": 0, "peak": 0}
    together = threading.Barrier(2, timeout=10)  # passes only when two calls run at the same time

    def ask(check: PermissionCheck) -> Permission:
        with lock:
            running["now"] += 1
            running["peak"] = max(running["peak"], running["now"])
        try:
            together.wait()
        finally:
            with lock:
                running["now"] -= 1
        return Permission.READ

    result = UserTokenPermissions(ask=ask, max_concurrent=2, time_budget_seconds=30).readable(
        ctx, tenant, ALICE, s.candidates()
    )
    assert result == {s.integration.id: s.ids(*names)}
    assert running["peak"] == 2


def test_the_time_budget_caps_a_hanging_host(ctx: Any, tenant: int) -> None:
    s = setup(ctx, tenant)
    release = threading.Event()

    def ask(check: PermissionCheck) -> Permission:
        if check.repository.name == "acme/b":
            release.wait(30)  # a host that does not answer
        return Permission.READ

    try:
        result = UserTokenPermissions(ask=ask, time_budget_seconds=0.5).readable(ctx, tenant, ALICE, s.candidates())
    finally:
        release.set()
    # the panel gets what arrived in time; the late one counts as not readable now, not cached
    assert result == {s.integration.id: s.ids("acme/a", "acme/c")}
    assert set(cached(ctx, tenant)) == set(s.ids("acme/a", "acme/c"))
    failed = user_permission_cache.FailureMarks().recent(tenant, ALICE, utcnow())
    assert {repo_id for _token, repo_id in failed} == set(s.ids("acme/b"))


def test_a_crashing_host_module_does_not_break_the_panel(ctx: Any, tenant: int) -> None:
    s = setup(ctx, tenant)
    host = Host({"acme/a": Permission.WRITE, "acme/b": RuntimeError("bug")})
    assert checker(host).readable(ctx, tenant, ALICE, s.candidates()) == {s.integration.id: s.ids("acme/a")}


def test_a_token_that_cannot_be_decrypted_shows_nothing_without_failing(ctx: Any, tenant: int) -> None:
    s = setup(ctx, tenant)
    (token,) = ctx.scalars(select(UserToken).where(UserToken.tenant_id == tenant)).all()
    token.credentials_encrypted = "gAAAAA-not-a-fernet-token"  # e.g. its key was removed from ENCRYPTION_KEYS
    ctx.commit()
    host = Host({"acme/a": Permission.READ})
    assert checker(host).readable(ctx, tenant, ALICE, s.candidates()) == {s.integration.id: frozenset()}
    assert host.asked == []
