"""The one Protocol every git host implements, and the values it speaks in.

A host module (``github.py``, ``gitlab.py``, ...) implements :class:`GitHost`
and is registered in ``registry.py``. Callers (indexer, admin wizard, panel)
only ever see these dataclasses and the errors of ``connect_app.errors``:
never ``requests`` objects, raw JSON or status codes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Protocol, runtime_checkable


class ProviderId(StrEnum):
    GITHUB = "github"
    GITHUB_ENTERPRISE = "github-enterprise"
    GITLAB = "gitlab"
    GITLAB_SELF_MANAGED = "gitlab-self-managed"
    BITBUCKET_CLOUD = "bitbucket-cloud"
    BITBUCKET_DATACENTER = "bitbucket-datacenter"
    AZURE_DEVOPS = "azure-devops"
    AZURE_DEVOPS_SERVER = "azure-devops-server"
    AWS_CODECOMMIT = "aws-codecommit"
    GERRIT = "gerrit"
    GIT = "git"


class Capability(StrEnum):
    LIST_REPOSITORIES = "list_repositories"
    PULL_REQUESTS = "pull_requests"
    CREATE_BRANCH = "create_branch"
    CREATE_PULL_REQUEST = "create_pull_request"
    WEBHOOKS = "webhooks"
    USER_PERMISSIONS = "user_permissions"
    OAUTH = "oauth"


class AuthType(StrEnum):
    PAT = "pat"
    OAUTH = "oauth"
    PASSWORD = "password"  # noqa: S105 - an auth type name, not a secret
    AWS = "aws"  # access key id + secret (+ region)
    NONE = "none"  # public repositories (plain git)
    SSH_KEY = "ssh_key"  # plain git over ssh: token = private key, extra["known_host_key"] pins the server


class PullRequestState(StrEnum):
    OPEN = "OPEN"
    MERGED = "MERGED"
    DECLINED = "DECLINED"


class Permission(IntEnum):
    """Ordered, so ``perm >= Permission.READ`` reads naturally."""

    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclass(frozen=True)
class Credentials:
    """What authenticates us (or a user) to a host. Never logged: see __repr__."""

    auth_type: AuthType
    token: str | None = None
    username: str | None = None
    password: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # e.g. aws region/key id, oauth refresh

    def __repr__(self) -> str:
        return f"Credentials(auth_type={self.auth_type.value!r}, username={self.username!r}, secrets=<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class ProviderInfo:
    """Static facts about a provider, shown by the admin wizard (``GET /api/providers``)."""

    id: ProviderId
    name: str
    auth_types: tuple[AuthType, ...]
    self_hosted: bool
    capabilities: frozenset[Capability]
    default_base_url: str | None = None


@dataclass(frozen=True)
class RemoteRepository:
    external_id: str  # stable id on the host (numeric id, uuid, or full path where none exists)
    name: str  # human full name, e.g. "acme/widgets"
    clone_url: str  # https clone URL, without credentials
    web_url: str | None = None
    default_branch: str | None = None
    namespace: str | None = None  # org / group / workspace / project
    private: bool = True


@dataclass(frozen=True)
class RemoteBranch:
    name: str
    head_sha: str | None
    url: str | None = None


@dataclass(frozen=True)
class PullRequest:
    external_id: str  # number / iid / id as the host shows it to users
    title: str
    state: PullRequestState
    source_branch: str
    target_branch: str
    url: str
    updated_at: datetime
    description: str = ""
    author: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class GitAuth:
    """How ``git`` authenticates: a username/password pair handed over through
    GIT_ASKPASS, or an extra HTTP header passed through the environment; never in
    the URL or argv. For ssh URLs: an unencrypted private key (written to a 0600 file
    for the duration of one call) and, optionally, the server's public host key(s)
    to trust instead of trust-on-first-use (``ssh-keyscan`` / known_hosts lines)."""

    username: str | None = None
    password: str | None = None
    http_header: str | None = None  # e.g. "Authorization: Bearer …"
    ssh_private_key: str | None = None  # "-----BEGIN OPENSSH PRIVATE KEY-----…" (or PEM)
    ssh_known_host_key: str | None = None  # "ssh-ed25519 AAAA…"; pins the host key when set

    def __repr__(self) -> str:
        return f"GitAuth(username={self.username!r}, secrets=<hidden>)"


@dataclass(frozen=True)
class WebhookRegistration:
    id: str
    url: str


class WebhookEventType(StrEnum):
    PUSH = "push"
    PULL_REQUEST = "pull_request"
    REPOSITORY = "repository"
    PING = "ping"


class PullRequestAction(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    MERGED = "merged"
    DECLINED = "declined"


class RepositoryAction(StrEnum):
    CREATED = "created"
    DELETED = "deleted"


@dataclass(frozen=True)
class RefUpdate:
    ref: str  # full ref name, e.g. refs/heads/main
    before: str | None
    after: str | None  # None when the ref was deleted


@dataclass(frozen=True)
class WebhookEvent:
    type: WebhookEventType
    repository_external_id: str | None
    delivery_id: str | None = None
    refs: tuple[RefUpdate, ...] = ()
    commit_ids: tuple[str, ...] = ()
    pull_request: PullRequest | None = None
    pull_request_action: PullRequestAction | None = None
    repository_action: RepositoryAction | None = None
    repository_name: str | None = None


@dataclass(frozen=True)
class OAuthTokens:
    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        return f"OAuthTokens(expires_at={self.expires_at!r}, tokens=<hidden>)"


@dataclass(frozen=True)
class RateBudget:
    """What the host said about our remaining request budget for this credential."""

    limit: int | None
    remaining: int | None
    reset_at: datetime | None


@runtime_checkable
class GitHost(Protocol):
    """One connection to one host with one set of credentials.

    Methods a provider cannot support raise ``connect_app.errors.AppError`` with
    code ``unsupported``; ``info.capabilities`` tells callers beforehand.
    """

    info: ProviderInfo

    def validate_credentials(self) -> str:
        """The account name the credentials belong to, or raise ``AuthError``."""
        ...

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]: ...

    def clone_url(self, repo: RemoteRepository) -> str: ...

    def git_auth(self) -> GitAuth: ...

    def list_branches(self, repo: RemoteRepository) -> Iterator[RemoteBranch]: ...

    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]: ...

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch: ...

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest: ...

    def repository_permission(self, repo: RemoteRepository, user: Credentials) -> Permission: ...

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration: ...

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None: ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        """Return if the delivery is authentic; raise ``AuthError`` otherwise (constant-time compare)."""
        ...

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]: ...

    def rate_budget(self) -> RateBudget | None: ...


@runtime_checkable
class OAuthFlow(Protocol):
    """Hosts that offer OAuth (GitHub, GitLab, Bitbucket Cloud, Azure DevOps)."""

    def authorize_url(self, *, state: str, redirect_uri: str) -> str: ...

    def exchange_code(self, *, code: str, redirect_uri: str) -> OAuthTokens: ...

    def refresh(self, refresh_token: str, *, redirect_uri: str | None = None) -> OAuthTokens: ...
