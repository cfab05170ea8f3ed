"""A webhook delivery, stored before we answer the host (so nothing is lost)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connect_app.models.base import Base, TenantScoped, UTCDateTime, utcnow


class DeliveryStatus(StrEnum):
    RECEIVED = "received"  # stored; jobs not enqueued yet (Redis may be down)
    ENQUEUED = "enqueued"
    IGNORED = "ignored"  # authentic but nothing to do (ping, unknown repository)
    MALFORMED = "malformed"  # authentic but unparseable; body kept for diagnosis
    FAILED = "failed"  # enqueueing its work failed too often (not Redis being down); error kept


class WebhookDelivery(TenantScoped, Base):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("integration_id", "delivery_key", name="uq_webhook_delivery_integration_key"),
        Index("ix_webhook_delivery_status", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("integration.id", ondelete="CASCADE"), nullable=False
    )
    # The host's delivery id, or "sha256:<hex>" of the body when the host sends none.
    delivery_key: Mapped[str] = mapped_column(String(128), nullable=False)
    event: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.RECEIVED.value, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    repository_ids: Mapped[list[int]] = mapped_column(JSON, default=list, nullable=False)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)  # kept only for malformed deliveries
    error: Mapped[str | None] = mapped_column(Text)
    # Failed attempts to enqueue its work (Redis being down does not count) and when the dispatcher
    # may try again (backing off); None: at once.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
