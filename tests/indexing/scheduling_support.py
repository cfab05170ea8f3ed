"""Rows, queues and fixtures for the scheduler, discovery and dispatcher tests."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from flask import Flask
from rq import Queue
from rq.job import Job
from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from connect_app import create_app
from connect_app.config import Settings
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId
from connect_app.integrations import NewIntegration, create_integration
from connect_app.models import Integration, Repository, RepositorySelection, Tenant, utcnow
from connect_app.runtime import runtime

QUEUES = ("interactive", "webhooks", "indexing", "maintenance")
# Nothing listens there: hosts built from these integrations never reach the network.
NOWHERE = "http://127.0.0.1:9"


def make_tenant(session: Session, name: str = "acme") -> Tenant:
    now = utcnow()
    tenant = Tenant(
        client_key=f"{name}-{secrets.token_hex(4)}",
        base_url=f"https://{name}.atlassian.net",
        shared_secret_encrypted=runtime().secrets.encrypt("shared-" + secrets.token_hex(8)),
        installed_at=now,
        secret_rotated_at=now,
    )
    session.add(tenant)
    session.flush()
    return tenant


def make_integration(
    session: Session,
    tenant: Tenant,
    *,
    token: str | None = None,
    base_url: str = NOWHERE,
    provider: ProviderId = ProviderId.GITLAB_SELF_MANAGED,
    selection: RepositorySelection = RepositorySelection.ALL_FUTURE,
    interval: int | None = None,
    namespace: str | None = None,
    discovered: bool = True,
) -> Integration:
    credentials = Credentials(AuthType.PAT, token=token or "tok-" + secrets.token_hex(8))
    integration = create_integration(
        session,
        tenant.id,
        NewIntegration(
            provider=provider,
            credentials=credentials,
            display_name=f"{provider.value} of {tenant.client_key}",
            base_url=base_url,
            namespace=namespace,
            repository_selection=selection,
            reindex_interval_minutes=interval,
        ),
    )
    if discovered:
        integration.last_discovered_at = utcnow()  # keeps periodic discovery out of dispatch tests
    session.flush()
    return integration


def make_repos(session: Session, integration: Integration, count: int, **fields: Any) -> list[int]:
    """Bulk-insert ``count`` repositories (one statement); returns their ids in order."""
    now = utcnow()
    prefix = secrets.token_hex(3)
    rows = [
        {
            "tenant_id": integration.tenant_id,
            "integration_id": integration.id,
            "provider": integration.provider,
            "external_id": f"{prefix}-{i}",
            "name": f"team/repo-{prefix}-{i}",
            "clone_url": f"{NOWHERE}/team/repo-{i}.git",
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        for i in range(count)
    ]
    session.execute(insert(Repository), rows)
    session.flush()
    return list(
        session.scalars(
            select(Repository.id)
            .where(Repository.integration_id == integration.id, Repository.external_id.like(f"{prefix}-%"))
            .order_by(Repository.id)
        )
    )


def job_ids(queue: str) -> list[str]:
    return Queue(queue, connection=redis_conn.client).get_job_ids()


def all_job_ids() -> dict[str, list[str]]:
    return {q: job_ids(q) for q in QUEUES}


def index_jobs() -> list[str]:
    return [j for q in QUEUES for j in job_ids(q) if j.startswith("index-")]


def job(job_id: str) -> Job:
    return Job.fetch(job_id, connection=redis_conn.client)


def repo(session: Session, repository_id: int) -> Repository:
    found = session.get(Repository, repository_id, populate_existing=True)
    assert found is not None
    return found


@contextmanager
def count_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def at(dt: datetime) -> float:
    return dt.timestamp()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def app_without_redis(settings: Settings) -> Iterator[Flask]:
    """A second app on the same database whose Redis is a closed port."""
    from connect_app import extensions

    # create_app re-points the process-wide defaults (used outside app contexts): keep ours
    saved = extensions.db._default, extensions.redis_conn._default
    broken = create_app(settings.with_overrides(redis_url=f"redis://127.0.0.1:{_closed_port()}/0"))
    try:
        yield broken
    finally:
        with broken.app_context():
            db.session.remove()
            db.engine.dispose()
        extensions.db._default, extensions.redis_conn._default = saved
