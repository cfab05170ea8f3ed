"""A project of the tenant's Jira site: issue keys of other projects are not linked."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime, utcnow


class JiraProject(TenantScoped, Base):
    __tablename__ = "jira_project"
    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_jira_project_tenant_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    project_id: Mapped[str] = mapped_column(String(32), nullable=False)  # Jira's id
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
