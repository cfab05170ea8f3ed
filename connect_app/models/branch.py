"""A branch of a repository, as its refs were last seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime, utcnow


class Branch(TenantScoped, Base):
    __tablename__ = "branch"
    __table_args__ = (UniqueConstraint("repository_id", "name", name="uq_branch_repository_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(1024), nullable=False)
    head_sha: Mapped[str] = mapped_column(String(64), nullable=False)
    url: Mapped[str | None] = mapped_column(String(2048))
    # Commits on this branch and not on the repository's default branch, and the reverse, as of
    # ``compared_head_sha`` (this branch's head) and ``compared_default_sha`` (the default branch's
    # head) when they were counted. None: not known (not counted yet, or no default branch).
    ahead: Mapped[int | None] = mapped_column(Integer)
    behind: Mapped[int | None] = mapped_column(Integer)
    compared_head_sha: Mapped[str | None] = mapped_column(String(64))
    compared_default_sha: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False)
