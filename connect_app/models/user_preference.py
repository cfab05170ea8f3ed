"""Small per-user choices worth remembering, e.g. the repository last picked in a project.

``name`` is namespaced by the feature that owns it (``create_branch.repository.<PROJECT>``);
``value`` is JSON. Scoped to (tenant, accountId); nothing secret is stored here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, TimestampMixin


class UserPreference(TenantScoped, TimestampMixin, Base):
    __tablename__ = "user_preference"
    __table_args__ = (UniqueConstraint("tenant_id", "account_id", "name", name="uq_user_preference_account_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
