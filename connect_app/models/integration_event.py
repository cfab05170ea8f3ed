"""The integration's log: what happened that an admin should be able to read later.

Runs have their own table (``index_run``); this holds everything else worth telling an admin:
Development panel push results (refused entities, unknown issue keys), smart-commit outcomes
(no matching Jira user, transition not found), webhook registration and removal, discovery
changes, credential failures. Rows are user-facing text plus a small JSON ``detail``; never a
secret. Pruned with the index runs (``INDEX_RUN_RETENTION_DAYS``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime, utcnow


class EventLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class EventSource(StrEnum):
    DEVINFO = "devinfo"
    SMART_COMMIT = "smart_commit"
    WEBHOOK = "webhook"
    DISCOVERY = "discovery"
    CREDENTIALS = "credentials"
    SETTINGS = "settings"
    ACTION = "action"  # branch / pull request created from Jira


class IntegrationEvent(TenantScoped, Base):
    __tablename__ = "integration_event"
    __table_args__ = (Index("ix_integration_event_integration_at", "integration_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("integration.id", ondelete="CASCADE"), nullable=False
    )
    repository_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("repository.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)  # an EventLevel value
    source: Mapped[str] = mapped_column(String(32), nullable=False)  # an EventSource value
    message: Mapped[str] = mapped_column(Text, nullable=False)  # user-facing, no secrets
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
