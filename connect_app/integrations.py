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

from sqlalchemy.orm import Session

from connect_app.errors import ValidationError
from connect_app.extensions import redis_conn
from connect_app.hosts.base import AuthType, Credentials, GitHost, ProviderId, RemoteRepository
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
    settings = runtime().settings
    client = redis_conn.client
    return HostConfig(
        provider=ProviderId(integration.provider),
        credentials=credentials_of(integration),
        base_url=integration.base_url,
        namespace=integration.namespace,
        allow_private=settings.allow_private_hosts,
        client_options={
            "budget_store": RedisBudgetStore(client),
            "etag_cache": RedisEtagCache(client),
        },
    )


def host_for(integration: Integration) -> GitHost:
    return build_host(host_config(integration))


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
        ext
        for (ext,) in session.query(Repository.external_id).filter(Repository.integration_id == integration.id)
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
