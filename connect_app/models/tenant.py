"""A Jira Cloud site that installed the app (one Connect ``clientKey``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TimestampMixin, UTCDateTime


class Tenant(TimestampMixin, Base):
    __tablename__ = "tenant"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_key: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    base_url: Mapped[str] = mapped_column(String(512), nullable=False)
    display_url: Mapped[str | None] = mapped_column(String(512))
    product_type: Mapped[str] = mapped_column(String(32), default="jira", nullable=False)
    description: Mapped[str | None] = mapped_column(String(512))
    server_version: Mapped[str | None] = mapped_column(String(64))
    plugins_version: Mapped[str | None] = mapped_column(String(64))
    oauth_client_id: Mapped[str | None] = mapped_column(String(255))  # Connect user impersonation
    # Fernet token (connect_app.security.crypto); the plaintext never touches the database.
    shared_secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    secret_rotated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Marketplace licensing (only consulted when ENABLE_LICENSING is on): the last answer seen,
    # from the ``lic`` parameter of a verified iframe URL or Jira's app-license REST resource.
    # None: never seen.
    license_active: Mapped[bool | None] = mapped_column(Boolean)
    license_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the accountIds we hold for this site are next reported to Atlassian's personal-data
    # reporting API (connect_app.jira.personal_data). None: due now.
    personal_data_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"Tenant(id={self.id!r}, client_key={self.client_key!r}, base_url={self.base_url!r})"
