"""A Jira user's own git-host token per integration, and what it may read (cached).

``UserToken``: one per (tenant, accountId, integration). The token is a Fernet token of the
JSON-encoded ``Credentials`` (like ``Integration.credentials_encrypted``); only its last four
characters and the host account name it belongs to are kept readable, for the settings page.

``UserRepositoryPermission``: what ``GitHost.repository_permission`` answered for the user's
token on a repository, kept a few minutes (``connect_app.services.user_permissions``), so the
issue panel does not call the host on every view. Deleting a token deletes its cache rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, TimestampMixin, UTCDateTime, utcnow


class UserToken(TenantScoped, TimestampMixin, Base):
    __tablename__ = "user_token"
    __table_args__ = (
        UniqueConstraint("tenant_id", "account_id", "integration_id", name="uq_user_token_account_integration"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(String(128), nullable=False)  # Jira accountId (from the verified JWT)
    integration_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("integration.id", ondelete="CASCADE"), nullable=False, index=True
    )
    credentials_encrypted: Mapped[str] = mapped_column(Text, nullable=False)  # never plaintext
    last4: Mapped[str] = mapped_column(String(4), nullable=False)
    host_account_name: Mapped[str | None] = mapped_column(String(255))  # what validate_credentials returned
    validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when the host refused the token after it was saved (expired, revoked); user-facing words.
    invalid_reason: Mapped[str | None] = mapped_column(Text)


class UserRepositoryPermission(TenantScoped, Base):
    __tablename__ = "user_repository_permission"
    __table_args__ = (
        UniqueConstraint("tenant_id", "account_id", "repository_id", name="uq_user_repository_permission_account_repo"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(String(128), nullable=False)
    repository_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("repository.id", ondelete="CASCADE"), nullable=False, index=True
    )
    user_token_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user_token.id", ondelete="CASCADE"), nullable=False, index=True
    )
    permission: Mapped[int] = mapped_column(Integer, nullable=False)  # a hosts.base.Permission value
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
