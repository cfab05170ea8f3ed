"""ORM models, one concept per module. Import from here so every table is registered."""

from connect_app.models.action_job import ActionJob, ActionKind, ActionStatus
from connect_app.models.base import Base, TenantScoped, TimestampMixin, UTCDateTime, utcnow
from connect_app.models.branch import Branch
from connect_app.models.commit import Commit
from connect_app.models.devinfo_state import DevinfoRepositoryState, DevinfoStatus, DevinfoTenantState
from connect_app.models.index_run import IndexRun, RunKind, RunStatus, Trigger
from connect_app.models.integration import Integration, IntegrationStatus, RepositorySelection
from connect_app.models.integration_event import EventLevel, EventSource, IntegrationEvent
from connect_app.models.issue_link import IssueLink, LinkKind, LinkSource
from connect_app.models.jira_project import JiraProject
from connect_app.models.pull_request import PullRequestRecord
from connect_app.models.repository import Repository, RepositoryStatus
from connect_app.models.smart_commit import SmartCommitExecution, SmartCommitMode, SmartCommitStatus
from connect_app.models.tag import Tag
from connect_app.models.tenant import Tenant
from connect_app.models.user_preference import UserPreference
from connect_app.models.user_token import UserRepositoryPermission, UserToken
from connect_app.models.webhook_delivery import DeliveryStatus, WebhookDelivery

__all__ = [
    "ActionJob",
    "ActionKind",
    "ActionStatus",
    "Base",
    "Branch",
    "Commit",
    "DeliveryStatus",
    "DevinfoRepositoryState",
    "DevinfoStatus",
    "DevinfoTenantState",
    "EventLevel",
    "EventSource",
    "IndexRun",
    "Integration",
    "IntegrationEvent",
    "IntegrationStatus",
    "IssueLink",
    "JiraProject",
    "LinkKind",
    "LinkSource",
    "PullRequestRecord",
    "Repository",
    "RepositorySelection",
    "RepositoryStatus",
    "RunKind",
    "RunStatus",
    "SmartCommitExecution",
    "SmartCommitMode",
    "SmartCommitStatus",
    "Tag",
    "Tenant",
    "TenantScoped",
    "TimestampMixin",
    "Trigger",
    "UTCDateTime",
    "UserPreference",
    "UserRepositoryPermission",
    "UserToken",
    "WebhookDelivery",
    "utcnow",
]
