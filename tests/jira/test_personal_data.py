"""The personal-data reporting cycle against a loopback stand-in for Atlassian's API
(tests/support/marketplace_stub.py): what is reported, what a "closed" answer erases, back-off
on 429 and errors, the fixed endpoint setting, and the dispatcher's trigger."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from rq import Queue
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials
from connect_app.integrations import encode_credentials
from connect_app.jira import personal_data
from connect_app.jira.personal_data import HeldAccount, held_accounts, iso_millis, report_tenant, run_cycle
from connect_app.models import (
    ActionJob,
    EventLevel,
    EventSource,
    Integration,
    IntegrationEvent,
    SmartCommitExecution,
    Tenant,
    UserPreference,
    UserRepositoryPermission,
    UserToken,
    utcnow,
)
from connect_app.runtime import runtime
from tests.indexing.scheduling_support import make_integration, make_repos, make_tenant
from tests.support.http_server import LoopbackServer
from tests.support.marketplace_stub import MarketplaceStub
from workers.dispatcher import PERSONAL_DATA_KEY, Dispatcher

APP_KEY = "git-connect-for-jira"
CLOSED = "5be24ba3f91c106033269289"  # Atlassian's test accounts: closed ...
ACTIVE = "5be24ad8b1653240376955d2"  # ... and active
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[MarketplaceStub, LoopbackServer]]:
    s = MarketplaceStub(app_key=APP_KEY)
    server = LoopbackServer(s.wsgi()).start()
    yield s, server
    server.stop()


@pytest.fixture
def report_api(stub: tuple[MarketplaceStub, LoopbackServer]) -> Iterator[MarketplaceStub]:
    s, _ = stub
    yield s
    s.calls.clear()
    s.closed.clear()
    s.updated.clear()
    s.secrets_by_client.clear()
    s.rate_limit_next = 0
    s.fail_next.clear()


@pytest.fixture
def stub_url(stub: tuple[MarketplaceStub, LoopbackServer]) -> str:
    return stub[1].url


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield db.session()


def site(session: Session, stub: MarketplaceStub, base_url: str, name: str = "acme") -> Tenant:
    """A tenant whose Jira is the stub (which knows its shared secret)."""
    tenant = make_tenant(session, name)
    tenant.base_url = base_url
    secret = secrets.token_urlsafe(32)
    tenant.shared_secret_encrypted = runtime().secrets.encrypt(secret)
    stub.secrets_by_client[tenant.client_key] = secret
    session.commit()
    return tenant


def hold(session: Session, tenant: Tenant, integration: Integration, account: str, at: datetime) -> None:
    """One row of every kind that names ``account``."""
    (repo_id,) = make_repos(session, integration, 1)
    token = UserToken(
        tenant_id=tenant.id,
        account_id=account,
        integration_id=integration.id,
        credentials_encrypted=runtime().secrets.encrypt(encode_credentials(Credentials(AuthType.PAT, token="t-1234"))),
        last4="1234",
        created_at=at,
        updated_at=at,
    )
    session.add(token)
    session.flush()
    session.add_all(
        [
            UserRepositoryPermission(
                tenant_id=tenant.id,
                account_id=account,
                repository_id=repo_id,
                user_token_id=token.id,
                permission=1,
                checked_at=at - timedelta(days=1),
            ),
            UserPreference(tenant_id=tenant.id, account_id=account, name="x", value=1, created_at=at, updated_at=at),
            ActionJob(
                id=f"job-{account[:8]}",
                tenant_id=tenant.id,
                account_id=account,
                kind="create_branch",
                issue_key="ABC-1",
                request={},
                created_at=at,
                updated_at=at,
            ),
            SmartCommitExecution(
                tenant_id=tenant.id,
                integration_id=integration.id,
                sha=hashlib.sha1(account.encode()).hexdigest(),
                fingerprint=account[:16],
                issue_key="ABC-1",
                command_index=0,
                command="comment",
                summary="#comment hi",
                mode="auto",
                status="done",
                account_id=account,
                committed_at=at,
                created_at=at,
            ),
            IntegrationEvent(
                tenant_id=tenant.id,
                integration_id=integration.id,
                at=at + timedelta(minutes=5),  # the newest row of this account
                level=EventLevel.ERROR.value,
                source=EventSource.ACTION.value,
                message="Creating the branch failed.",
                detail={"action_id": "job", "code": "x", "account_id": account},
            ),
        ]
    )
    session.commit()


def count(session: Session, model: Any, tenant: Tenant, account: str) -> int:
    return len(session.scalars(select(model).where(model.tenant_id == tenant.id, model.account_id == account)).all())


def test_held_accounts_cover_every_table_with_the_newest_time(session: Session, report_api: MarketplaceStub) -> None:
    tenant = site(session, report_api, "https://acme.atlassian.net")
    other = site(session, report_api, "https://other.atlassian.net", "other")
    integration = make_integration(session, tenant)
    hold(session, tenant, integration, ACTIVE, T0)
    hold(session, other, make_integration(session, other), "someone-else", T0)
    session.execute(
        insert(UserPreference),
        [
            {
                "tenant_id": tenant.id,
                "account_id": "only-a-preference",
                "name": "y",
                "value": 2,
                "created_at": T0,
                "updated_at": T0,
            }
        ],
    )
    session.commit()
    held = held_accounts(session, tenant.id)
    assert [h.account_id for h in held] == [ACTIVE, "only-a-preference"]
    assert held[0].updated_at == T0 + timedelta(minutes=5)
    assert held[0].payload() == {"accountId": ACTIVE, "updatedAt": iso_millis(T0 + timedelta(minutes=5))}


def test_iso_millis_is_atlassians_form() -> None:
    assert iso_millis(datetime(2019, 10, 25, 23, 8, 51, 382999, tzinfo=UTC)).endswith(".382Z")
    assert len(iso_millis(utcnow())) == len("2019-10-25T23:08:51.382Z")


def test_a_closed_account_is_erased_and_an_updated_one_kept(
    session: Session, report_api: MarketplaceStub, stub_url: str
) -> None:
    tenant = site(session, report_api, stub_url)
    integration = make_integration(session, tenant)
    hold(session, tenant, integration, CLOSED, T0)
    hold(session, tenant, integration, ACTIVE, T0)
    conn = redis_conn.client
    for account in (CLOSED, ACTIVE):
        conn.set(f"gcj:admin:{tenant.id}:{account}", "1")
        conn.set(f"gcj:browse-projects:{tenant.id}:{account}", "1")
        conn.hset(f"gcj:user-permission-failures:{tenant.id}:{account}", "1:1", "9")
        conn.set(f"gcj:jira-user:{tenant.id}:{account[:6]}", json.dumps({"a": account, "r": None, "n": "Name"}))
    report_api.closed.add(CLOSED)
    report_api.updated.add(ACTIVE)
    now = utcnow()

    summary = run_cycle(now)

    assert summary == {"tenants": 1, "reported": 2, "closed": 1, "updated": 1, "rate_limited": 0, "failed": 0}
    [call] = report_api.calls
    assert call.path == "/app/report-accounts/" and call.client_key == tenant.client_key  # signed for the site
    assert [a["accountId"] for a in call.accounts] == sorted([CLOSED, ACTIVE])
    session.expire_all()
    for model in (UserToken, UserRepositoryPermission, UserPreference, ActionJob):
        assert count(session, model, tenant, CLOSED) == 0, model
        assert count(session, model, tenant, ACTIVE) == 1, model
    assert count(session, SmartCommitExecution, tenant, CLOSED) == 0
    assert count(session, SmartCommitExecution, tenant, ACTIVE) == 1
    assert len(session.scalars(select(SmartCommitExecution)).all()) == 2  # anonymised, not deleted
    details = [e.detail for e in session.scalars(select(IntegrationEvent))]
    assert sorted(d.get("account_id", "-") for d in details) == ["-", ACTIVE]
    assert all(d["action_id"] == "job" for d in details)
    for account, left in ((CLOSED, 0), (ACTIVE, 1)):
        assert conn.exists(f"gcj:admin:{tenant.id}:{account}") == left
        assert conn.exists(f"gcj:browse-projects:{tenant.id}:{account}") == left
        assert conn.exists(f"gcj:user-permission-failures:{tenant.id}:{account}") == left
        assert conn.exists(f"gcj:jira-user:{tenant.id}:{account[:6]}") == left
    refreshed = session.get(Tenant, tenant.id)
    assert refreshed is not None and refreshed.personal_data_due_at == now + timedelta(days=7)


def test_admins_named_by_integrations_and_log_entries_are_reported_and_erased(
    session: Session, report_api: MarketplaceStub, stub_url: str
) -> None:
    tenant = site(session, report_api, stub_url)
    integration = make_integration(session, tenant)
    integration.created_by, integration.created_at = CLOSED, T0 - timedelta(days=1)
    for source, at in ((EventSource.CREDENTIALS, T0), (EventSource.SETTINGS, T0 + timedelta(hours=1))):
        session.add(
            IntegrationEvent(
                tenant_id=tenant.id,
                integration_id=integration.id,
                at=at,
                level=EventLevel.INFO.value,
                source=source.value,
                message="changed",
                detail={"code": "x", "by": CLOSED},
            )
        )
    session.commit()
    held = held_accounts(session, tenant.id)
    assert [(h.account_id, h.updated_at) for h in held] == [(CLOSED, T0 + timedelta(hours=1))]

    report_api.closed.add(CLOSED)
    assert run_cycle(utcnow())["closed"] == 1
    session.expire_all()
    assert session.get(Integration, integration.id).created_by is None  # type: ignore[union-attr]
    assert [e.detail for e in session.scalars(select(IntegrationEvent))] == [{"code": "x"}, {"code": "x"}]
    assert held_accounts(session, tenant.id) == []


def test_accounts_go_90_per_request(session: Session, report_api: MarketplaceStub, stub_url: str) -> None:
    tenant = site(session, report_api, stub_url)
    session.execute(
        insert(UserPreference),
        [
            {
                "tenant_id": tenant.id,
                "account_id": f"acct-{i:03d}",
                "name": "n",
                "value": i,
                "created_at": T0,
                "updated_at": T0,
            }
            for i in range(200)
        ],
    )
    session.commit()
    report_api.closed.update({"acct-005", "acct-150"})
    result = report_tenant(session, tenant, personal_data.JiraReporter())
    assert [len(c.accounts) for c in report_api.calls] == [90, 90, 20]
    assert (result.reported, result.closed, result.outcome) == (200, 2, "reported")
    assert result.erased["user_preferences"] == 2
    assert len(session.scalars(select(UserPreference)).all()) == 198


def test_a_429_backs_off_until_retry_after(session: Session, report_api: MarketplaceStub, stub_url: str) -> None:
    tenant = site(session, report_api, stub_url)
    hold(session, tenant, make_integration(session, tenant), CLOSED, T0)
    report_api.closed.add(CLOSED)
    report_api.rate_limit_next = 1
    before = utcnow()
    assert run_cycle(before)["rate_limited"] == 1
    session.expire_all()
    assert count(session, UserToken, tenant, CLOSED) == 1  # nothing acted on
    due_at = session.get(Tenant, tenant.id).personal_data_due_at  # type: ignore[union-attr]
    assert due_at is not None and timedelta(seconds=100) < due_at - before <= timedelta(seconds=125)
    assert run_cycle(before + timedelta(seconds=60))["tenants"] == 0  # not due yet
    assert run_cycle(due_at)["closed"] == 1


def test_an_error_is_retried_an_hour_later(
    session: Session, report_api: MarketplaceStub, stub_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = site(session, report_api, stub_url)
    hold(session, tenant, make_integration(session, tenant), ACTIVE, T0)
    report_api.fail_next.append(500)
    now = utcnow()
    assert run_cycle(now)["failed"] == 1
    session.expire_all()
    assert session.get(Tenant, tenant.id).personal_data_due_at == now + personal_data.RETRY_AFTER_ERROR  # type: ignore[union-attr]
    text = caplog.text
    assert "personal-data report for tenant" in text and ACTIVE not in text
    assert runtime().secrets.decrypt(tenant.shared_secret_encrypted) not in text


def test_a_site_without_accounts_is_not_called_but_rescheduled(
    session: Session, report_api: MarketplaceStub, stub_url: str
) -> None:
    tenant = site(session, report_api, stub_url)
    now = utcnow()
    assert run_cycle(now)["tenants"] == 1
    assert report_api.calls == []
    session.expire_all()
    assert session.get(Tenant, tenant.id).personal_data_due_at == now + timedelta(days=7)  # type: ignore[union-attr]
    assert run_cycle(now + timedelta(days=6))["tenants"] == 0


def test_the_fixed_endpoint_setting(app: Flask, session: Session, report_api: MarketplaceStub, stub_url: str) -> None:
    tenant = site(session, report_api, "https://acme.atlassian.net")  # never called
    hold(session, tenant, make_integration(session, tenant), ACTIVE, T0)
    rt = app.extensions["git_connect"]
    overridden = rt.settings.with_overrides(personal_data_report_url=f"{stub_url}/proxy/report-accounts")
    app.extensions["git_connect"] = dataclasses.replace(rt, settings=overridden)
    try:
        assert run_cycle()["reported"] == 1
    finally:
        app.extensions["git_connect"] = rt
    [call] = report_api.calls
    assert call.path == "/proxy/report-accounts" and call.client_key == tenant.client_key


def test_an_unsigned_or_wrong_answer_is_a_failure(session: Session, report_api: MarketplaceStub, stub_url: str) -> None:
    tenant = site(session, report_api, stub_url)
    hold(session, tenant, make_integration(session, tenant), ACTIVE, T0)
    report_api.secrets_by_client[tenant.client_key] = secrets.token_urlsafe(32)
    assert run_cycle()["failed"] == 1
    assert report_api.calls[0].client_key is None


def test_only_accounts_we_asked_about_are_acted_on(session: Session) -> None:
    tenant = make_tenant(session)
    hold(session, tenant, make_integration(session, tenant), ACTIVE, T0)

    class Liar:
        def report(self, tenant: Tenant, accounts: Any) -> dict[str, str]:
            return {"someone-we-never-sent": "closed"}

    result = report_tenant(session, tenant, Liar())
    assert result.closed == 0 and count(session, UserToken, tenant, ACTIVE) == 1


def test_the_dispatcher_enqueues_one_report_job_when_a_site_is_due(app: Flask, session: Session) -> None:
    maintenance = Queue("maintenance", connection=redis_conn.client)
    assert Dispatcher(app).tick() == 0  # no tenant: nothing due
    assert personal_data.JOB_ID not in maintenance.get_job_ids()
    tenant = make_tenant(session)
    session.commit()
    redis_conn.client.delete(PERSONAL_DATA_KEY)
    Dispatcher(app).tick()
    assert personal_data.JOB_ID in maintenance.get_job_ids()
    assert redis_conn.client.ttl(PERSONAL_DATA_KEY) > 3000  # looked again in an hour at the earliest
    tenant.personal_data_due_at = utcnow() + timedelta(days=1)
    session.commit()
    assert personal_data.enqueue_if_due(session, redis_conn.client) is False


def test_the_worker_entry_point(app: Flask, session: Session) -> None:
    from workers.jobs import report_personal_data

    make_tenant(session)
    session.commit()
    assert report_personal_data()["tenants"] == 1


def test_held_account_payload_shape() -> None:
    assert HeldAccount("x", T0).payload()["updatedAt"].endswith("Z")
