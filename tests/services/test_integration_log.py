from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Flask

from connect_app.extensions import db
from connect_app.models import EventLevel, EventSource, Integration, utcnow
from connect_app.services.integration_log import list_events, prune_events, record_event
from tests.support.indexing_fixtures import make_tenant


def _integration(tenant_id: int) -> Integration:
    integration = Integration(
        tenant_id=tenant_id,
        provider="git",
        display_name="repo",
        auth_type="none",
        credentials_encrypted="x",
        credential_key="k",
        webhook_token=secrets.token_hex(8),
        webhook_secret_encrypted="x",
    )
    db.session.add(integration)
    db.session.commit()
    return integration


def test_events_are_newest_first_scoped_and_trimmed(app: Flask) -> None:
    with app.app_context():
        a = _integration(make_tenant(app))
        b = _integration(make_tenant(app))
        s = db.session
        for i in range(3):
            record_event(
                s,
                tenant_id=a.tenant_id,
                integration_id=a.id,
                level=EventLevel.WARNING,
                source=EventSource.DEVINFO,
                message=f"m{i}" + "x" * 5000,
                detail={"keys": list(range(100))},
            )
        record_event(
            s,
            tenant_id=b.tenant_id,
            integration_id=b.id,
            level=EventLevel.INFO,
            source=EventSource.WEBHOOK,
            message="b",
        )
        s.commit()
        events = list_events(s, a.tenant_id, a.id)
        assert [e.message[:2] for e in events] == ["m2", "m1", "m0"]
        assert len(events[0].message) == 2000 and len(events[0].detail["keys"]) == 20
        assert list_events(s, a.tenant_id, b.id) == []  # another tenant's integration: nothing
        assert [e.message for e in list_events(s, b.tenant_id, b.id, sources=["webhook"])] == ["b"]
        assert [e.id for e in list_events(s, a.tenant_id, a.id, before=events[1].id)] == [events[2].id]
        assert prune_events(s, older_than=utcnow() + timedelta(seconds=1)) == 4
