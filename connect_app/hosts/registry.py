"""Every provider the admin can connect: what it is (``ProviderInfo``) and how to build it.

Adding a host means one module and one entry here. Callers build hosts only through
:func:`build_host`, from one :class:`HostConfig`, whatever the provider's constructor.
Provider modules are imported lazily (boto3 and friends stay out of web start-up).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connect_app.errors import ValidationError
from connect_app.hosts.base import Credentials, GitHost, ProviderId, ProviderInfo


@dataclass(frozen=True)
class HostConfig:
    """What an integration stores about its host, decrypted, ready to build a client.

    ``base_url`` is the server URL for self-hosted providers (GitHub Enterprise, GitLab
    self-managed, Bitbucket Data Center, Azure DevOps Server collection URL, Gerrit) and the
    clone URL for plain git; ``namespace`` is the org / workspace / group / project filter
    (for Azure DevOps Services: the organization). For the SaaS providers (GitHub.com,
    GitLab.com, Bitbucket Cloud) a ``base_url`` overrides the API address (a proxy, or a
    mock in tests); it passes the same SSRF guard as any other URL.
    """

    provider: ProviderId
    credentials: Credentials
    base_url: str | None = None
    namespace: str | None = None
    allow_private: bool = False
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    client_options: Mapping[str, Any] = field(default_factory=dict)  # budget_store, etag_cache, ...

    def require_base_url(self, what: str) -> str:
        if not self.base_url:
            raise ValidationError(f"{what} needs the server URL", code="base_url_required")
        return self.base_url


Builder = Callable[[HostConfig], GitHost]


def _http_options(cfg: HostConfig) -> dict[str, Any]:
    return {"allow_private": cfg.allow_private, **cfg.client_options}


def _github(cfg: HostConfig) -> GitHost:
    from connect_app.hosts.github import GitHubHost

    oauth: dict[str, Any] = {"oauth_client_id": cfg.oauth_client_id, "oauth_client_secret": cfg.oauth_client_secret}
    if cfg.provider is ProviderId.GITHUB_ENTERPRISE:
        url = cfg.require_base_url("GitHub Enterprise")
        return GitHubHost.enterprise(url, cfg.credentials, **oauth, **_http_options(cfg))
    api: dict[str, Any] = {"api_url": cfg.base_url, "web_url": cfg.base_url} if cfg.base_url else {}
    return GitHubHost(cfg.credentials, **api, **oauth, **_http_options(cfg))


def _gitlab(cfg: HostConfig) -> GitHost:
    from connect_app.hosts.gitlab import GitLabHost, GitLabSelfManagedHost

    oauth: dict[str, Any] = {"client_id": cfg.oauth_client_id, "client_secret": cfg.oauth_client_secret}
    if cfg.provider is ProviderId.GITLAB_SELF_MANAGED:
        url = cfg.require_base_url("GitLab self-managed")
        return GitLabSelfManagedHost(cfg.credentials, base_url=url, **oauth, **_http_options(cfg))
    api: dict[str, Any] = {"base_url": cfg.base_url} if cfg.base_url else {}
    return GitLabHost(cfg.credentials, **api, **oauth, **_http_options(cfg))


def _bitbucket_cloud(cfg: HostConfig) -> GitHost:
    from connect_app.hosts.bitbucket_cloud import BitbucketCloud

    api: dict[str, Any] = {"base_url": cfg.base_url} if cfg.base_url else {}
    return BitbucketCloud(
        cfg.credentials,
        **api,
        workspace=cfg.namespace,
        oauth_client_id=cfg.oauth_client_id,
        oauth_client_secret=cfg.oauth_client_secret,
        **_http_options(cfg),
    )


def _bitbucket_dc(cfg: HostConfig) -> GitHost:
    from connect_app.hosts.bitbucket_dc import BitbucketDataCenter

    return BitbucketDataCenter(cfg.require_base_url("Bitbucket Data Center"), cfg.credentials, **_http_options(cfg))


def _azure(cfg: HostConfig) -> GitHost:
    from connect_app.hosts.azure_devops import AzureDevOpsHost

    oauth: dict[str, Any] = {"oauth_client_id": cfg.oauth_client_id, "oauth_client_secret": cfg.oauth_client_secret}
    if cfg.provider is ProviderId.AZURE_DEVOPS_SERVER:
        url = cfg.require_base_url("Azure DevOps Server")
        return AzureDevOpsHost.azure_server(url, cfg.credentials, **_http_options(cfg))
    if cfg.base_url:
        return AzureDevOpsHost(cfg.base_url, cfg.credentials, **oauth, **_http_options(cfg))
    if not cfg.namespace:
        raise ValidationError("Azure DevOps needs the organization name", code="organization_required")
    return AzureDevOpsHost.services(cfg.namespace, cfg.credentials, **oauth, **_http_options(cfg))


def _codecommit(cfg: HostConfig) -> GitHost:
    from connect_app.hosts.codecommit import CodeCommitHost

    # base_url only overrides the AWS endpoint (tests, VPC endpoints); never user-facing.
    return CodeCommitHost(cfg.credentials, endpoint_url=cfg.base_url)


def _gerrit(cfg: HostConfig) -> GitHost:
    from connect_app.hosts.gerrit import GerritHost

    return GerritHost(cfg.credentials, base_url=cfg.require_base_url("Gerrit"), **_http_options(cfg))


def _plain_git(cfg: HostConfig) -> GitHost:
    from connect_app.hosts.plain_git import PlainGitHost

    return PlainGitHost(
        cfg.require_base_url("A plain Git repository"), cfg.credentials, allow_private=cfg.allow_private
    )


# provider id -> (module holding its ProviderInfo, attribute name, builder)
_ENTRIES: dict[ProviderId, tuple[str, str, Builder]] = {
    ProviderId.GITHUB: ("github", "GITHUB_INFO", _github),
    ProviderId.GITHUB_ENTERPRISE: ("github", "GITHUB_ENTERPRISE_INFO", _github),
    ProviderId.GITLAB: ("gitlab", "GITLAB_INFO", _gitlab),
    ProviderId.GITLAB_SELF_MANAGED: ("gitlab", "GITLAB_SELF_MANAGED_INFO", _gitlab),
    ProviderId.BITBUCKET_CLOUD: ("bitbucket_cloud", "BitbucketCloud.info", _bitbucket_cloud),
    ProviderId.BITBUCKET_DATACENTER: ("bitbucket_dc", "BitbucketDataCenter.info", _bitbucket_dc),
    ProviderId.AZURE_DEVOPS: ("azure_devops", "SERVICES_INFO", _azure),
    ProviderId.AZURE_DEVOPS_SERVER: ("azure_devops", "SERVER_INFO", _azure),
    ProviderId.AWS_CODECOMMIT: ("codecommit", "CODECOMMIT_INFO", _codecommit),
    ProviderId.GERRIT: ("gerrit", "GERRIT_INFO", _gerrit),
    ProviderId.GIT: ("plain_git", "INFO", _plain_git),
}


def provider_info(provider: ProviderId | str) -> ProviderInfo:
    try:
        pid = ProviderId(provider)
    except ValueError as e:
        raise ValidationError(f"unknown provider {provider!r}", code="unknown_provider") from e
    module_name, attr, _ = _ENTRIES[pid]
    target: Any = importlib.import_module(f"connect_app.hosts.{module_name}")
    for part in attr.split("."):
        target = getattr(target, part)
    info: ProviderInfo = target
    return info


def providers() -> list[ProviderInfo]:
    """Every provider, in the order the admin wizard lists them."""
    return [provider_info(pid) for pid in ProviderId]


def build_host(config: HostConfig) -> GitHost:
    try:
        _, _, builder = _ENTRIES[ProviderId(config.provider)]
    except ValueError as e:
        raise ValidationError(f"unknown provider {config.provider!r}", code="unknown_provider") from e
    return builder(config)


def markdown_table() -> str:
    """The README's host table (host by auth types by capabilities), generated from the registry."""
    from connect_app.hosts.base import Capability

    columns = list(Capability)
    header = "| host | id | auth | self-hosted | " + " | ".join(c.value.replace("_", " ") for c in columns) + " |"
    rows = [header, "|" + "---|" * (4 + len(columns))]
    for info in providers():
        marks = " | ".join("✓" if c in info.capabilities else "-" for c in columns)
        auth = ", ".join(a.value for a in info.auth_types)
        rows.append(f"| {info.name} | `{info.id.value}` | {auth} | {'yes' if info.self_hosted else 'no'} | {marks} |")
    return "\n".join(rows)
