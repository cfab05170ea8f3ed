"""Marketplace licensing: the ``lic`` parameter of iframe URLs, and who may be indexed.

With ``ENABLE_LICENSING`` on, the descriptor says ``"enableLicensing": true`` and Jira appends
``lic=active`` or ``lic=none`` to the URL of every iframe it opens for the app (Atlassian's
"Licensing for Connect apps"; assumption: the value is exactly ``active`` for a live licence or
evaluation and anything else means "no licence"). The parameter is part of the query the JWT's
qsh covers, so once ``@jira_auth`` verified the request it cannot have been added or changed by
the user.

* :func:`licensed_page` (under ``@jira_auth``) records the answer on the tenant
  (``license_active``, ``license_checked_at``) and, without an active licence, renders
  ``unlicensed.html`` (a clear message) instead of the page.
* A page opened without ``lic`` (a link the app signed itself, an old descriptor) goes by the
  last answer recorded: ``False`` shows the message, ``None`` (never seen) and ``True`` show
  the page.
* :func:`tenant_may_index` is the SQL condition the scheduler adds: a site whose last answer
  was "no licence" is not indexed, discovered or re-indexed (unknown = allowed until a page
  tells us otherwise, so an install is indexed before anyone opened a page).
* :func:`refresh_licenses` (``workers.jobs.refresh_licenses``, enqueued by the dispatcher at
  most hourly) asks Jira itself for sites whose answer is older than :data:`REFRESH_AFTER`, so
  a site nobody opens a page of is caught too.

With ``ENABLE_LICENSING`` off, ``lic`` is ignored entirely and every site may be indexed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import ParamSpec

from flask import Response, request
from redis import Redis
from sqlalchemy import and_, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from connect_app.errors import AppError, PermissionDenied
from connect_app.extensions import db
from connect_app.jira.client import JiraClient
from connect_app.models import Tenant, utcnow
from connect_app.runtime import runtime

log = logging.getLogger(__name__)

P = ParamSpec("P")

LIC_PARAM = "lic"
LIC_ACTIVE = "active"
# The same answer is written again at most this often (a page view is not a database write).
RECORD_EVERY = timedelta(hours=1)
UNLICENSED_TEMPLATE = "unlicensed.html"


def licensing_enabled() -> bool:
    return runtime().settings.enable_licensing


def lic_answer(value: str | None) -> bool | None:
    """``lic`` as Jira sent it: True (active), False (anything else), None (absent)."""
    if value is None:
        return None
    return value.strip().lower() == LIC_ACTIVE


def record_license(tenant: Tenant, active: bool, now: datetime | None = None) -> bool:
    """Remember the answer on the tenant (flushed, not committed); False when nothing changed
    and it was written less than :data:`RECORD_EVERY` ago."""
    now = now or utcnow()
    checked = tenant.license_checked_at
    if tenant.license_active is active and checked is not None and now - checked < RECORD_EVERY:
        return False
    if tenant.license_active is not active:
        log.info("tenant %s licence is now %s", tenant.id, "active" if active else "not active")
    tenant.license_active = active
    tenant.license_checked_at = now
    return True


def tenant_licensed(tenant: Tenant) -> bool:
    """Whether the site may use the app now (always, with licensing off)."""
    return not licensing_enabled() or tenant.license_active is not False


def require_license(tenant: Tenant) -> None:
    """The JSON API's check (its context tokens carry no ``lic``): the site's last answer."""
    if not tenant_licensed(tenant):
        raise PermissionDenied(
            f"This site has no active license for {runtime().settings.app_name}. A Jira administrator can "
            "start an evaluation or renew the subscription under Settings > Apps > Manage apps.",
            code="unlicensed",
        )


def tenant_may_index() -> ColumnElement[bool]:
    """SQL condition on ``Tenant`` (joined): licensing off, or the last answer was not "no licence"."""
    if not licensing_enabled():
        return true()
    return or_(Tenant.license_active.is_(None), Tenant.license_active.is_(True))


def unlicensed_page() -> Response:
    from connect_app.web.pages import render_page

    return render_page(UNLICENSED_TEMPLATE, app_name=runtime().settings.app_name)


def licensed_page(view: Callable[P, Response]) -> Callable[P, Response]:
    """Put under ``@jira_auth``: record ``lic`` and show the no-licence message instead of
    the page when the site has no active licence (only with ``ENABLE_LICENSING`` on)."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        if not licensing_enabled():
            return view(*args, **kwargs)
        from connect_app.security.auth import current_tenant

        tenant = current_tenant()
        answer = lic_answer(request.args.get(LIC_PARAM))
        if answer is not None and record_license(tenant, answer):
            db.session().commit()
        if tenant.license_active is False:
            return unlicensed_page()
        return view(*args, **kwargs)

    return wrapper


