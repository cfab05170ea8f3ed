"""Re-sign-in: replace an existing integration's credentials (a new token, or the tokens of an
OAuth sign-in), for ``PUT /api/integrations/{id}/credentials``.

The new credentials are checked live on the host and stored encrypted by
:func:`connect_app.services.integration_admin.update_integration` (network first, then one
transaction: a refusal changes nothing); that also clears an ``auth_failed`` status and
queues a discovery. Then this module writes the integration's log -- saying so when the host
account differs from the one before (accepted: an admin may move an integration to a service
account) -- and requests a reindex of every enabled repository.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.hosts.base import AuthType, Credentials
from connect_app.indexing import scheduler
from connect_app.models import EventLevel, EventSource, Integration, IntegrationStatus, Repository, Trigger
from connect_app.services import integration_admin as admin
from connect_app.services.admin_input import IntegrationPatch
from connect_app.services.integration_log import record_event

log = logging.getLogger(__name__)

CODE = "credentials_replaced"


@dataclass(frozen=True)
class Replaced:
    updated: admin.Updated
    previous_account_name: str | None
    account_changed: bool
    reindex_requested: int = 0
    reindex_enqueued: int = 0
    note: str | None = None


def _how(credentials: Credentials, via_oauth: bool) -> str:
    if via_oauth:
        return "an OAuth sign-in"
    if credentials.auth_type is AuthType.PAT:
        return "a new access token"
    return f"new {credentials.auth_type.value} credentials"


def account_changed(before: str | None, after: str | None) -> bool:
    """Whether the host account differs; unknown before (older integrations) is not a change."""
    return bool(before and after and before.casefold() != after.casefold())


def replace_credentials(
    session: Session,
    integration: Integration,
    credentials: Credentials,
    *,
    allow_private: bool,
    by: str | None,
    via_oauth: bool = False,
) -> Replaced:
    """Validate ``credentials`` live, store them, log it and request a reindex."""
    previous = integration.account_name
    was_refused = integration.status == IntegrationStatus.AUTH_FAILED.value
    updated = admin.update_integration(
        session, integration, IntegrationPatch(credentials=credentials), allow_private=allow_private
    )
    current = integration.account_name
    changed = account_changed(previous, current)
    how = _how(credentials, via_oauth)
    if changed:
        message = (
            f"Credentials replaced through {how}; they belong to another account on the host: {current} "
            f"(before: {previous}). Repositories and host permissions now follow {current}'s access."
        )
    else:
        message = f"Credentials replaced through {how}; the host accepts them as {current or 'an anonymous user'}."
    if was_refused:
        message += " The integration was paused because the host refused the old credentials; indexing resumes."
    record_event(
        session,
        tenant_id=integration.tenant_id,
        integration_id=integration.id,
        level=EventLevel.WARNING if changed else EventLevel.INFO,
        source=EventSource.CREDENTIALS,
        message=message,
        detail={
            "code": CODE,
            "auth_type": credentials.auth_type.value,
            "oauth": via_oauth,
            "account_name": current,
            "previous_account_name": previous,
            "account_changed": changed,
            "by": by,
        },
    )
    session.commit()
    log.info("credentials of integration %s replaced (account changed: %s)", integration.id, changed)
    if integration.status != IntegrationStatus.ACTIVE.value:
        return Replaced(updated, previous, changed, note="The integration is disabled: nothing is reindexed.")
    repos = list(
        session.scalars(
            select(Repository).where(
                Repository.tenant_id == integration.tenant_id,
                Repository.integration_id == integration.id,
                Repository.enabled.is_(True),
                Repository.removed_at.is_(None),
            )
        )
    )
    if not repos:
        return Replaced(updated, previous, changed, note=updated.note)
    try:
        enqueued = scheduler.request_index(session, repos, Trigger.MANUAL)
    except RedisError:
        session.rollback()
        log.warning("Redis unreachable: reindex of integration %s left to the dispatcher", integration.id)
        return Replaced(updated, previous, changed, len(repos), 0, admin.QUEUE_DOWN_NOTE)
    return Replaced(updated, previous, changed, len(repos), enqueued, updated.note)
