"""One connection an admin made to a git host: provider, credentials, and settings."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, TimestampMixin, UTCDateTime


class RepositorySelection(StrEnum):
    ALL = "all"  # every repository the credentials see now (later ones are not added)
    ALL_FUTURE = "all_future"  # every repository, including ones created later
    SELECTED = "selected"  # only the repositories the admin picked


class IntegrationStatus(StrEnum):
    ACTIVE = "active"
    AUTH_FAILED = "auth_failed"  # the host refused the credentials; indexing paused until fixed
    DISABLED = "disabled"


class Integration(TenantScoped, TimestampMixin, Base):
    __tablename__ = "integration"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)  # a hosts.base.ProviderId value
    display_name: Mapped[str] = mapped_column(String(255), nullable=False)
    base_url: Mapped[str | None] = mapped_column(String(1024))
    namespace: Mapped[str | None] = mapped_column(String(255))
    auth_type: Mapped[str] = mapped_column(String(16), nullable=False)  # a hosts.base.AuthType value
    # Fernet token of the JSON-encoded Credentials (connect_app.integrations); never plaintext.
    credentials_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    # Identifies the credential for the shared rate budget without revealing it (a keyed hash).
    credential_key: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    account_name: Mapped[str | None] = mapped_column(String(255))
    repository_selection: Mapped[str] = mapped_column(String(16), default=RepositorySelection.ALL_FUTURE.value)
    require_user_pat: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    enforce_permissions: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    project_keys: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)  # empty: every project
    # None: adaptive (sooner for busy repositories, up to a day for idle ones).
    reindex_interval_minutes: Mapped[int | None] = mapped_column(Integer)
    features: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=IntegrationStatus.ACTIVE.value, nullable=False)
    status_detail: Mapped[str | None] = mapped_column(Text)
    # The webhook URL is /webhooks/<id>/<webhook_token>; the secret signs deliveries.
    webhook_token: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    webhook_secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    last_discovered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(128))  # Jira accountId

    def __repr__(self) -> str:
        return f"Integration(id={self.id!r}, provider={self.provider!r}, name={self.display_name!r})"
