"""One indexing or discovery run: what the indexing queue viewer shows."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime, utcnow


class RunKind(StrEnum):
    INDEX = "index"  # index_repository
    DISCOVER = "discover"  # discover_repositories


class Trigger(StrEnum):
    INITIAL = "initial"
    SCHEDULED = "scheduled"
    WEBHOOK = "webhook"
    MANUAL = "manual"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"


class IndexRun(TenantScoped, Base):
    __tablename__ = "index_run"
    __table_args__ = (
        Index("ix_index_run_tenant_queued", "tenant_id", "queued_at"),
        Index("ix_index_run_repository_status", "repository_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("integration.id", ondelete="CASCADE"), nullable=False, index=True
    )
    repository_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("repository.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default=RunKind.INDEX.value, nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED.value, nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(128))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    commits_seen: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    commits_linked: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    branches_seen: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    pull_requests_seen: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    links_created: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    repositories_seen: Mapped[int] = mapped_column(Integer, default=0, nullable=False)  # discovery runs
    rate_limited_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)  # user-facing text, secrets scrubbed

    @property
    def delay(self) -> timedelta | None:
        """How long the run waited in the queue."""
        return self.started_at - self.queued_at if self.started_at else None

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.started_at and self.finished_at else None
