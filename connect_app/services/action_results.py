"""What a finished create-branch / create-pull-request job stores: the branch or pull request
row and its issue links (as the indexer would write them, plus always one to the issue the user
acted from, whatever the name or title says), the integration log entry, and the job's result.
The caller commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from connect_app.hosts import weburls
from connect_app.hosts.base import PullRequest, RemoteBranch
from connect_app.indexing import store
from connect_app.indexing.issue_keys import project_of
from connect_app.indexing.links import LinkBuilder, insert_links, project_filter
from connect_app.indexing.pull_requests import aware, text
from connect_app.models import (
    ActionJob,
    ActionKind,
    Branch,
    EventLevel,
    EventSource,
    Integration,
    LinkKind,
    LinkSource,
    PullRequestRecord,
    Repository,
    utcnow,
)
from connect_app.services.development import safe_url
from connect_app.services.integration_log import record_event


@dataclass(frozen=True)
class Context:
    """One job and what it acts on (loaded, tenant-checked)."""

    job: ActionJob
    repository: Repository
    integration: Integration

    @property
    def kind(self) -> ActionKind:
        return ActionKind(self.job.kind)

    @property
    def who(self) -> str:
        return "Your token" if self.job.as_user else f"The credentials of {self.integration.display_name}"


def _link_rows(context: Context, kind: LinkKind, ref: str, found: list[dict[str, Any]], source: LinkSource) -> Any:
    """The links the indexer would make, and always one to the issue the user acted from."""
    job = context.job
    if any(row["issue_key"] == job.issue_key for row in found):
        return found
    own = {
        "tenant_id": job.tenant_id,
        "repository_id": context.repository.id,
        "issue_key": job.issue_key,
        "project_key": project_of(job.issue_key),
        "kind": kind.value,
        "ref": ref,
        "source": source.value,
        "created_at": utcnow(),
    }
    return [*found, own]


def _links(session: Session, context: Context) -> LinkBuilder:
    repo = context.repository
    return LinkBuilder(repo.tenant_id, repo.id, project_filter(session, repo.tenant_id), utcnow())


def _repository_ref(repo: Repository) -> dict[str, Any]:
    return {"id": repo.id, "name": repo.name}


def store_branch(session: Session, context: Context, branch: RemoteBranch) -> dict[str, Any]:
    repo, job = context.repository, context.job
    url = branch.url or weburls.branch_url(repo.provider, repo.web_url, branch.name)
    row = {
        "tenant_id": repo.tenant_id,
        "repository_id": repo.id,
        "name": branch.name,
        "head_sha": branch.head_sha or "",
        "url": url[: weburls.MAX_URL_LENGTH] if url else None,
        "updated_at": utcnow(),
    }
    store.upsert(session, Branch, [row], keys=("repository_id", "name"), update=("head_sha", "url", "updated_at"))
    links = _link_rows(
        context, LinkKind.BRANCH, branch.name, _links(session, context).branch(branch.name), LinkSource.BRANCH_NAME
    )
    insert_links(session, links)
    record_event(
        session,
        tenant_id=repo.tenant_id,
        integration_id=repo.integration_id,
        repository_id=repo.id,
        level=EventLevel.INFO,
        source=EventSource.ACTION,
        message=f"Branch {branch.name} created in {repo.name} from {job.request['source']} for {job.issue_key}.",
        detail=_detail(job, url),
    )
    return result_of(context, branch)


def store_pull_request(session: Session, context: Context, pr: PullRequest) -> dict[str, Any]:
    repo, job = context.repository, context.job
    external_id = pr.external_id[:64]
    row: dict[str, Any] = {
        "tenant_id": repo.tenant_id,
        "repository_id": repo.id,
        "external_id": external_id,
        "title": text(pr.title),
        "description": text(pr.description or ""),
        "state": pr.state.value,
        "source_branch": pr.source_branch[:1024],
        "target_branch": pr.target_branch[:1024],
        "author": pr.author[:255] if pr.author else None,
        "url": pr.url[:2048],
        "created_on_host": aware(pr.created_at) if pr.created_at else None,
        "updated_on_host": aware(pr.updated_at),
    }
    columns = [c for c in row if c not in ("tenant_id", "repository_id", "external_id")]
    store.upsert(session, PullRequestRecord, [row], keys=("repository_id", "external_id"), update=columns)
    found = _links(session, context).pull_request(external_id, row["title"], row["description"], pr.source_branch)
    insert_links(session, _link_rows(context, LinkKind.PULL_REQUEST, external_id, found, LinkSource.TITLE))
    record_event(
        session,
        tenant_id=repo.tenant_id,
        integration_id=repo.integration_id,
        repository_id=repo.id,
        level=EventLevel.INFO,
        source=EventSource.ACTION,
        message=(
            f"Pull request {external_id} ({job.request['source']} into {job.request['target']}) "
            f"created in {repo.name} for {job.issue_key}."
        ),
        detail=_detail(job, pr.url),
    )
    return result_of(context, pr)


def result_of(context: Context, created: RemoteBranch | PullRequest) -> dict[str, Any]:
    """What ``GET /api/jobs/{id}`` shows of a finished job: ``name`` and ``url`` (http(s) only:
    the dialog turns it into a link) at least."""
    repo, request = context.repository, context.job.request
    if isinstance(created, RemoteBranch):
        return {
            "name": created.name,
            "url": safe_url(created.url or weburls.branch_url(repo.provider, repo.web_url, created.name)),
            "head_sha": created.head_sha,
            "source": request["source"],
            "repository": _repository_ref(repo),
        }
    return {
        "name": created.title,
        "id": created.external_id,
        "url": safe_url(created.url),
        "title": created.title,
        "state": created.state.value,
        "source": request["source"],
        "target": request["target"],
        "repository": _repository_ref(repo),
    }


def _detail(job: ActionJob, url: str | None) -> dict[str, Any]:
    return {
        "action_id": job.id,
        "issue_key": job.issue_key,
        "account_id": job.account_id,
        "as_user": job.as_user,
        "url": url,
    }
