"""A tag of a repository (``sha`` is the commit it points at, annotated tags peeled)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped


class Tag(TenantScoped, Base):
    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("repository_id", "name", name="uq_tag_repository_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(1024), nullable=False)
    sha: Mapped[str] = mapped_column(String(64), nullable=False)
