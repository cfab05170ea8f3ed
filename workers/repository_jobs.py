"""RQ entry points that bring the host and Jira in line with an integration's switches.
Thin: an integration id in, a plain dict out; the work lives in ``connect_app``.

Enqueued by ``connect_app.indexing.followup_jobs.request`` (unique ids ``webhooks-<id>`` and
``jira-visibility-<id>``, a second ``-again`` slot while one runs) on the maintenance queue.
A pass that could not finish raises after saving what it did, and RQ's retry carries on.
"""

from __future__ import annotations

from typing import Any

from workers.context import job_context


def sync_webhooks(integration_id: int) -> dict[str, Any]:
    """Register our webhook where it is wanted, delete it where it is not."""
    from connect_app.extensions import db
    from connect_app.indexing.webhook_sync import HostNotReady
    from connect_app.indexing.webhook_sync import sync_webhooks as sync

    with job_context():
        result = sync(db.session(), integration_id)
        if result.unavailable:
            raise HostNotReady(f"The host did not answer: {result.unavailable}")
        return result.as_dict()


def sync_jira_visibility(integration_id: int) -> dict[str, Any]:
    """Delete from Jira's Development panel what is switched off; re-send what is back on."""
    from connect_app.extensions import db
    from connect_app.jira.visibility import reconcile

    with job_context():
        return reconcile(db.session(), integration_id).as_dict()
