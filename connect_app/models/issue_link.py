"""Issue key -> commit, branch or pull request, and where the key was found."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime, utcnow


class LinkKind(StrEnum):
    COMMIT = "commit"
    BRANCH = "branch"
    PULL_REQUEST = "pull_request"


class LinkSource(StrEnum):
    MESSAGE = "message"  # commit message
    BRANCH_NAME = "branch_name"
    TITLE = "title"  # pull request title
    DESCRIPTION = "description"  # pull request description


class IssueLink(TenantScoped, Base):
    """``ref`` is the commit sha, the branch name or the pull request's external id; the row
    it names is found by ``(repository_id, ref)`` in its table. One link per key and target:
    ``source`` is where the key was found first (a title beats a description)."""

    __tablename__ = "issue_link"
    __table_args__ = (
        UniqueConstraint("repository_id", "kind", "ref", "issue_key", name="uq_issue_link_target_key"),
        # The issue panel's lookup: every link of one issue in one tenant.
        Index("ix_issue_link_tenant_issue", "tenant_id", "issue_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: the hot lookups start with repository_id (or tenant_id + issue_key), and
    # one more index on the widest tables costs every bulk insert. Uninstall scans once instead.
    tenant_id: Mapped[int] = mapped_column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id", ondelete="CASCADE"), nullable=False)
    issue_key: Mapped[str] = mapped_column(String(255), nullable=False)
    project_key: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    ref: Mapped[str] = mapped_column(String(1024), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
