"""Shared by the user token tests: GitHub served by Prism from GitHub's own description (one
repository the token can read, one it cannot), integrations pointing at it, and tokens written
straight to the table for tests that fake the host.

``github_users`` (session fixture; import it into a test module): Prism with
``GET /user`` (the account: ``octocat``) and ``GET /repos/{owner}/{repo}`` (GitHub's example,
``permissions.pull`` true: READ). ``GET /repos/acme/hidden`` answers only the description's
own 404, which is what GitHub answers for a private repository the token cannot see.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.integrations import NewIntegration, add_repositories, create_integration, encode_credentials
from connect_app.models import Integration, Repository, UserToken, utcnow
from connect_app.runtime import runtime
from tests.support.prism import PrismMock, accept_github_media_types, github_spec_path

HIDDEN_REPO = "acme/hidden"
OPEN_REPO = "acme/open"
_HIDDEN_PATH = f"/repos/{HIDDEN_REPO}"
GITHUB_PATHS = ["/user", "/repos/{owner}/{repo}", _HIDDEN_PATH]
USER_TOKEN = "ghp_UserOwnToken0123456789abcdefWXYZ"


def _hidden_repository(doc: dict[str, Any]) -> None:
    accept_github_media_types(doc)
    get = copy.deepcopy(doc["paths"]["/repos/{owner}/{repo}"]["get"])
    get["parameters"] = [
        p for p in get.get("parameters", []) if (p.get("$ref") or "").rsplit("/", 1)[-1] not in ("owner", "repo")
    ]
    get["responses"] = {"404": get["responses"]["404"]}
    get["operationId"] = f"{get['operationId']}-hidden"
    doc["paths"][_HIDDEN_PATH] = {"get": get}


_shared: dict[str, Any] = {}


@pytest.fixture(scope="session")
def github_users() -> Iterator[PrismMock]:
    """One mock for every module that imports this fixture (each import is its own fixture
    definition to pytest): started by the first, stopped after the last."""
    if "mock" not in _shared:
        _shared["mock"] = PrismMock(github_spec_path(), paths=GITHUB_PATHS, transform=_hidden_repository).start()
        _shared["users"] = 0
    _shared["users"] += 1
    mock: PrismMock = _shared["mock"]
    try:
        yield mock
    finally:
        _shared["users"] -= 1
        if not _shared["users"]:
            _shared.clear()
            mock.stop()


def github_integration(
    session: Any,
    tenant_id: int,
    base_url: str | None,
    *,
    name: str = "acme",
    enforce_permissions: bool = False,
    require_user_pat: bool = False,
    provider: ProviderId = ProviderId.GITHUB,
) -> Integration:
    integration = create_integration(
        session,
        tenant_id,
        NewIntegration(
            provider=provider,
            credentials=Credentials(AuthType.PAT, token="ghp_AdminToken-" + name),
            display_name=name,
            base_url=base_url,
            enforce_permissions=enforce_permissions,
            require_user_pat=require_user_pat,
        ),
    )
    session.commit()
    return integration


def repositories(session: Any, integration: Integration, *names: str) -> list[Repository]:
    added = add_repositories(
        session,
        integration,
        [
            RemoteRepository(
                external_id=f"{integration.id}-{name}",
                name=name,
                clone_url=f"https://github.com/{name}.git",
                web_url=f"https://github.com/{name}",
                default_branch="main",
            )
            for name in names
        ],
    )
    for repo in added:
        repo.last_indexed_at = utcnow()
    session.commit()
    return added


def stored_token(
    session: Any, tenant_id: int, account_id: str, integration: Integration, token: str = USER_TOKEN
) -> UserToken:
    """A token as ``save_token`` would store it, without asking the host."""
    row = UserToken(
        tenant_id=tenant_id,
        account_id=account_id,
        integration_id=integration.id,
        credentials_encrypted=runtime().secrets.encrypt(encode_credentials(Credentials(AuthType.PAT, token=token))),
        last4=token[-4:],
        host_account_name="octocat",
        validated_at=utcnow(),
    )
    session.add(row)
    session.commit()
    return row


def token_rows(session: Any, tenant_id: int) -> list[UserToken]:
    return list(session.scalars(select(UserToken).where(UserToken.tenant_id == tenant_id)))
