"""The smart-commit ledger: one row per (commit, issue key, command) a tenant has seen acted on.

The unique keys make a command run at most once per tenant, whatever repository, reindex or
webhook redelivery brings its commit back: ``(tenant_id, sha, issue_key, command_index)`` for
the commit itself, and ``(tenant_id, fingerprint, issue_key, command_index)`` for the same
change under another sha (a rebase or cherry-pick keeps author, author date and message).
Rows outlive their integration and repository (``SET NULL``), or deleting and re-adding an
integration would run the last fortnight's commands again. See :mod:`connect_app.jira.smart_commits`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime, utcnow


class SmartCommitMode(StrEnum):
    APP = "app"  # this app runs the commands, acting as the commit's author
    JIRA = "jira"  # Jira runs them from the commit sent to its Development panel


class SmartCommitStatus(StrEnum):
    CLAIMED = "claimed"  # app: being executed (left so by a crash: at most once, never retried)
    DONE = "done"  # app: Jira accepted the comment / worklog / transition
    FAILED = "failed"  # app: Jira refused it (error says why); jira: the commit was refused
    SKIPPED = "skipped"  # app: not attempted (no matching Jira user, impersonation unavailable...)
    DELEGATING = "delegating"  # jira: in a Development panel request not yet accepted
    DELEGATED = "delegated"  # jira: accepted by Jira with preventTransitions=false


class SmartCommitExecution(TenantScoped, Base):
    __tablename__ = "smart_commit_execution"
    __table_args__ = (
        UniqueConstraint("tenant_id", "sha", "issue_key", "command_index", name="uq_smart_commit_execution_command"),
        UniqueConstraint(
            "tenant_id", "fingerprint", "issue_key", "command_index", name="uq_smart_commit_execution_fingerprint"
        ),
        # The integration's log: newest first.
        Index("ix_smart_commit_execution_integration_created", "integration_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("integration.id", ondelete="SET NULL"))
    repository_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("repository.id", ondelete="SET NULL"))
    sha: Mapped[str] = mapped_column(String(64), nullable=False)
    # sha256 of author email, author date and message: the same change under another sha.
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    issue_key: Mapped[str] = mapped_column(String(255), nullable=False)
    command_index: Mapped[int] = mapped_column(Integer, nullable=False)  # position in the message
    command: Mapped[str] = mapped_column(String(16), nullable=False)  # comment / time / transition
    summary: Mapped[str] = mapped_column(String(255), nullable=False)  # e.g. "#time 1h 30m", "#start-progress"
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    account_id: Mapped[str | None] = mapped_column(String(128))  # the Jira user acted as
    error: Mapped[str | None] = mapped_column(Text)  # why it failed or was skipped (user-facing)
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return (
            f"SmartCommitExecution(sha={self.sha[:12]!r}, issue_key={self.issue_key!r}, "
            f"command={self.summary!r}, status={self.status!r})"
        )
