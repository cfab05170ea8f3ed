"""Tenant lifecycle: install (and reinstall), uninstall, enable/disable."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import PermissionDenied, ValidationError
from connect_app.models import Tenant, utcnow
from connect_app.security.crypto import SecretBox


@dataclass(frozen=True)
class InstallPayload:
    key: str
    client_key: str
    shared_secret: str
    base_url: str
    display_url: str | None
    product_type: str
    description: str | None
    server_version: str | None
    plugins_version: str | None
    oauth_client_id: str | None = None  # for user impersonation (ACT_AS_USER)

    def __repr__(self) -> str:  # the shared secret never reaches a log line
        return f"InstallPayload(client_key={self.client_key!r}, base_url={self.base_url!r})"

    @classmethod
    def parse(cls, body: Any) -> InstallPayload:
        if not isinstance(body, dict):
            raise ValidationError("the lifecycle body must be a JSON object")

        def text(name: str, *, required: bool = True, max_len: int = 512) -> str | None:
            value = body.get(name)
            if value is None or value == "":
                if required:
                    raise ValidationError(f"the lifecycle body is missing '{name}'")
                return None
            if not isinstance(value, str) or len(value) > max_len:
                raise ValidationError(f"'{name}' must be a string of at most {max_len} characters")
            return value

        return cls(
            key=text("key") or "",
            client_key=text("clientKey", max_len=255) or "",
            shared_secret=text("sharedSecret", max_len=1024) or "",
            base_url=(text("baseUrl") or "").rstrip("/"),
            display_url=(text("displayUrl", required=False) or None),
            product_type=text("productType", required=False, max_len=32) or "jira",
            description=text("description", required=False),
            server_version=text("serverVersion", required=False, max_len=64),
            plugins_version=text("pluginsVersion", required=False, max_len=64),
            oauth_client_id=text("oauthClientId", required=False, max_len=255),
        )


def base_url_allowed(url: str, patterns: tuple[str, ...]) -> bool:
    """Whether a Jira site URL matches one of ``JIRA_BASE_URL_PATTERNS`` (``https://*.atlassian.net``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.username or parts.password or parts.query or parts.fragment or not parts.hostname:
        return False
    host = parts.hostname.lower()
    for pattern in patterns:
        p = urlsplit(pattern)
        if p.scheme != parts.scheme:
            continue
        p_host, _, p_port = p.netloc.lower().partition(":")
        if not fnmatch.fnmatchcase(host, p_host):
            continue
        if p_port == "*" or (p_port == "" and port is None) or (p_port and port is not None and str(port) == p_port):
            return True
    return False


def find_tenant(session: Session, client_key: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.client_key == client_key))


def install(session: Session, payload: InstallPayload, secrets: SecretBox) -> Tenant:
    """Create the tenant, or update it on reinstall (the shared secret rotates)."""
    now = utcnow()
    tenant = find_tenant(session, payload.client_key)
    if tenant is None:
        tenant = Tenant(client_key=payload.client_key, installed_at=now)
        session.add(tenant)
    tenant.base_url = payload.base_url
    tenant.display_url = payload.display_url
    tenant.product_type = payload.product_type
    tenant.description = payload.description
    tenant.server_version = payload.server_version
    tenant.plugins_version = payload.plugins_version
    tenant.oauth_client_id = payload.oauth_client_id
    tenant.shared_secret_encrypted = secrets.encrypt(payload.shared_secret)
    tenant.secret_rotated_at = now
    tenant.enabled = True
    session.flush()
    return tenant


def uninstall(session: Session, client_key: str) -> bool:
    """Delete the tenant and, through ON DELETE CASCADE, everything it owns."""
    tenant = find_tenant(session, client_key)
    if tenant is None:
        return False
    session.delete(tenant)
    session.flush()
    return True


def set_enabled(session: Session, tenant: Tenant, enabled: bool) -> None:
    tenant.enabled = enabled
    session.flush()


def shared_secret(tenant: Tenant, secrets: SecretBox) -> str:
    return secrets.decrypt(tenant.shared_secret_encrypted)


def require_enabled(tenant: Tenant) -> None:
    if not tenant.enabled:
        raise PermissionDenied("Git Connect is disabled on this Jira site.", code="app_disabled")
