"""Integrations as stored rows <-> live host clients.

The only module that decrypts an integration's credentials and webhook secret. It
builds :class:`~connect_app.hosts.base.GitHost` clients wired to the shared rate
budget and ETag cache in Redis, so every worker paces one credential together.
"""

from __future__ import annotations

import json
import secrets as pysecrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from connect_app.errors import ValidationError
from connect_app.extensions import redis_conn
from connect_app.hosts.base import AuthType, Credentials, GitHost, OAuthFlow, ProviderId, RemoteRepository
from connect_app.hosts.etags import RedisEtagCache
from connect_app.hosts.http import credential_fingerprint
from connect_app.hosts.ratelimit import RedisBudgetStore
from connect_app.hosts.registry import HostConfig, build_host, provider_info
from connect_app.models import Integration, Repository, RepositorySelection
from connect_app.runtime import runtime


def encode_credentials(credentials: Credentials) -> str:
    return json.dumps(
        {
            "auth_type": credentials.auth_type.value,
            "token": credentials.token,
            "username": credentials.username,
            "password": credentials.password,
            "extra": dict(credentials.extra),
        },
        sort_keys=True,
    )


def decode_credentials(text: str) -> Credentials:
    data = json.loads(text)
    return Credentials(
        auth_type=AuthType(data["auth_type"]),
        token=data.get("token"),
        username=data.get("username"),
        password=data.get("password"),
        extra=dict(data.get("extra") or {}),
    )


def credential_key(provider: ProviderId | str, base_url: str | None, credentials: Credentials) -> str:
    """The same token used by two integrations shares one rate budget."""
    material = "\n".join(
        [str(provider), base_url or "", credentials.token or "", credentials.username or "", credentials.password or ""]
        + [f"{k}={v}" for k, v in sorted(credentials.extra.items())]
    )
    return credential_fingerprint(material)


@dataclass(frozen=True)
class NewIntegration:
    provider: ProviderId
    credentials: Credentials
    display_name: str
    base_url: str | None = None
    namespace: str | None = None
    repository_selection: RepositorySelection = RepositorySelection.ALL_FUTURE
    require_user_pat: bool = False
    enforce_permissions: bool = False
    project_keys: tuple[str, ...] = ()
    reindex_interval_minutes: int | None = None
    created_by: str | None = None


def create_integration(session: Session, tenant_id: int, spec: NewIntegration) -> Integration:
    """Store an integration (credentials and a fresh webhook secret encrypted). No network."""
    provider_info(spec.provider)  # unknown provider -> ValidationError
    if not spec.display_name.strip():
        raise ValidationError("an integration needs a display name", code="display_name_required")
    box = runtime().secrets
    integration = Integration(
        tenant_id=tenant_id,
        provider=ProviderId(spec.provider).value,
        display_name=spec.display_name.strip(),
        base_url=spec.base_url,
        namespace=spec.namespace,
        auth_type=spec.credentials.auth_type.value,
        credentials_encrypted=box.encrypt(encode_credentials(spec.credentials)),
        credential_key=credential_key(spec.provider, spec.base_url, spec.credentials),
        repository_selection=RepositorySelection(spec.repository_selection).value,
        require_user_pat=spec.require_user_pat,
        enforce_permissions=spec.enforce_permissions,
        project_keys=list(spec.project_keys),
        reindex_interval_minutes=spec.reindex_interval_minutes,
        features={},
        webhook_token=pysecrets.token_urlsafe(24),
        webhook_secret_encrypted=box.encrypt(pysecrets.token_urlsafe(32)),
        created_by=spec.created_by,
    )
    session.add(integration)
    session.flush()
    return integration


def credentials_of(integration: Integration) -> Credentials:
    return decode_credentials(runtime().secrets.decrypt(integration.credentials_encrypted))


def webhook_secret(integration: Integration) -> str:
    return runtime().secrets.decrypt(integration.webhook_secret_encrypted)


def host_config(integration: Integration) -> HostConfig:
    from connect_app.oauth_settings import oauth_settings

    settings = runtime().settings
    client = redis_conn.client
    oauth = oauth_settings().client(integration.provider)
    return HostConfig(
        provider=ProviderId(integration.provider),
        credentials=credentials_of(integration),
        base_url=integration.base_url,
        namespace=integration.namespace,
        allow_private=settings.allow_private_hosts,
        oauth_client_id=oauth.client_id if oauth else None,
        oauth_client_secret=oauth.client_secret if oauth else None,
        client_options={
            "budget_store": RedisBudgetStore(client),
            "etag_cache": RedisEtagCache(client),
        },
    )


