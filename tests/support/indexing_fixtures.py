"""pytest fixtures for the indexing engine: a tenant, plain-git integrations over the loopback
git server, Jira projects, and ways to compare the index with ``git rev-list --all``.

Registered from ``tests/conftest.py`` (``pytest_plugins``).

* ``indexing`` (function): an :class:`IndexingEnv` inside an app context, with an empty
  mirrors directory (SQLite reuses ids, so a mirror of an earlier test could otherwise match).
"""

from __future__ import annotations

import secrets
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from connect_app.config import Settings
from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.hosts.plain_git import repository_key
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.models import (
    Branch,
    Commit,
    IndexRun,
    Integration,
    IssueLink,
    JiraProject,
    Repository,
    Tag,
    Tenant,
    utcnow,
)
from connect_app.runtime import runtime
from tests.support.git_server import run_git


@dataclass
class IndexingEnv:
    app: Flask
    settings: Settings
    tenant_id: int

    @property
    def session(self) -> Any:
        return db.session()

    # -- setup
    def add_repository(
        self,
        clone_url: str,
        *,
        username: str | None = "alice",
        password: str | None = None,
        web_url: str | None = None,
        provider: ProviderId = ProviderId.GIT,
    ) -> Repository:
        """A plain-git integration for ``clone_url`` and its one repository (no network)."""
        creds = (
            Credentials(AuthType.PASSWORD, username=username, password=password)
            if password is not None
            else Credentials(AuthType.NONE)
        )
        integration = create_integration(
            self.session,
            self.tenant_id,
            NewIntegration(provider=provider, credentials=creds, display_name="test repo", base_url=clone_url),
        )
        external_id, name = repository_key(clone_url)
        remote = RemoteRepository(
            external_id=external_id, name=name, clone_url=clone_url, web_url=web_url, default_branch="main"
        )
        (repo,) = add_repositories(self.session, integration, [remote])
        self.session.commit()
        return repo

    def add_projects(self, *keys: str) -> None:
        for key in keys:
            self.session.add(JiraProject(tenant_id=self.tenant_id, key=key, project_id=str(abs(hash(key))), name=key))
        self.session.commit()

    # -- reading the index back
    def reload(self, repo: Repository) -> Repository:
        self.session.expire_all()
        fresh = self.session.get(Repository, repo.id)
        assert fresh is not None
        return fresh

    def commit_shas(self, repo: Repository) -> list[str]:
        return list(self.session.scalars(select(Commit.sha).where(Commit.repository_id == repo.id)))

    def assert_no_duplicates(self, repo: Repository) -> None:
        shas = Counter(self.commit_shas(repo))
        assert [s for s, n in shas.items() if n > 1] == []

    def links(self, repo: Repository) -> set[tuple[str, str, str, str]]:
        rows = self.session.execute(
            select(IssueLink.kind, IssueLink.ref, IssueLink.issue_key, IssueLink.source).where(
                IssueLink.repository_id == repo.id
            )
        )
        return {tuple(r) for r in rows}  # type: ignore[misc]

    def branches(self, repo: Repository) -> dict[str, str]:
        rows = self.session.execute(select(Branch.name, Branch.head_sha).where(Branch.repository_id == repo.id))
        return {name: sha for name, sha in rows}

    def branch_urls(self, repo: Repository) -> dict[str, str | None]:
        rows = self.session.execute(select(Branch.name, Branch.url).where(Branch.repository_id == repo.id))
        return {name: url for name, url in rows}

    def tags(self, repo: Repository) -> dict[str, str]:
        rows = self.session.execute(select(Tag.name, Tag.sha).where(Tag.repository_id == repo.id))
        return {name: sha for name, sha in rows}

    def runs(self, repo: Repository) -> list[IndexRun]:
        self.session.expire_all()
        return list(
            self.session.scalars(select(IndexRun).where(IndexRun.repository_id == repo.id).order_by(IndexRun.id))
        )

    def integration(self, repo: Repository) -> Integration:
        integration = self.session.get(Integration, repo.integration_id)
        assert integration is not None
        return integration

    def commit_count(self, repo: Repository) -> int:
        return int(self.session.scalar(select(func.count()).where(Commit.repository_id == repo.id)) or 0)


def rev_list_all(path: Any) -> set[str]:
    """Every commit reachable from a branch or tag of the bare repository at ``path``."""
    return set(run_git("rev-list", "--all", cwd=path).split())


def make_tenant(app: Flask) -> int:
    now = utcnow()
    tenant = Tenant(
        client_key=f"client-{secrets.token_hex(6)}",
        base_url="https://example.atlassian.net",
        shared_secret_encrypted=runtime(app).secrets.encrypt(secrets.token_urlsafe(32)),
        installed_at=now,
        secret_rotated_at=now,
    )
    db.session.add(tenant)
    db.session.commit()
    return tenant.id


@pytest.fixture
def indexing(app: Flask, settings: Settings) -> Iterator[IndexingEnv]:
    shutil.rmtree(settings.mirrors_dir, ignore_errors=True)
    with app.app_context():
        yield IndexingEnv(app, settings, make_tenant(app))
        db.session.remove()
    shutil.rmtree(settings.mirrors_dir, ignore_errors=True)
