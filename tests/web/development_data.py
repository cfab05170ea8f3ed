"""Rows for the issue development API / panel tests: integrations, repositories, and linked
commits, branches, pull requests and tags written straight to the tables (what the indexer
would have stored). Use inside an app context."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.indexing.issue_keys import keys_in_branch, keys_in_text, project_of
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.models import (
    Branch,
    Commit,
    Integration,
    IssueLink,
    LinkKind,
    LinkSource,
    PullRequestRecord,
    Repository,
    RepositoryStatus,
    Tag,
    Tenant,
    utcnow,
)
from tests.support.connect import JiraSite

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_serial = itertools.count(1)


def tenant_id_of(site: JiraSite) -> int:
    return int(db.session().scalars(select(Tenant.id).where(Tenant.client_key == site.client_key)).one())


def fake_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


@dataclass
class DevData:
    tenant_id: int
    clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def session(self) -> Any:
        return db.session()

    def tick(self) -> datetime:
        return T0 + timedelta(minutes=next(self.clock))

    def integration(
        self,
        name: str = "acme",
        *,
        provider: ProviderId = ProviderId.GITHUB,
        enforce_permissions: bool = False,
        project_keys: tuple[str, ...] = (),
        status: str | None = None,
    ) -> Integration:
        integration = create_integration(
            self.session,
            self.tenant_id,
            NewIntegration(
                provider=provider,
                credentials=Credentials(AuthType.PAT, token="t-" + name),
                display_name=name,
                enforce_permissions=enforce_permissions,
                project_keys=project_keys,
            ),
        )
        if status is not None:
            integration.status = status
        self.session.commit()
        return integration

    def repository(
        self,
        integration: Integration,
        name: str = "widgets",
        *,
        web_url: str | None = "",
        project_keys: tuple[str, ...] = (),
        enabled: bool = True,
        removed: bool = False,
        status: str = RepositoryStatus.OK.value,
        indexed: bool = True,
    ) -> Repository:
        full = f"{integration.display_name}/{name}"
        (repo,) = add_repositories(
            self.session,
            integration,
            [
                RemoteRepository(
                    external_id=f"{integration.id}-{name}-{next(_serial)}",
                    name=full,
                    clone_url=f"https://github.example/{full}.git",
                    web_url=f"https://github.com/{full}" if web_url == "" else web_url,
                    default_branch="main",
                )
            ],
        )
        repo.project_keys = list(project_keys)
        repo.enabled = enabled
        repo.status = RepositoryStatus.REMOVED.value if removed else status
        repo.removed_at = utcnow() if removed else None
        repo.last_indexed_at = utcnow() if indexed else None
        self.session.commit()
        return repo

    def _link(self, repo: Repository, kind: LinkKind, ref: str, keys: list[str], source: LinkSource) -> None:
        for key in keys:
            self.session.add(
                IssueLink(
                    tenant_id=self.tenant_id,
                    repository_id=repo.id,
                    issue_key=key,
                    project_key=project_of(key),
                    kind=kind.value,
                    ref=ref,
                    source=source.value,
                )
            )

    def commit(
        self,
        repo: Repository,
        message: str,
        *,
        at: datetime | None = None,
        sha: str | None = None,
        author: tuple[str, str] = ("Ann Author", "ann@example.com"),
        url: str | None = None,
        keys: list[str] | None = None,
        flush: bool = True,
        branch: str | None = None,
    ) -> Commit:
        at = at or self.tick()
        sha = sha or fake_sha(f"{repo.id}-{message}-{at.isoformat()}-{next(_serial)}")
        row = Commit(
            tenant_id=self.tenant_id,
            repository_id=repo.id,
            sha=sha,
            author_name=author[0],
            author_email=author[1],
            authored_at=at - timedelta(seconds=30),
            committed_at=at,
            message=message,
            url=url,
            branch=branch,
        )
        self.session.add(row)
        self._link(repo, LinkKind.COMMIT, sha, keys_in_text(message) if keys is None else keys, LinkSource.MESSAGE)
        if flush:
            self.session.commit()
        return row

    def branch(
        self,
        repo: Repository,
        name: str,
        *,
        head: str | None = None,
        at: datetime | None = None,
        url: str | None = None,
        keys: list[str] | None = None,
    ) -> Branch:
        row = Branch(
            tenant_id=self.tenant_id,
            repository_id=repo.id,
            name=name,
            head_sha=head or fake_sha(f"branch-{name}-{next(_serial)}"),
            url=url,
            updated_at=at or self.tick(),
        )
        self.session.add(row)
        self._link(repo, LinkKind.BRANCH, name, keys_in_branch(name) if keys is None else keys, LinkSource.BRANCH_NAME)
        self.session.commit()
        return row

    def pull_request(
        self,
        repo: Repository,
        title: str,
        *,
        number: str | None = None,
        state: str = "OPEN",
        source: str = "feature/x",
        target: str = "main",
        author: str | None = "bob",
        at: datetime | None = None,
        url: str | None = None,
        keys: list[str] | None = None,
    ) -> PullRequestRecord:
        number = number or str(next(_serial))
        row = PullRequestRecord(
            tenant_id=self.tenant_id,
            repository_id=repo.id,
            external_id=number,
            title=title,
            description="",
            state=state,
            source_branch=source,
            target_branch=target,
            author=author,
            url=url or f"https://github.com/{repo.name}/pull/{number}",
            updated_on_host=at or self.tick(),
        )
        self.session.add(row)
        if keys is None:  # as the indexer links them: keys of the title, then of the source branch
            keys = list(dict.fromkeys([*keys_in_text(title), *keys_in_branch(source)]))
        self._link(repo, LinkKind.PULL_REQUEST, number, keys, LinkSource.TITLE)
        self.session.commit()
        return row

    def tag(self, repo: Repository, name: str, sha: str) -> Tag:
        row = Tag(tenant_id=self.tenant_id, repository_id=repo.id, name=name, sha=sha)
        self.session.add(row)
        self.session.commit()
        return row
