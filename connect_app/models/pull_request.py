"""A pull / merge request of a repository, as the host's API last reported it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime


class PullRequestRecord(TenantScoped, Base):
    """Named ``...Record`` so it never shadows ``hosts.base.PullRequest`` (the host's value)."""

    __tablename__ = "pull_request"
    __table_args__ = (UniqueConstraint("repository_id", "external_id", name="uq_pull_request_repository_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id", ondelete="CASCADE"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(64), nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # OPEN / MERGED / DECLINED
    source_branch: Mapped[str] = mapped_column(String(1024), nullable=False)
    target_branch: Mapped[str] = mapped_column(String(1024), nullable=False)
    author: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    created_on_host: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_on_host: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
