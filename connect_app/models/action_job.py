"""A user-requested action on a git host (create branch, create pull request) run as an RQ job.

The API answers ``202 {job_id}`` and the dialog polls ``GET /api/jobs/{id}``, which reads this
row (not RQ's job hash): it is scoped to the tenant and the account that asked, and it survives
Redis restarts and RQ's result TTLs. ``id`` is a random URL-safe string, not a counter.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, TimestampMixin, UTCDateTime


class ActionKind(StrEnum):
    CREATE_BRANCH = "create_branch"
    CREATE_PULL_REQUEST = "create_pull_request"


class ActionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ActionJob(TenantScoped, TimestampMixin, Base):
    __tablename__ = "action_job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # an ActionKind value
    issue_key: Mapped[str] = mapped_column(String(255), nullable=False)
    repository_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("repository.id", ondelete="SET NULL"))
    # The validated request ({"source", "name"} or {"source", "target", "title", "body"}); no secrets.
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    # True when the user's own token is used (require user PAT), False for the integration's.
    as_user: Mapped[bool] = mapped_column(default=False, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=ActionStatus.QUEUED.value, nullable=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"name","url",...} when done
    error_code: Mapped[str | None] = mapped_column(String(64))  # AppError code when failed
    error: Mapped[str | None] = mapped_column(Text)  # user-facing words when failed
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # rate limited: when to try again
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
