"""A repository of an integration, and where its indexing stands (cursors included)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, TimestampMixin, UTCDateTime


class RepositoryStatus(StrEnum):
    NEW = "new"  # never indexed
    QUEUED = "queued"
    INDEXING = "indexing"
    OK = "ok"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"
    REMOVED = "removed"  # no longer visible to the integration's credentials


class Repository(TenantScoped, TimestampMixin, Base):
    __tablename__ = "repository"
    __table_args__ = (
        UniqueConstraint("integration_id", "external_id", name="uq_repository_integration_external"),
        Index("ix_repository_due", "enabled", "next_index_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("integration.id", ondelete="CASCADE"), nullable=False, index=True
    )
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    namespace: Mapped[str | None] = mapped_column(String(255))
    clone_url: Mapped[str] = mapped_column(String(2048), nullable=False)
    web_url: Mapped[str | None] = mapped_column(String(2048))
    default_branch: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # Project association: Jira project keys this repository links to; empty follows the integration.
    project_keys: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=RepositoryStatus.NEW.value, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # last run that found something new
    next_index_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set by webhooks and "reindex now"; a run that started before it leaves it for the next run.
    reindex_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    webhook_id: Mapped[str | None] = mapped_column(String(255))  # the hook we registered on the host
    # -- cursors (see connect_app.indexing.sync)
    refs_digest: Mapped[str | None] = mapped_column(String(64))  # hash of the remote ref tips last indexed
    indexed_tips: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)  # commits fully walked
    walk_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the history walk in progress
    pull_requests_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # updated_since cursor
    commit_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)

    def inactive_reason(self) -> str | None:
        """Why nothing of this repository should be indexed, hooked or shown (None: it is active)."""
        if not self.enabled:
            return "the repository is disabled"
        if self.removed_at is not None or self.status == RepositoryStatus.REMOVED.value:
            return "the repository is no longer visible to the integration's credentials"
        return None

    def __repr__(self) -> str:
        return f"Repository(id={self.id!r}, name={self.name!r})"
