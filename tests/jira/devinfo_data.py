"""Rows for the Development panel and smart-commit tests: a tenant installed through the
lifecycle (its Jira is tests/support/jira_stub.py), an integration, repositories, and linked
commits, branches and pull requests written straight to the tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.jira.client import JiraClient
from connect_app.models import (
    Branch,
    Commit,
    Integration,
    IssueLink,
    LinkKind,
    LinkSource,
    PullRequestRecord,
    Repository,
    Tenant,
    utcnow,
)
from tests.conftest import APP_KEY
from tests.support.connect import JiraSite


def tenant_of(site: JiraSite) -> Tenant:
    tenant = db.session.scalar(select(Tenant).where(Tenant.client_key == site.client_key))
    assert tenant is not None
    return tenant


def quick_client(site: JiraSite, base_url: str | None = None) -> JiraClient:
    """The app's signed client, without real sleeps on 429."""
    return JiraClient(
        base_url=base_url or site.base_url, app_key=APP_KEY, shared_secret=site.shared_secret, sleep=lambda s: None
    )


@dataclass
class GitData:
    tenant_id: int

    @property
    def session(self) -> Any:
        return db.session()

    def integration(self, name: str = "acme", **features: Any) -> Integration:
        integration = create_integration(
            self.session,
            self.tenant_id,
            NewIntegration(
                provider=ProviderId.GIT,
                credentials=Credentials(AuthType.NONE),
                display_name=name,
                base_url=f"https://git.example.com/{name}/",
            ),
        )
        integration.features = dict(features)
        self.session.commit()
        return integration

    def repository(self, integration: Integration, name: str = "widgets") -> Repository:
        (repo,) = add_repositories(
            self.session,
            integration,
            [
                RemoteRepository(
                    external_id=f"{integration.id}-{name}",
                    name=f"acme/{name}",
                    clone_url=f"https://git.example.com/acme/{name}.git",
                    web_url=f"https://git.example.com/acme/{name}",
                    default_branch="main",
                )
            ],
        )
        self.session.commit()
        return repo

    def link(self, repo: Repository, kind: LinkKind, ref: str, keys: list[str], source: LinkSource) -> None:
        for key in keys:
            self.session.add(
                IssueLink(
                    tenant_id=repo.tenant_id,
                    repository_id=repo.id,
                    issue_key=key,
                    project_key=key.rsplit("-", 1)[0],
                    kind=kind.value,
                    ref=ref,
                    source=source.value,
                )
            )

    def commit(
        self,
        repo: Repository,
        sha: str,
        message: str,
        keys: list[str] | None = None,
        *,
        when: datetime | None = None,
        author_email: str = "jane@example.com",
        parents: int = 1,
    ) -> Commit:
        when = when or utcnow() - timedelta(hours=1)
        commit = Commit(
            tenant_id=repo.tenant_id,
            repository_id=repo.id,
            sha=sha,
            author_name="Jane Doe",
            author_email=author_email,
            authored_at=when - timedelta(minutes=1),
            committed_at=when,
            message=message,
            files_changed=2,
            parent_count=parents,
            url=f"https://git.example.com/acme/widgets/commit/{sha}",
        )
        self.session.add(commit)
        if keys:
            self.link(repo, LinkKind.COMMIT, sha, keys, LinkSource.MESSAGE)
        self.session.commit()
        return commit

    def branch(
        self, repo: Repository, name: str, head_sha: str, keys: list[str], *, when: datetime | None = None
    ) -> Branch:
        branch = Branch(
            tenant_id=repo.tenant_id,
            repository_id=repo.id,
            name=name,
            head_sha=head_sha,
            url=f"https://git.example.com/acme/widgets/tree/{name}",
            updated_at=when or utcnow() - timedelta(hours=1),
        )
        self.session.add(branch)
        self.link(repo, LinkKind.BRANCH, name, keys, LinkSource.BRANCH_NAME)
        self.session.commit()
        return branch

    def pull_request(
        self,
        repo: Repository,
        external_id: str,
        title: str,
        keys: list[str],
        *,
        when: datetime | None = None,
        state: str = "OPEN",
    ) -> PullRequestRecord:
        pr = PullRequestRecord(
            tenant_id=repo.tenant_id,
            repository_id=repo.id,
            external_id=external_id,
            title=title,
            description="",
            state=state,
            source_branch="feature/x",
            target_branch="main",
            author="octocat",
            url=f"https://git.example.com/acme/widgets/pull/{external_id}",
            created_on_host=None,
            updated_on_host=when or utcnow() - timedelta(hours=1),
        )
        self.session.add(pr)
        self.link(repo, LinkKind.PULL_REQUEST, external_id, keys, LinkSource.TITLE)
        self.session.commit()
        return pr
