"""A commit seen in a repository's history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime


class Commit(TenantScoped, Base):
    __tablename__ = "commit"
    __table_args__ = (UniqueConstraint("repository_id", "sha", name="uq_commit_repository_sha"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: the hot lookups start with repository_id (or tenant_id + issue_key), and
    # one more index on the widest tables costs every bulk insert. Uninstall scans once instead.
    tenant_id: Mapped[int] = mapped_column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id", ondelete="CASCADE"), nullable=False)
    sha: Mapped[str] = mapped_column(String(64), nullable=False)
    author_name: Mapped[str] = mapped_column(String(255), nullable=False)
    author_email: Mapped[str] = mapped_column(String(255), nullable=False)
    authored_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    files_changed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    parent_count: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    url: Mapped[str | None] = mapped_column(String(2048))
    # The branch this commit belongs to, as the history walk labelled it
    # (connect_app.indexing.commit_branches). None when only tags reach it, when the walk did not
    # see a labelled child (an incremental walk's older side) or it was indexed before this existed.
    branch: Mapped[str | None] = mapped_column(String(1024))
