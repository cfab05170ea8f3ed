"""Helpers for the create-branch / create-pull-request tests: integrations and repositories
(through :class:`~tests.web.development_data.DevData`), issues in the Jira stub, a user's own
token, the API calls, and draining the interactive queue with a real in-process RQ worker.
Use inside an app context (the ``action_env`` fixtures of the test modules push one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from rq import Queue, SimpleWorker
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId
from connect_app.integrations import encode_credentials
from connect_app.models import ActionJob, Integration, Repository, UserToken
from connect_app.runtime import runtime
from connect_app.services import actions
from connect_app.services.integration_settings import merged_features
from tests.support.connect import Jira, JiraSite
from tests.support.jira_stub import JiraStub, stub_issue
from tests.web.development_data import DevData, tenant_id_of

ACCOUNT = "acct-user-1"


@dataclass
class ActionEnv:
    app: Flask
    jira: Jira
    site: JiraSite
    stub: JiraStub
    data: DevData

    @property
    def tenant_id(self) -> int:
        return self.data.tenant_id

    @property
    def session(self) -> Any:
        return db.session()

    # -- setup
    def issue(self, key: str = "ABC-1", summary: str = "Fix the login page", issue_type: str = "Bug") -> str:
        with self.stub.lock:
            self.stub.issues_by_client.setdefault(self.site.client_key, {})[key] = stub_issue(
                summary=summary, issue_type=issue_type
            )
        return key

    def integration(
        self,
        name: str = "acme",
        *,
        provider: ProviderId = ProviderId.GITHUB,
        features: dict[str, Any] | None = None,
        require_user_pat: bool = False,
        base_url: str | None = None,
        credentials: Credentials | None = None,
        **kw: Any,
    ) -> Integration:
        integration = self.data.integration(name, provider=provider, **kw)
        if features:
            integration.features = merged_features(integration, features)
        integration.require_user_pat = require_user_pat
        integration.base_url = base_url
        if credentials is not None:
            box = runtime().secrets
            integration.auth_type = credentials.auth_type.value
            integration.credentials_encrypted = box.encrypt(encode_credentials(credentials))
        self.session.commit()
        return integration

    def repository(self, integration: Integration, name: str = "widgets", **kw: Any) -> Repository:
        return self.data.repository(integration, name, **kw)

    def user_token(
        self, integration: Integration, token: str = "user-secret-token-1234", account_id: str = ACCOUNT
    ) -> UserToken:
        """A token the user saved on their settings page (written directly: no host check here)."""
        credentials = Credentials(AuthType.PAT, token=token)
        row = UserToken(
            tenant_id=self.tenant_id,
            account_id=account_id,
            integration_id=integration.id,
            credentials_encrypted=runtime().secrets.encrypt(encode_credentials(credentials)),
            last4=token[-4:],
        )
        self.session.add(row)
        self.session.commit()
        return row

    # -- the API
    def post_branch(self, key: str = "ABC-1", *, site: JiraSite | None = None, **body: Any) -> TestResponse:
        account = body.pop("account_id", ACCOUNT)
        return self.jira.api(
            site or self.site, "POST", f"/api/issues/{key}/branches", json_body=body, account_id=account
        )

    def post_pull_request(self, key: str = "ABC-1", *, site: JiraSite | None = None, **body: Any) -> TestResponse:
        account = body.pop("account_id", ACCOUNT)
        return self.jira.api(
            site or self.site, "POST", f"/api/issues/{key}/pull-requests", json_body=body, account_id=account
        )

    def get(self, url: str, *, site: JiraSite | None = None, account_id: str | None = ACCOUNT) -> TestResponse:
        return self.jira.api(site or self.site, "GET", url, account_id=account_id)

    def job(self, job_id: str, **kw: Any) -> dict[str, Any]:
        response = self.get(f"/api/jobs/{job_id}", **kw)
        assert response.status_code == 200, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        return body

    # -- the worker and the tables
    def drain(self) -> None:
        """Run every queued action job in this process (RQ's SimpleWorker, like production's worker)."""
        SimpleWorker([actions.INTERACTIVE_QUEUE], connection=redis_conn.client).work(burst=True)
        db.session.remove()

    def queued_job_ids(self, queue: str = actions.INTERACTIVE_QUEUE) -> list[str]:
        return list(Queue(queue, connection=redis_conn.client).job_ids)

    def action_jobs(self) -> list[ActionJob]:
        self.session.expire_all()
        return list(self.session.scalars(select(ActionJob).order_by(ActionJob.created_at)))

    def count(self, model: Any) -> int:
        return int(self.session.scalar(select(func.count()).select_from(model)) or 0)


def action_env(app: Flask, jira: Jira, site: JiraSite, stub: JiraStub) -> ActionEnv:
    """Build inside an app context (the site must be installed)."""
    return ActionEnv(app, jira, site, stub, DevData(tenant_id_of(site)))


def forget_issues(stub: JiraStub, *sites: JiraSite) -> None:
    with stub.lock:
        for site in sites:
            stub.issues_by_client.pop(site.client_key, None)


def error_of(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    error: dict[str, Any] = response.get_json()["error"]
    return error
