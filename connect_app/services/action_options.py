"""What the create-branch / create-pull-request dialogs offer (no Flask).

* :func:`create_options`: the repositories this user may use for the issue's project where the
  host and the integration's features allow the action (visibility and project association as
  in :mod:`connect_app.services.development`), the user's last choice, a branch name from each
  integration's template, and a pull request title and description linking back to the issue.
* :func:`branch_names`: a visible repository's indexed branch names, for the source and target
  pickers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connect_app.errors import NotFound
from connect_app.models import (
    ActionKind,
    Branch,
    Integration,
    IntegrationStatus,
    Repository,
    RepositoryStatus,
)
from connect_app.services import action_credentials, actions, development
from connect_app.services.action_input import BODY_MAX_LENGTH, TITLE_MAX_LENGTH
from connect_app.services.branch_names import render_branch_name
from connect_app.services.development import IntegrationRow, RepositoryRow
from connect_app.services.integration_settings import (
    DEFAULT_BRANCH_TEMPLATE,
    Feature,
    branch_name_template,
    feature_enabled,
    template_problem,
)

MAX_REPOSITORIES = 1000  # the dialog's picker; more are cut (``repositories_truncated``)
MAX_BRANCHES = 100
QUERY_MAX_LENGTH = 200


@dataclass(frozen=True)
class _Candidate:
    row: RepositoryRow
    default_branch: str | None


def _candidates(
    session: Session, tenant_id: int, account_id: str, project_key: str
) -> tuple[dict[int, Integration], list[_Candidate]]:
    """The tenant's live integrations and the repositories of them this user may see for the project."""
    integrations = {
        i.id: i
        for i in session.scalars(
            select(Integration).where(
                Integration.tenant_id == tenant_id, Integration.status != IntegrationStatus.DISABLED.value
            )
        )
    }
    if not integrations:
        return {}, []
    stmt = select(
        Repository.id,
        Repository.integration_id,
        Repository.name,
        Repository.provider,
        Repository.web_url,
        Repository.status,
        Repository.project_keys,
        Repository.default_branch,
    ).where(
        Repository.tenant_id == tenant_id,
        Repository.integration_id.in_(sorted(integrations)),
        Repository.enabled.is_(True),
        Repository.removed_at.is_(None),
        Repository.status != RepositoryStatus.REMOVED.value,
    )
    rows: list[tuple[IntegrationRow, RepositoryRow | None]] = []
    defaults: dict[int, str | None] = {}
    seen: set[int] = set()
    for rid, iid, name, provider, web_url, status, project_keys, default_branch in session.execute(stmt):
        integration = integrations[iid]
        seen.add(iid)
        defaults[rid] = default_branch
        rows.append(
            (
                _integration_row(integration),
                RepositoryRow(rid, iid, name, provider, web_url, True, False, status, tuple(project_keys or ()), False),
            )
        )
    rows += [(_integration_row(i), None) for iid, i in integrations.items() if iid not in seen]
    visibility = development.filter_visible(
        session,
        tenant_id,
        account_id,
        rows,
        project_key=project_key,
        checker=development.permission_checker(),
    )
    found = [_Candidate(r, defaults.get(r.id)) for r in visibility.repositories.values()]
    return integrations, sorted(found, key=lambda c: (c.row.name.lower(), c.row.id))


def _integration_row(i: Integration) -> IntegrationRow:
    return IntegrationRow(
        i.id, i.display_name, i.provider, i.status, bool(i.enforce_permissions), tuple(i.project_keys or ())
    )


def usable_template(integration: Integration) -> str:
    """The integration's branch name template, or the default one if the stored one is unusable
    (the admin API refuses those; this guards rows written another way)."""
    template = branch_name_template(integration)
    return DEFAULT_BRANCH_TEMPLATE if template_problem(template) else template


def issue_url(jira_base_url: str, issue_key: str) -> str:
    return f"{jira_base_url.rstrip('/')}/browse/{issue_key}"


def pull_request_text(issue: actions.Issue, jira_base_url: str) -> dict[str, str]:
    """The default title ("ABC-1 Summary") and a description that links back to the issue."""
    title = f"{issue.key} {issue.summary}".strip()[:TITLE_MAX_LENGTH]
    link = f"[{issue.key}]({issue_url(jira_base_url, issue.key)})"
    body = f"Jira issue: {link}" + (f" {issue.summary}" if issue.summary else "")
    return {"title": title, "body": body[:BODY_MAX_LENGTH]}


