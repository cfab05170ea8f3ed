"""Shared by the Jira-side writers of the integration's log (Development panel pushes, smart
commits): whether the same thing was said recently, so a condition that lasts (Jira refusing
the app, a rate limit, impersonation not set up) is logged once per period, not once per job.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.models import EventSource, IntegrationEvent

LOOKBACK_ROWS = 50  # recent rows of the same source and repository scanned for the code


def recently_recorded(
    session: Session,
    *,
    integration_id: int,
    source: EventSource,
    code: str,
    within: timedelta,
    now: datetime,
    repository_id: int | None = None,
) -> bool:
    """Whether an event with ``detail["code"] == code`` was recorded for the integration (and
    repository, when given) within ``within`` before ``now``. Reads a few newest rows through
    the (integration, at) index; the code is compared in Python (JSON queries differ per database)."""
    query = select(IntegrationEvent.detail).where(
        IntegrationEvent.integration_id == integration_id,
        IntegrationEvent.source == EventSource(source).value,
        IntegrationEvent.at >= now - within,
    )
    if repository_id is not None:
        query = query.where(IntegrationEvent.repository_id == repository_id)
    rows = session.scalars(query.order_by(IntegrationEvent.at.desc()).limit(LOOKBACK_ROWS))
    return any(isinstance(detail, dict) and detail.get("code") == code for detail in rows)
