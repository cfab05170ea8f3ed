"""``services.user_tokens``: a user's own token is checked live with the integration's host
(GitHub served by Prism from GitHub's description; a refusing GitHub stub answering GitHub's
documented 401; a real git server over HTTP for plain git) before it is stored encrypted;
tenants never see each other's integrations; invalid and deleted tokens stop being used and
take their cached permissions with them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from connect_app.errors import NotFound, ValidationError
from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials, Permission, ProviderId
from connect_app.models import IntegrationStatus, UserRepositoryPermission, UserToken, utcnow
from connect_app.services import user_tokens
from connect_app.services.user_tokens import TokenRefused
from tests.support.connect import JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.prism import PrismMock
from tests.web.development_data import tenant_id_of
from tests.web.fake_github import GOOD_TOKEN, NARROW_TOKEN, FakeGitHub, fake_github
from tests.web.user_token_support import (
    USER_TOKEN,
    github_integration,
    github_users,
    repositories,
    stored_token,
    token_rows,
)

__all__ = ["fake_github", "github_users"]  # fixtures used by name

ALICE = "acct-alice"
BOB = "acct-bob"


@pytest.fixture
def ctx(app: Flask) -> Iterator[Any]:
    with app.app_context():
        yield db.session()


@pytest.fixture
def tenant(ctx: Any, installed_site: JiraSite) -> int:
    return tenant_id_of(installed_site)


def cache_row(session: Any, tenant_id: int, token: UserToken, repo_id: int) -> None:
    session.add(
        UserRepositoryPermission(
            tenant_id=tenant_id,
            account_id=token.account_id,
            repository_id=repo_id,
            user_token_id=token.id,
            permission=int(Permission.READ),
            checked_at=utcnow(),
        )
    )
    session.commit()


def cached_repo_ids(session: Any, tenant_id: int, account_id: str) -> set[int]:
    stmt = select(UserRepositoryPermission.repository_id).where(
        UserRepositoryPermission.tenant_id == tenant_id, UserRepositoryPermission.account_id == account_id
    )
    return set(session.scalars(stmt))


# --------------------------------------------------------------------------- saving


@pytest.mark.slow
def test_a_token_the_host_accepts_is_stored_encrypted(ctx: Any, tenant: int, github_users: PrismMock) -> None:
    integration = github_integration(ctx, tenant, github_users.base_url, require_user_pat=True)
    with github_users.recording() as rec:
        entry = user_tokens.save_token(ctx, tenant, ALICE, integration.id, f"  {USER_TOKEN}\n")
        ctx.commit()
    rec.assert_all_valid()
    # the host was asked with the user's token, not the integration's
    assert [e.url.rsplit("/", 1)[-1] for e in rec.exchanges] == ["user"]
    assert rec.exchanges[0].response.request.headers["Authorization"] == f"Bearer {USER_TOKEN}"

    assert entry.required and entry.token is not None
    assert entry.token.last4 == "WXYZ" and entry.token.host_account_name == "octocat"
    assert entry.token.validated_at is not None and entry.token.invalid_reason is None
    # only ciphertext in the database: read every column of the raw row
    raw = ctx.execute(text("SELECT * FROM user_token")).all()
    assert len(raw) == 1 and USER_TOKEN not in repr(raw) and USER_TOKEN[4:-4] not in repr(raw)
    assert user_tokens.user_credentials(ctx, tenant, ALICE, integration.id) == Credentials(
        AuthType.PAT, token=USER_TOKEN
    )
    assert user_tokens.user_credentials(ctx, tenant, BOB, integration.id) is None  # Alice's, not Bob's


def test_a_refused_token_stores_nothing_and_says_why(ctx: Any, tenant: int, fake_github: FakeGitHub) -> None:
    integration = github_integration(ctx, tenant, fake_github.url, name="Acme GitHub")
    with pytest.raises(TokenRefused) as caught:
        user_tokens.save_token(ctx, tenant, ALICE, integration.id, "ghp_expired0123456789")
    message = caught.value.message
    assert caught.value.status == 400 and caught.value.code == "token_refused"
    assert "Acme GitHub (GitHub) did not accept this token" in message and "Bad credentials" in message
    assert "ghp_expired0123456789" not in message
    assert token_rows(ctx, tenant) == []


def test_a_token_without_the_repo_scope_is_refused(ctx: Any, tenant: int, fake_github: FakeGitHub) -> None:
    integration = github_integration(ctx, tenant, fake_github.url)
    with pytest.raises(TokenRefused) as caught:
        user_tokens.save_token(ctx, tenant, ALICE, integration.id, NARROW_TOKEN)
    assert "repo" in caught.value.message and "not enough" in caught.value.message
    assert token_rows(ctx, tenant) == []
    # a user token is not asked for webhook scopes: only the integration registers webhooks
    fake_github.scopes[GOOD_TOKEN] = "repo"
    assert user_tokens.save_token(ctx, tenant, ALICE, integration.id, GOOD_TOKEN).token is not None


def test_bad_input_is_refused_before_the_host_is_asked(ctx: Any, tenant: int, fake_github: FakeGitHub) -> None:
    integration = github_integration(ctx, tenant, fake_github.url)
    for bad, code in (("   ", "token_required"), ("ghp_two words", "token_malformed"), ("x" * 5000, "token_too_long")):
        with pytest.raises(ValidationError) as caught:
            user_tokens.save_token(ctx, tenant, ALICE, integration.id, bad)
        assert caught.value.code == code
    assert fake_github.seen == [] and token_rows(ctx, tenant) == []


def test_another_tenants_or_a_disabled_integration_is_not_found(
    ctx: Any,
    tenant: int,
    other_site: JiraSite,
    fake_github: FakeGitHub,
) -> None:
    theirs = github_integration(ctx, tenant_id_of(other_site), fake_github.url, name="theirs")
    disabled = github_integration(ctx, tenant, fake_github.url, name="off")
    disabled.status = IntegrationStatus.DISABLED.value
    ctx.commit()
    for integration_id in (theirs.id, disabled.id, 2**40):
        with pytest.raises(NotFound):
            user_tokens.save_token(ctx, tenant, ALICE, integration_id, GOOD_TOKEN)
        with pytest.raises(NotFound):
            user_tokens.delete_token(ctx, tenant, ALICE, integration_id)
    assert fake_github.seen == [] and token_rows(ctx, tenant_id_of(other_site)) == []
    assert [e.integration.display_name for e in user_tokens.list_tokens(ctx, tenant, ALICE)] == []


def test_replacing_a_token_drops_its_cached_permissions(ctx: Any, tenant: int, fake_github: FakeGitHub) -> None:
    integration = github_integration(ctx, tenant, fake_github.url)
    (repo,) = repositories(ctx, integration, "acme/widgets")
    token = stored_token(ctx, tenant, ALICE, integration)
    cache_row(ctx, tenant, token, repo.id)
    user_tokens.save_token(ctx, tenant, ALICE, integration.id, GOOD_TOKEN)
    ctx.commit()
    assert cached_repo_ids(ctx, tenant, ALICE) == set()
    assert [t.id for t in token_rows(ctx, tenant)] == [token.id]  # replaced in place: one token per integration
    assert user_tokens.user_credentials(ctx, tenant, ALICE, integration.id) == Credentials(
        AuthType.PAT, token=GOOD_TOKEN
    )


# --------------------------------------------------------------------------- plain git


def test_plain_git_checks_the_users_password_with_git_itself(ctx: Any, tenant: int, git_repo: ServedRepo) -> None:
    server = git_repo.server
    integration = github_integration(ctx, tenant, git_repo.url, name="plain", provider=ProviderId.GIT)
    with pytest.raises(TokenRefused) as caught:
        user_tokens.save_token(ctx, tenant, ALICE, integration.id, "wrong-password-123", username=server.username)
    assert "did not accept this token" in caught.value.message and "wrong-password-123" not in caught.value.message
    assert token_rows(ctx, tenant) == []

    entry = user_tokens.save_token(ctx, tenant, ALICE, integration.id, server.password or "", username=server.username)
    ctx.commit()
    assert entry.token is not None and entry.token.host_account_name == server.username
    assert user_tokens.user_credentials(ctx, tenant, ALICE, integration.id) == Credentials(
        AuthType.PASSWORD, username=server.username, password=server.password
    )
    assert any(r.user == server.username for r in server.requests)


# --------------------------------------------------------------------------- invalid and deleted


def test_mark_invalid_stops_use_and_drops_that_integrations_cache(ctx: Any, tenant: int) -> None:
    first = github_integration(ctx, tenant, None, name="first")
    second = github_integration(ctx, tenant, None, name="second")
    (repo1,) = repositories(ctx, first, "acme/one")
    (repo2,) = repositories(ctx, second, "acme/two")
    token1, token2 = stored_token(ctx, tenant, ALICE, first), stored_token(ctx, tenant, ALICE, second)
    cache_row(ctx, tenant, token1, repo1.id)
    cache_row(ctx, tenant, token2, repo2.id)

    user_tokens.mark_token_invalid(ctx, tenant, ALICE, first.id, "GitHub says the token was revoked.")
    ctx.commit()
    assert user_tokens.user_credentials(ctx, tenant, ALICE, first.id) is None
    assert user_tokens.user_credentials(ctx, tenant, ALICE, second.id) is not None
    assert cached_repo_ids(ctx, tenant, ALICE) == {repo2.id}
    entries = {e.integration.id: e for e in user_tokens.list_tokens(ctx, tenant, ALICE)}
    assert entries[first.id].token is not None
    assert entries[first.id].token.invalid_reason == "GitHub says the token was revoked."
    user_tokens.mark_token_invalid(ctx, tenant, BOB, first.id, "no token: nothing happens")


def test_recheck_marks_a_revoked_token_and_revives_a_good_one(
    ctx: Any,
    tenant: int,
    fake_github: FakeGitHub,
) -> None:
    integration = github_integration(ctx, tenant, fake_github.url)
    user_tokens.save_token(ctx, tenant, ALICE, integration.id, GOOD_TOKEN)
    ctx.commit()
    revoked = fake_github.scopes.pop(GOOD_TOKEN)
    result = user_tokens.recheck_token(ctx, tenant, ALICE, integration.id)
    ctx.commit()
    assert not result.ok and "did not accept this token" in result.message
    assert result.entry.token is not None and result.entry.token.invalid_reason == result.message
    assert user_tokens.user_credentials(ctx, tenant, ALICE, integration.id) is None

    fake_github.scopes[GOOD_TOKEN] = revoked
    result = user_tokens.recheck_token(ctx, tenant, ALICE, integration.id)
    assert result.ok and result.message == "acme (GitHub) accepted the token as octo-admin."
    assert user_tokens.user_credentials(ctx, tenant, ALICE, integration.id) is not None
    with pytest.raises(NotFound) as caught:
        user_tokens.recheck_token(ctx, tenant, BOB, integration.id)
    assert caught.value.code == "token_not_found"


def test_delete_removes_the_token_and_its_cached_permissions(ctx: Any, tenant: int) -> None:
    integration = github_integration(ctx, tenant, None)
    (repo,) = repositories(ctx, integration, "acme/widgets")
    cache_row(ctx, tenant, stored_token(ctx, tenant, ALICE, integration), repo.id)
    assert user_tokens.delete_token(ctx, tenant, ALICE, integration.id) is True
    ctx.commit()
    assert token_rows(ctx, tenant) == [] and cached_repo_ids(ctx, tenant, ALICE) == set()
    assert user_tokens.delete_token(ctx, tenant, ALICE, integration.id) is False


# --------------------------------------------------------------------------- listing and input


def test_list_shows_what_needs_a_token_first(ctx: Any, tenant: int, other_site: JiraSite) -> None:
    plain = github_integration(ctx, tenant, None, name="zeta")
    enforced = github_integration(ctx, tenant, None, name="Beta", enforce_permissions=True)
    pat = github_integration(ctx, tenant, None, name="alpha", require_user_pat=True)
    github_integration(ctx, tenant_id_of(other_site), None, name="theirs", enforce_permissions=True)
    stored_token(ctx, tenant, ALICE, plain)
    entries = user_tokens.list_tokens(ctx, tenant, ALICE)
    assert [(e.integration.id, e.required, e.token is not None) for e in entries] == [
        (pat.id, True, False),
        (enforced.id, True, False),
        (plain.id, False, True),
    ]
    assert all(e.auth_types == (AuthType.PAT,) for e in entries)
    assert all(e.token is None for e in user_tokens.list_tokens(ctx, tenant, BOB))


def test_credentials_from_input_follow_what_the_host_takes(ctx: Any, tenant: int) -> None:
    from connect_app.hosts.registry import provider_info

    integration = github_integration(ctx, tenant, None)

    def creds(provider: ProviderId, token: str, username: str | None = None) -> Credentials:
        return user_tokens.credentials_from_input(integration, provider_info(provider), token, username)

    assert creds(ProviderId.GITHUB, "t") == Credentials(AuthType.PAT, token="t")
    assert creds(ProviderId.BITBUCKET_CLOUD, "app-pw", "ann") == Credentials(
        AuthType.PASSWORD, username="ann", password="app-pw"
    )
    assert creds(ProviderId.BITBUCKET_CLOUD, "t") == Credentials(AuthType.PAT, token="t")
    assert creds(ProviderId.GERRIT, "http-pw", "ann").auth_type is AuthType.PASSWORD
    with pytest.raises(ValidationError) as caught:
        creds(ProviderId.GERRIT, "http-pw")
    assert caught.value.code == "username_required"
    with pytest.raises(ValidationError):
        creds(ProviderId.AWS_CODECOMMIT, "secret")
    assert user_tokens.last4("short") == "" and user_tokens.last4("0123456789abcdef") == "cdef"


def test_every_host_a_user_token_is_for_can_be_built_with_it(ctx: Any) -> None:
    from connect_app.hosts.registry import build_host, provider_info
    from connect_app.integrations import user_host_config
    from connect_app.models import Integration

    for provider in ProviderId:
        info = provider_info(provider)
        assert user_tokens.accepts_user_tokens(info), provider
        integration = Integration(
            provider=provider.value, base_url="https://git.example.com/team/repo.git", namespace="org"
        )
        auth = user_tokens.user_auth_types(info)[0]
        creds = Credentials(auth, token="t0ken", username="ann", password="pw", extra={"region": "eu-west-1"})
        host = build_host(user_host_config(integration, creds, max_wait_seconds=0.0))  # no host is called
        assert host.info.id is provider
