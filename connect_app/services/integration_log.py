"""Write and read the integration's log (:class:`~connect_app.models.IntegrationEvent`).

Writers (devinfo pushes, smart commits, webhook setup, discovery, actions) call
:func:`record_event` inside their own session; the row is committed with their work. Readers
are the admin API (``GET /api/integrations/{id}/log``). Messages are user-facing words and
are cut to :data:`MESSAGE_LIMIT`; ``detail`` holds small JSON (counts, a few samples), never a
secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connect_app.models import EventLevel, EventSource, IntegrationEvent, utcnow

MESSAGE_LIMIT = 2000
DETAIL_SAMPLE_LIMIT = 20  # lists in ``detail`` are cut to this many items


def _trim(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_trim(v) for v in list(value)[:DETAIL_SAMPLE_LIMIT]]
    if isinstance(value, Mapping):
        return {str(k): _trim(v) for k, v in value.items()}
    if isinstance(value, str):
        return value[:MESSAGE_LIMIT]
    return value


def record_event(
    session: Session,
    *,
    tenant_id: int,
    integration_id: int,
    level: EventLevel,
    source: EventSource,
    message: str,
    repository_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> IntegrationEvent:
    """Add one log row to ``session`` (flushed, not committed)."""
    event = IntegrationEvent(
        tenant_id=tenant_id,
        integration_id=integration_id,
        repository_id=repository_id,
        at=at or utcnow(),
        level=EventLevel(level).value,
        source=EventSource(source).value,
        message=message[:MESSAGE_LIMIT],
        detail=_trim(dict(detail or {})),
    )
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session,
    tenant_id: int,
    integration_id: int,
    *,
    levels: Sequence[str] = (),
    sources: Sequence[str] = (),
    repository_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[IntegrationEvent]:
    """Newest first; ``before`` is the last id of the previous page."""
    query = select(IntegrationEvent).where(
        IntegrationEvent.tenant_id == tenant_id, IntegrationEvent.integration_id == integration_id
    )
    if levels:
        query = query.where(IntegrationEvent.level.in_(list(levels)))
    if sources:
        query = query.where(IntegrationEvent.source.in_(list(sources)))
    if repository_id is not None:
        query = query.where(IntegrationEvent.repository_id == repository_id)
    if before is not None:
        query = query.where(IntegrationEvent.id < before)
    return list(session.scalars(query.order_by(IntegrationEvent.id.desc()).limit(limit)))


def prune_events(session: Session, *, older_than: datetime) -> int:
    """Delete rows older than ``older_than`` across tenants (housekeeping); returns how many."""
    result = session.execute(delete(IntegrationEvent).where(IntegrationEvent.at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)
