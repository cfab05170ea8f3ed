"""Bookkeeping of what was sent to Jira's Development panel (``/rest/devinfo/0.10``).

``DevinfoRepositoryState`` (one per repository): the cursors of the last complete push, the
progress of an interrupted one (``pending``), the branch ids Jira holds (so deleted branches
are deleted there too) and what the last push reported -- entities Jira refused, issue keys
it does not know, keys beyond its 100-per-entity limit -- for the integration's log.

``DevinfoTenantState`` (one per tenant): Jira refused the app itself (401/403) and pushes
wait until the tenant reinstalls (a new shared secret) or a cool-down passes.
See :mod:`connect_app.jira.devinfo`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime, utcnow


class DevinfoStatus(StrEnum):
    OK = "ok"  # the last push completed (some entities may still have been refused: see last_result)
    PARTIAL = "partial"  # interrupted (rate limit, Jira unavailable); ``pending`` says where to resume
    NEEDS_ATTENTION = "needs_attention"  # Jira refused the app (401/403): reinstall or fix the descriptor


class DevinfoRepositoryState(TenantScoped, Base):
    __tablename__ = "devinfo_repository_state"
    __table_args__ = (UniqueConstraint("repository_id", name="uq_devinfo_repository_state_repository"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id", ondelete="CASCADE"), nullable=False)
    integration_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("integration.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Highest issue_link.id included in the last complete push (links above it are new).
    link_cursor: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # When the last complete push *started*: the next incremental push sends what changed since.
    last_success_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # An interrupted push: its selection and how far it got ({"since", "backfill", "kind", "after"}).
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Branch entity ids Jira holds for this repository (deleted there when the branch goes).
    pushed_branch_ids: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=DevinfoStatus.OK.value, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)  # user-facing
    # Counts and samples of the last push (DevinfoResult.summary()): refused entities, unknown keys...
    last_result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    # Issue keys Jira reported as unknown (newest last, capped).
    unknown_issue_keys: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False)


class DevinfoTenantState(TenantScoped, Base):
    __tablename__ = "devinfo_tenant_state"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_devinfo_tenant_state_tenant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=DevinfoStatus.OK.value, nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)  # user-facing: what Jira said and what to do
    http_status: Mapped[int | None] = mapped_column(Integer)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when Jira first refused
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the last attempt that was refused
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False)
