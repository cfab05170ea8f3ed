"""Marketplace licensing: the descriptor flag, the ``lic`` parameter on every iframe page, and no
indexing for a site without an active licence (connect_app.jira.licensing)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import select, update

from connect_app.extensions import db, redis_conn
from connect_app.indexing import due, housekeeping, scheduler
from connect_app.jira.descriptor import build_descriptor
from connect_app.jira.licensing import (
    RECORD_EVERY,
    REFRESH_JOB_ID,
    enqueue_refresh_if_due,
    lic_answer,
    record_license,
    refresh_licenses,
)
from connect_app.models import Integration, Repository, Tenant, Trigger, utcnow
from connect_app.runtime import runtime
from tests.indexing.scheduling_support import all_job_ids, index_jobs, make_integration, make_repos, make_tenant
from tests.support.connect import Jira, JiraSite
from tests.support.http_server import LoopbackServer
from tests.support.jira_stub import JiraStub
from tests.support.marketplace_stub import MarketplaceStub
from workers.dispatcher import LICENSES_KEY, Dispatcher

MESSAGE = "This site has no active license for Git Connect for Jira."
ADMIN = "acct-licence-admin"

PAGES = [
    "/panel/issue?issueKey=ABC-1&projectKey=ABC",
    "/admin/repositories",
    "/admin/configure",
    "/admin/welcome",
    "/user/settings",
    "/browse",
    "/actions/create-branch?issueKey=ABC-1",
    "/actions/create-pull-request?issueKey=ABC-1",
]


@pytest.fixture
def licensing_on(app: Flask) -> Iterator[None]:
    rt = app.extensions["git_connect"]
    app.extensions["git_connect"] = dataclasses.replace(rt, settings=rt.settings.with_overrides(enable_licensing=True))
    yield
    app.extensions["git_connect"] = rt


@pytest.fixture
def admin(jira_stub: JiraStub) -> Iterator[str]:
    jira_stub.admins.add(ADMIN)
    yield ADMIN
    jira_stub.admins.discard(ADMIN)


def _tenant(app: Flask, site: JiraSite) -> Tenant:
    with app.app_context():
        tenant = db.session().scalar(select(Tenant).where(Tenant.client_key == site.client_key))
        assert tenant is not None
        db.session().expunge(tenant)
        return tenant


def _open(jira: Jira, site: JiraSite, page: str, lic: str | None) -> str:
    url = page if lic is None else f"{page}{'&' if '?' in page else '?'}lic={lic}"
    response = jira.get_page(site, url, account_id=ADMIN)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_data(as_text=True)


# --- descriptor -------------------------------------------------------------------------------


def test_descriptor_enable_licensing_follows_the_setting(app: Flask, client: FlaskClient) -> None:
    assert client.get("/atlassian-connect.json").get_json()["enableLicensing"] is False
    settings = app.extensions["git_connect"].settings
    assert build_descriptor(settings.with_overrides(enable_licensing=True))["enableLicensing"] is True


def test_descriptor_served_with_licensing_on(client: FlaskClient, licensing_on: None) -> None:
    assert client.get("/atlassian-connect.json").get_json()["enableLicensing"] is True


# --- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_licensing_off_ignores_lic(app: Flask, jira: Jira, installed_site: JiraSite, admin: str, page: str) -> None:
    html = _open(jira, installed_site, page, "none")
    assert MESSAGE not in html
    assert _tenant(app, installed_site).license_active is None  # not even recorded


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_the_message_without_a_licence(
    app: Flask, jira: Jira, installed_site: JiraSite, admin: str, licensing_on: None, page: str
) -> None:
    html = _open(jira, installed_site, page, "none")
    assert MESSAGE in html
    assert "data-gcj-unlicensed" in html
    assert "gcj-initial" not in html  # no development data embedded
    tenant = _tenant(app, installed_site)
    assert tenant.license_active is False and tenant.license_checked_at is not None


def test_an_active_licence_shows_the_page_and_is_recorded(
    app: Flask, jira: Jira, installed_site: JiraSite, licensing_on: None
) -> None:
    panel = PAGES[0]
    assert MESSAGE in _open(jira, installed_site, panel, "none")
    html = _open(jira, installed_site, panel, "active")
    assert MESSAGE not in html and "gcj-initial" in html
    assert _tenant(app, installed_site).license_active is True


def test_without_lic_the_last_answer_decides(
    app: Flask, jira: Jira, installed_site: JiraSite, licensing_on: None
) -> None:
    panel = PAGES[0]
    assert MESSAGE not in _open(jira, installed_site, panel, None)  # never seen: allowed
    assert _tenant(app, installed_site).license_active is None
    _open(jira, installed_site, panel, "none")
    assert MESSAGE in _open(jira, installed_site, panel, None)  # e.g. a link the app signed itself


def test_lic_cannot_be_added_to_a_signed_url(client: FlaskClient, installed_site: JiraSite, licensing_on: None) -> None:
    url = "/panel/issue?issueKey=ABC-1&lic=none"
    token = installed_site.token("GET", url)
    assert client.get(f"{url}&jwt={token}").status_code == 200
    tampered = client.get(f"/panel/issue?issueKey=ABC-1&lic=active&jwt={token}")
    assert tampered.status_code == 401  # the qsh covers lic


def test_other_sites_are_not_affected(
    app: Flask, jira: Jira, installed_site: JiraSite, other_site: JiraSite, licensing_on: None
) -> None:
    _open(jira, installed_site, PAGES[0], "none")
    assert MESSAGE not in _open(jira, other_site, PAGES[0], "active")
    assert _tenant(app, other_site).license_active is True
    assert _tenant(app, installed_site).license_active is False


def test_the_json_api_answers_403_unlicensed_for_a_site_without_a_licence(
    app: Flask, jira: Jira, installed_site: JiraSite, other_site: JiraSite, licensing_on: None
) -> None:
    api = "/api/issues/ABC-1/development"
    assert jira.api(installed_site, "GET", api).status_code == 200  # never seen: allowed
    _open(jira, installed_site, PAGES[0], "none")
    response = jira.api(installed_site, "GET", api)
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "unlicensed" and "no active license" in error["message"]
    assert jira.api(other_site, "GET", api).status_code == 200  # another site is not affected
    _open(jira, installed_site, PAGES[0], "active")
    assert jira.api(installed_site, "GET", api).status_code == 200


def test_licensing_off_leaves_the_json_api_alone(app: Flask, jira: Jira, installed_site: JiraSite) -> None:
    with app.app_context():
        db.session().execute(
            update(Tenant).where(Tenant.client_key == installed_site.client_key).values(license_active=False)
        )
        db.session().commit()
    assert jira.api(installed_site, "GET", "/api/issues/ABC-1/development").status_code == 200


def test_lic_values() -> None:
    assert lic_answer(None) is None
    assert lic_answer("active") is True and lic_answer(" ACTIVE ") is True
    assert lic_answer("none") is False and lic_answer("") is False and lic_answer("expired") is False


def test_the_same_answer_is_written_at_most_hourly() -> None:
    tenant = Tenant(client_key="x")
    now = utcnow()
    assert record_license(tenant, True, now) is True
    assert record_license(tenant, True, now + RECORD_EVERY / 2) is False
    assert tenant.license_checked_at == now
    assert record_license(tenant, True, now + RECORD_EVERY) is True
    assert record_license(tenant, False, now + RECORD_EVERY + timedelta(seconds=1)) is True
    assert tenant.license_active is False


# --- indexing ---------------------------------------------------------------------------------


def _two_tenants(app: Flask) -> tuple[int, int, list[int], list[int]]:
    """An unlicensed and an unknown-licence tenant, one due repository each."""
    with app.app_context():
        session = db.session()
        unlicensed, unknown = make_tenant(session, "unlicensed"), make_tenant(session, "unknown")
        unlicensed.license_active = False
        repos_a = make_repos(session, make_integration(session, unlicensed), 1)
        repos_b = make_repos(session, make_integration(session, unknown), 1)
        session.commit()
        return unlicensed.id, unknown.id, repos_a, repos_b


def test_licensing_off_indexes_every_site(app: Flask) -> None:
    a, b, _, _ = _two_tenants(app)
    with app.app_context():
        candidates = due.due_candidates(db.session(), utcnow(), 4)
        assert {c.tenant_id for c in candidates} == {a, b}


def test_an_unlicensed_site_is_not_dispatched(app: Flask, licensing_on: None) -> None:
    _, b, _, repos_b = _two_tenants(app)
    with app.app_context():
        assert {c.tenant_id for c in due.due_candidates(db.session(), utcnow(), 4)} == {b}
        scheduler.dispatch()
        assert index_jobs() == [f"index-{repos_b[0]}"]


def test_manual_and_webhook_requests_skip_an_unlicensed_site(app: Flask, licensing_on: None) -> None:
    _, _, repos_a, _ = _two_tenants(app)
    with app.app_context():
        session = db.session()
        repos = list(session.scalars(select(Repository).where(Repository.id.in_(repos_a))))
        assert scheduler.request_index(session, repos, Trigger.MANUAL) == 0
        assert scheduler.request_index(session, repos, Trigger.WEBHOOK) == 0
        assert index_jobs() == []
        integration = session.scalar(select(Integration).where(Integration.tenant_id == repos[0].tenant_id))
        assert integration is not None
        assert scheduler.request_discovery(session, integration, Trigger.MANUAL) is False


def test_periodic_discovery_skips_an_unlicensed_site(app: Flask, licensing_on: None) -> None:
    with app.app_context():
        session = db.session()
        unlicensed, unknown = make_tenant(session, "unlicensed"), make_tenant(session, "unknown")
        unlicensed.license_active = False
        make_integration(session, unlicensed, discovered=False)
        wanted = make_integration(session, unknown, discovered=False)
        session.commit()
        assert housekeeping.enqueue_due_discoveries(session, redis_conn.client, utcnow()) == 1
        assert f"discover-{wanted.id}" in [j for ids in all_job_ids().values() for j in ids]


def test_a_licence_coming_back_lets_the_request_through(app: Flask, licensing_on: None) -> None:
    a, _, repos_a, repos_b = _two_tenants(app)
    with app.app_context():
        session = db.session()
        tenant = session.get(Tenant, a)
        assert tenant is not None
        tenant.license_active = True
        session.commit()
        scheduler.dispatch()
        assert sorted(index_jobs()) == sorted(f"index-{r}" for r in repos_a + repos_b)


# --- asking Jira --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def marketplace() -> Iterator[tuple[MarketplaceStub, LoopbackServer]]:
    stub = MarketplaceStub(app_key="git-connect-for-jira")
    server = LoopbackServer(stub.wsgi()).start()
    yield stub, server
    server.stop()


@pytest.fixture
def jira_site_factory(app: Flask, marketplace: tuple[MarketplaceStub, LoopbackServer]) -> Iterator[Any]:
    stub, server = marketplace

    def make(name: str, active: bool | None = None, checked: timedelta | None = None) -> int:
        session = db.session()
        tenant = make_tenant(session, name)
        tenant.base_url = server.url
        secret = secrets.token_urlsafe(32)
        tenant.shared_secret_encrypted = runtime().secrets.encrypt(secret)
        if checked is not None:
            tenant.license_active, tenant.license_checked_at = True, utcnow() - checked
        session.commit()
        stub.secrets_by_client[tenant.client_key] = secret
        if active is not None:
            stub.licenses[tenant.client_key] = active
        return tenant.id

    with app.app_context():
        yield make
    stub.secrets_by_client.clear()
    stub.licenses.clear()
    stub.addon_calls.clear()
    stub.addon_status = None


def _licence(tenant_id: int) -> tuple[bool | None, datetime | None]:
    tenant = db.session().get(Tenant, tenant_id, populate_existing=True)
    assert tenant is not None
    return tenant.license_active, tenant.license_checked_at


def test_refresh_asks_jira_for_stale_sites(
    jira_site_factory: Any, licensing_on: None, marketplace: tuple[MarketplaceStub, LoopbackServer]
) -> None:
    active = jira_site_factory("active", True)
    lapsed = jira_site_factory("lapsed", False)
    silent = jira_site_factory("silent")  # Jira says nothing about a licence
    fresh = jira_site_factory("fresh", False, checked=timedelta(hours=1))  # asked lately: not again
    now = utcnow()
    counts = refresh_licenses(now)
    assert counts == {"checked": 3, "active": 1, "inactive": 1, "unknown": 1, "failed": 0}
    assert _licence(active) == (True, now)
    assert _licence(lapsed) == (False, now)
    assert _licence(silent) == (None, now)
    assert _licence(fresh)[0] is True
    assert all(c is not None for c in marketplace[0].addon_calls)  # every call signed for its site
    assert refresh_licenses(now + timedelta(hours=1))["checked"] == 0


def test_refresh_keeps_the_last_answer_when_jira_fails(
    jira_site_factory: Any, licensing_on: None, marketplace: tuple[MarketplaceStub, LoopbackServer]
) -> None:
    site_id = jira_site_factory("down", False)
    marketplace[0].addon_status = 503
    assert refresh_licenses()["failed"] == 1
    assert _licence(site_id) == (None, None)


def test_refresh_does_nothing_with_licensing_off(
    jira_site_factory: Any, marketplace: tuple[MarketplaceStub, LoopbackServer]
) -> None:
    jira_site_factory("any", False)
    assert refresh_licenses()["checked"] == 0
    assert marketplace[0].addon_calls == []
    assert enqueue_refresh_if_due(db.session(), redis_conn.client) is False


def test_the_dispatcher_enqueues_the_refresh(app: Flask, jira_site_factory: Any, licensing_on: None) -> None:
    jira_site_factory("stale")
    Dispatcher(app).tick()
    assert REFRESH_JOB_ID in Queue("maintenance", connection=redis_conn.client).get_job_ids()
    assert redis_conn.client.exists(LICENSES_KEY)