USER_HOST_MAX_WAIT_SECONDS = 5.0


def user_host_config(
    integration: Integration, credentials: Credentials, *, max_wait_seconds: float = USER_HOST_MAX_WAIT_SECONDS
) -> HostConfig:
    """The integration's host, authenticated as one Jira user (their own token) instead of the
    integration's credentials. The user's credential gets its own shared rate budget; no ETag
    cache (an answer about a user's access must be current); a rate limit is waited out for at
    most ``max_wait_seconds`` (a user is waiting). GitHub is not asked for webhook scopes:
    only the integration's own credentials register webhooks."""
    options: dict[str, Any] = {
        "budget_store": RedisBudgetStore(redis_conn.client),
        "max_wait_seconds": max_wait_seconds,
    }
    provider = ProviderId(integration.provider)
    if provider in (ProviderId.GITHUB, ProviderId.GITHUB_ENTERPRISE):
        options["webhooks"] = False
    return HostConfig(
        provider=provider,
        credentials=credentials,
        base_url=integration.base_url,
        namespace=integration.namespace,
        allow_private=runtime().settings.allow_private_hosts,
        client_options=options,
    )


def host_for_user(integration: Integration, credentials: Credentials) -> GitHost:
    """A client for the integration's host acting with a user's own credentials (see
    :func:`user_host_config`); nothing is refreshed or stored."""
    return build_host(user_host_config(integration, credentials))


def host_for(integration: Integration) -> GitHost:
    """A client for the integration's host; an OAuth access token about to expire is
    refreshed first (and the new tokens stored encrypted, in the caller's session)."""
    host = build_host(host_config(integration))
    if _refresh_due(credentials_of(integration)) and isinstance(host, OAuthFlow):
        refresh_oauth_tokens(integration, host)
        host = build_host(host_config(integration))
    return host


OAUTH_REFRESH_MARGIN = timedelta(minutes=5)


def _refresh_due(credentials: Credentials, now: datetime | None = None) -> bool:
    if credentials.auth_type is not AuthType.OAUTH or not credentials.extra.get("refresh_token"):
        return False
    raw = credentials.extra.get("expires_at")
    if not raw:
        return False
    try:
        expires_at = datetime.fromisoformat(raw)
    except ValueError:
        return True
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return expires_at - OAUTH_REFRESH_MARGIN <= (now or datetime.now(UTC))


def refresh_oauth_tokens(integration: Integration, host: OAuthFlow) -> None:
    """Exchange the refresh token for new tokens and store them (encrypted) on the row.
    A refused refresh raises HostAuthError, which marks the integration auth_failed upstream."""
    from connect_app.web.oauth import redirect_uri

    current = credentials_of(integration)
    tokens = host.refresh(current.extra["refresh_token"], redirect_uri=redirect_uri())
    extra = dict(current.extra)
    if tokens.refresh_token:
        extra["refresh_token"] = tokens.refresh_token
    if tokens.expires_at:
        extra["expires_at"] = tokens.expires_at.isoformat()
    else:
        extra.pop("expires_at", None)
    renewed = Credentials(AuthType.OAUTH, token=tokens.access_token, username=current.username, extra=extra)
    integration.credentials_encrypted = runtime().secrets.encrypt(encode_credentials(renewed))


def remote_repository(repo: Repository) -> RemoteRepository:
    """The host's view of a stored repository, as the GitHost methods take it."""
    return RemoteRepository(
        external_id=repo.external_id,
        name=repo.name,
        clone_url=repo.clone_url,
        web_url=repo.web_url,
        default_branch=repo.default_branch,
        namespace=repo.namespace,
    )


def add_repositories(
    session: Session, integration: Integration, remotes: Iterable[RemoteRepository]
) -> list[Repository]:
    """Insert repositories not stored yet (by external id); returns the new rows."""
    known = {
        ext for (ext,) in session.query(Repository.external_id).filter(Repository.integration_id == integration.id)
    }
    added = []
    for remote in remotes:
        if remote.external_id in known:
            continue
        known.add(remote.external_id)
        repo = Repository(
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            provider=integration.provider,
            external_id=remote.external_id,
            name=remote.name,
            namespace=remote.namespace,
            clone_url=remote.clone_url,
            web_url=remote.web_url,
            default_branch=remote.default_branch,
        )
        session.add(repo)
        added.append(repo)
    session.flush()
    return added