def create_options(
    session: Session,
    *,
    tenant_id: int,
    account_id: str,
    jira_base_url: str,
    issue: actions.Issue,
    kind: ActionKind,
) -> dict[str, Any]:
    """The body of ``GET /api/issues/{key}/create-options``."""
    integrations, candidates = _candidates(session, tenant_id, account_id, issue.project_key)
    usable = [c for c in candidates if actions.offered(integrations[c.row.integration_id], kind)]
    token_needed: dict[int, bool] = {}
    names: dict[int, str] = {}
    repositories = []
    for candidate in usable[:MAX_REPOSITORIES]:
        integration = integrations[candidate.row.integration_id]
        if integration.id not in token_needed:
            token_needed[integration.id] = action_credentials.needs_user_token(
                integration
            ) and not action_credentials.user_credentials(session, tenant_id, account_id, integration.id)
            names[integration.id] = render_branch_name(
                usable_template(integration),
                issue_key=issue.key,
                summary=issue.summary,
                issue_type=issue.issue_type,
                project_key=issue.project_key,
            )
        repositories.append(
            {
                "id": candidate.row.id,
                "name": candidate.row.name,
                "integration": {
                    "id": integration.id,
                    "display_name": integration.display_name,
                    "provider": integration.provider,
                },
                "default_branch": candidate.default_branch,
                "can_create_branch": feature_enabled(integration, Feature.CREATE_BRANCH),
                "can_create_pull_request": feature_enabled(integration, Feature.CREATE_PULL_REQUEST),
                "needs_user_token": token_needed[integration.id],
                "branch_name": names[integration.id],
            }
        )
    last = actions.last_repository(session, tenant_id, account_id, issue.project_key)
    if last not in {r["id"] for r in repositories}:
        last = None
    preselected = next((r for r in repositories if r["id"] == last), repositories[0] if repositories else None)
    fallback = render_branch_name(
        DEFAULT_BRANCH_TEMPLATE, issue_key=issue.key, summary=issue.summary, project_key=issue.project_key
    )
    return {
        "issue": {
            "key": issue.key,
            "summary": issue.summary,
            "issue_type": issue.issue_type,
            "project_key": issue.project_key,
            "url": issue_url(jira_base_url, issue.key),
        },
        "action": "branch" if kind is ActionKind.CREATE_BRANCH else "pull_request",
        "repositories": repositories,
        "repositories_truncated": len(usable) > MAX_REPOSITORIES,
        "last_repository_id": last,
        "branch_name": preselected["branch_name"] if preselected else fallback,
        "pull_request": pull_request_text(issue, jira_base_url),
    }


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def branch_names(
    session: Session, *, tenant_id: int, account_id: str, repository_id: int, query: str = ""
) -> dict[str, Any]:
    """The body of ``GET /api/repositories/{id}/branches``: names from the index, the default
    branch first, then by name; ``query`` filters by a case-insensitive substring."""
    in_range = repository_id if 0 < repository_id <= 2**31 - 1 else -1  # ids are 32-bit on PostgreSQL
    visible = development.visible_repository_ids(session, tenant_id, account_id, [in_range])
    repo = (
        session.scalar(select(Repository).where(Repository.id == repository_id, Repository.tenant_id == tenant_id))
        if repository_id in visible
        else None
    )
    if repo is None:
        raise NotFound(f"Repository {repository_id} does not exist or you may not see it.", code="repository_not_found")
    query = query.replace("\x00", "").strip()[:QUERY_MAX_LENGTH]  # PostgreSQL text cannot hold NUL
    where = [Branch.tenant_id == tenant_id, Branch.repository_id == repo.id]
    if query:
        where.append(func.lower(Branch.name).like(_like(query), escape="\\"))
    default = repo.default_branch
    order = [(Branch.name == default).desc(), Branch.name] if default else [Branch.name]
    names = list(session.scalars(select(Branch.name).where(*where).order_by(*order).limit(MAX_BRANCHES + 1)))
    if default and default not in names and (not query or query.lower() in default.lower()):
        names.insert(0, default)  # known before the first index run stored any branch
    return {
        "repository_id": repo.id,
        "default_branch": default,
        "branches": names[:MAX_BRANCHES],
        "truncated": len(names) > MAX_BRANCHES,
    }
