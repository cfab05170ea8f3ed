"""Housekeeping prunes the integration's log with the index runs (``prune_history``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select

from connect_app.extensions import db
from connect_app.indexing.scheduler import prune_history
from connect_app.models import EventLevel, EventSource, IntegrationEvent
from connect_app.services.integration_log import record_event
from tests.indexing.scheduling_support import make_integration, make_tenant


def test_old_log_events_go_with_the_old_runs(app: Flask) -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    with app.app_context():
        session = db.session()
        integration = make_integration(session, make_tenant(session))
        for message, at in (("old", now - timedelta(days=31)), ("recent", now - timedelta(days=29))):
            record_event(
                session,
                tenant_id=integration.tenant_id,
                integration_id=integration.id,
                level=EventLevel.WARNING,
                source=EventSource.DEVINFO,
                message=message,
                at=at,
            )
        session.commit()
        assert prune_history(now=now) == 1  # the default retention is 30 days
        kept = session.scalars(
            select(IntegrationEvent.message).where(IntegrationEvent.integration_id == integration.id)
        )
        assert list(kept) == ["recent"]
        db.session.remove()
