"""RQ entry points. Thin: ids in, plain dicts out, the work lives in ``connect_app``.

Enqueue them by dotted path (``"workers.jobs.index_repository"``) so the web process
never imports worker-only code.
"""

from __future__ import annotations

from typing import Any

from workers.context import job_context


def index_repository(repository_id: int, trigger: str, run_id: int | None = None) -> dict[str, Any]:
    from connect_app.indexing.sync import run_index
    from connect_app.jira.followups import after_index

    with job_context():
        result = run_index(repository_id, trigger, run_id).as_dict()
        after_index(result, str(trigger))
        return result


def sync_to_jira(repository_id: int, backfill: bool = False) -> dict[str, Any]:
    """Development panel push and smart commits for one repository (after an index run)."""
    from connect_app.jira.followups import sync_repository

    with job_context():
        return sync_repository(repository_id, backfill)


def remove_integration_from_jira(tenant_id: int, integration_id: int) -> dict[str, Any]:
    """Delete what an integration pushed to Jira's Development panel (after it was deleted here)."""
    from connect_app.jira.followups import remove_integration

    with job_context():
        return remove_integration(tenant_id, integration_id)


def discover_repositories(integration_id: int, run_id: int | None = None) -> dict[str, Any]:
    from connect_app.indexing.discovery import run_discovery

    with job_context():
        return run_discovery(integration_id, run_id)


def dispatch() -> int:
    """Enqueue due repositories fairly; retry webhook deliveries Redis missed."""
    from connect_app.indexing.scheduler import dispatch as dispatch_due

    with job_context():
        return dispatch_due()


def refresh_jira_projects(tenant_id: int) -> int:
    from connect_app.jira.projects import refresh_projects

    with job_context():
        return refresh_projects(tenant_id)


def prune() -> int:
    from connect_app.indexing.scheduler import prune_history

    with job_context():
        return prune_history()


def run_action(action_id: str) -> dict[str, Any]:
    """Create the branch or pull request a user asked for from an issue (``ActionJob`` ``action_id``)."""
    from connect_app.extensions import db
    from connect_app.services.action_runner import run_action as run

    with job_context():
        return run(db.session(), action_id)


def report_personal_data() -> dict[str, Any]:
    """Report the Jira accountIds we hold for every site that is due; erase closed accounts."""
    from connect_app.jira.personal_data import run_cycle

    with job_context():
        return run_cycle()


def refresh_licenses() -> dict[str, int]:
    """Ask Jira for the Marketplace licence of sites not checked lately (ENABLE_LICENSING on)."""
    from connect_app.jira.licensing import refresh_licenses as refresh

    with job_context():
        return refresh()