# --- asking Jira (the periodic refresh) ---------------------------------------------------------

# Connect's app resource: ``{"key", "state", "license": {"active": bool, "type", "evaluation", ...}}``
# (assumption from Atlassian's "Licensing for Connect apps"; not in the bundled platform description).
# ``license`` is absent when the app is not licensed through the Marketplace: then nothing changes.
ADDON_PATH = "/rest/atlassian-connect/1/addons/{app_key}"
REFRESH_AFTER = timedelta(hours=12)  # a site whose last answer is older is asked again
REFRESH_JOB_FUNC = "workers.jobs.refresh_licenses"
REFRESH_JOB_ID = "license-refresh"
REFRESH_JOB_TIMEOUT = 900


def license_from_jira(client: JiraClient, app_key: str) -> bool | None:
    """``license.active`` of the app on this site, or None when Jira does not say."""
    body = client.get_json(ADDON_PATH.format(app_key=app_key))
    lic = body.get("license") if isinstance(body, dict) else None
    if isinstance(lic, dict) and isinstance(lic.get("active"), bool):
        return bool(lic["active"])
    return None


def stale_condition(now: datetime) -> ColumnElement[bool]:
    return and_(
        Tenant.enabled.is_(True),
        or_(Tenant.license_checked_at.is_(None), Tenant.license_checked_at < now - REFRESH_AFTER),
    )


def refresh_licenses(
    now: datetime | None = None, *, client_for: Callable[[Tenant], JiraClient] | None = None
) -> dict[str, int]:
    """Ask Jira for the licence of every enabled site not checked for :data:`REFRESH_AFTER`
    (only with ``ENABLE_LICENSING`` on), so a site nobody opens a page of is still caught.
    A site Jira cannot be asked about keeps its last answer and is asked again next time."""
    counts = {"checked": 0, "active": 0, "inactive": 0, "unknown": 0, "failed": 0}
    if not licensing_enabled():
        return counts
    from connect_app.jira.permissions import jira_client_for

    now = now or utcnow()
    session = db.session()
    make_client = client_for or jira_client_for
    app_key = runtime().settings.app_key
    for tenant_id in list(session.scalars(select(Tenant.id).where(stale_condition(now)).order_by(Tenant.id))):
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            continue
        try:
            active = license_from_jira(make_client(tenant), app_key)
        except (AppError, ValueError) as e:
            counts["failed"] += 1
            log.warning("licence of tenant %s not refreshed: %s", tenant.id, e)
            continue
        counts["checked"] += 1
        if active is None:
            counts["unknown"] += 1
            tenant.license_checked_at = now  # Jira does not say: ask again after REFRESH_AFTER
        else:
            counts["active" if active else "inactive"] += 1
            record_license(tenant, active, now)
        session.commit()
    return counts


def enqueue_refresh_if_due(session: Session, conn: Redis, now: datetime | None = None) -> bool:
    """The dispatcher's trigger: one unique job on the maintenance queue when a site is stale."""
    if not licensing_enabled():
        return False
    from connect_app.indexing import queueing

    now = now or utcnow()
    if session.scalar(select(Tenant.id).where(stale_condition(now)).limit(1)) is None:
        return False
    return queueing.enqueue_unique(
        conn,
        queueing.MAINTENANCE_QUEUE,
        REFRESH_JOB_FUNC,
        (),
        REFRESH_JOB_ID,
        timeout=REFRESH_JOB_TIMEOUT,
        retry=False,
        description="refresh Marketplace licences from Jira",
    )
