"""Shared by the adversarial security tests (tests/security/test_*_matrix/fuzz/scan.py).

:func:`build_world` fills one installed tenant with one of everything the app stores for a
site -- an integration with a host credential, a repository with a commit, branch, tag and
pull request linked to an issue, an indexing run, a webhook delivery, integration log events,
a user's own token with its cached repository permission, an action job, a user preference
and a Jira project -- written straight to the tables the way the services would, each carrying
a marker unique to that tenant. :attr:`World.markers` lists strings that must never reach
another tenant; :func:`tenant_footprint` counts every tenant-scoped row so a test can show
that nothing of a tenant changed. Use inside an app context.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials
from connect_app.integrations import encode_credentials
from connect_app.models import (
    ActionJob,
    ActionKind,
    ActionStatus,
    Base,
    DeliveryStatus,
    EventLevel,
    EventSource,
    IndexRun,
    JiraProject,
    RunKind,
    RunStatus,
    Tenant,
    Trigger,
    UserPreference,
    UserRepositoryPermission,
    UserToken,
    WebhookDelivery,
)
from connect_app.models.integration_event import IntegrationEvent
from connect_app.runtime import runtime
from tests.support.connect import JiraSite
from tests.web.development_data import DevData, tenant_id_of

ISSUE_KEY = "ABC-1"  # both tenants have this issue: keys are per site, never a way in
USER = "acct-user-1"  # the same Jira accountId on both sites, on purpose
ADMIN = "acct-admin"


@dataclass
class World:
    label: str
    site: JiraSite
    tenant_id: int
    integration_id: int
    repository_id: int
    integration_name: str
    repository_name: str
    host_token: str
    user_token: str
    commit_sha: str
    branch_name: str
    pull_request_title: str
    tag_name: str
    project_name: str
    index_run_id: int
    action_job_id: str
    webhook_token: str
    event_message: str
    preference_value: str
    oauth_flow_id: str | None = None
    extra_markers: list[str] = field(default_factory=list)

    @property
    def markers(self) -> list[str]:
        """Strings that identify this tenant's data; none may appear in another tenant's answers."""
        return [
            self.site.client_key,
            self.site.shared_secret,
            self.integration_name,
            self.repository_name,
            self.host_token,
            self.user_token,
            self.user_token[-4:],
            self.commit_sha,
            self.commit_sha[:12],
            self.branch_name,
            self.pull_request_title,
            self.tag_name,
            self.project_name,
            self.action_job_id,
            self.webhook_token,
            self.event_message,
            self.preference_value,
            *([self.oauth_flow_id] if self.oauth_flow_id else []),
            *self.extra_markers,
        ]


def _encrypted_pat(token: str) -> str:
    return runtime().secrets.encrypt(encode_credentials(Credentials(AuthType.PAT, token=token)))


def build_world(site: JiraSite, label: str) -> World:
    """One tenant's worth of rows, every identifier carrying ``label`` and a random part."""
    tag = f"{label}{secrets.token_hex(4)}"
    session = db.session()
    data = DevData(tenant_id_of(site))
    host_token = f"ghp_{tag}HostToken0123456789"
    integration = data.integration(f"integ-{tag}")
    integration.credentials_encrypted = _encrypted_pat(host_token)
    integration.account_name = f"hostacct-{tag}"
    repo = data.repository(integration, f"repo-{tag}")
    commit = data.commit(repo, f"{ISSUE_KEY} commit-{tag} fixes it")
    branch = data.branch(repo, f"feature/{ISSUE_KEY}-branch-{tag}")
    pr_title = f"{ISSUE_KEY} pull-{tag}"
    data.pull_request(repo, pr_title, source=branch.name)
    tag_name = f"v-{tag}"
    data.tag(repo, tag_name, commit.sha)

    # last4 is all a response ever shows of it: "~", the label and two letters no hex id contains
    user_token = f"usr_{tag}UserToken~{label[0]}" + "".join(secrets.choice("ghjkmnpqrstuvwxyz") for _ in range(2))
    token_row = UserToken(
        tenant_id=data.tenant_id,
        account_id=USER,
        integration_id=integration.id,
        credentials_encrypted=_encrypted_pat(user_token),
        last4=user_token[-4:],
        host_account_name=f"hostuser-{tag}",
    )
    session.add(token_row)
    session.flush()
    session.add(
        UserRepositoryPermission(
            tenant_id=data.tenant_id, account_id=USER, repository_id=repo.id, user_token_id=token_row.id, permission=2
        )
    )
    run = IndexRun(
        tenant_id=data.tenant_id,
        integration_id=integration.id,
        repository_id=repo.id,
        kind=RunKind.INDEX.value,
        trigger=Trigger.MANUAL.value,
        status=RunStatus.QUEUED.value,
        job_id=f"job-{tag}",
    )
    session.add(run)
    session.add(
        WebhookDelivery(
            tenant_id=data.tenant_id,
            integration_id=integration.id,
            delivery_key=f"delivery-{tag}",
            event="push",
            status=DeliveryStatus.RECEIVED.value,
            repository_ids=[repo.id],
            summary={"reason": f"delivery-{tag}"},
        )
    )
    event_message = f"event-{tag} happened"
    session.add(
        IntegrationEvent(
            tenant_id=data.tenant_id,
            integration_id=integration.id,
            repository_id=repo.id,
            level=EventLevel.WARNING.value,
            source=EventSource.WEBHOOK.value,
            message=event_message,
            detail={"marker": f"event-{tag}"},
        )
    )
    job_id = secrets.token_hex(16)
    session.add(
        ActionJob(
            id=job_id,
            tenant_id=data.tenant_id,
            account_id=USER,
            kind=ActionKind.CREATE_BRANCH.value,
            issue_key=ISSUE_KEY,
            repository_id=repo.id,
            request={"name": f"feature/{ISSUE_KEY}-job-{tag}"},
            status=ActionStatus.QUEUED.value,
        )
    )
    preference = f"pref-{tag}"
    session.add(UserPreference(tenant_id=data.tenant_id, account_id=USER, name="last_repository", value=preference))
    project_name = f"Project {tag}"
    session.add(JiraProject(tenant_id=data.tenant_id, key="ABC", project_id="10001", name=project_name))
    session.commit()
    return World(
        label=label,
        site=site,
        tenant_id=data.tenant_id,
        integration_id=integration.id,
        repository_id=repo.id,
        integration_name=integration.display_name,
        repository_name=repo.name,
        host_token=host_token,
        user_token=user_token,
        commit_sha=commit.sha,
        branch_name=branch.name,
        pull_request_title=pr_title,
        tag_name=tag_name,
        project_name=project_name,
        index_run_id=run.id,
        action_job_id=job_id,
        webhook_token=integration.webhook_token,
        event_message=event_message,
        preference_value=preference,
    )


def tenant_tables() -> list[Any]:
    return [t for t in Base.metadata.sorted_tables if "tenant_id" in t.c]


def tenant_footprint(tenant_id: int) -> dict[str, Any]:
    """Every row of every tenant-scoped table (as text, sorted), and the tenant row's own state:
    equal before and after means nothing of the tenant was added, changed or deleted."""
    session = db.session()
    session.expire_all()
    counts: dict[str, Any] = {
        t.name: sorted(repr(tuple(row)) for row in session.execute(select(t).where(t.c.tenant_id == tenant_id)))
        for t in tenant_tables()
    }
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    counts["tenant"] = (tenant.client_key, tenant.shared_secret_encrypted, tenant.enabled, tenant.base_url)
    return counts


def leaked(text: str, markers: list[str]) -> list[str]:
    return [m for m in markers if m and m in text]
