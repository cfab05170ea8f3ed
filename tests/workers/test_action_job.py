"""``workers.jobs.run_action`` as RQ runs it: the queue name the web side uses is one a worker
listens to, and the job's return value says what happened (its row is the real record)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from rq import SimpleWorker
from rq.job import Job

from connect_app.extensions import redis_conn
from connect_app.hosts.base import RemoteBranch, RemoteRepository
from connect_app.models import ActionKind
from connect_app.services import action_credentials, actions
from tests.support.connect import Jira, JiraSite
from tests.support.jira_stub import JiraStub
from tests.web.action_support import ACCOUNT, ActionEnv, action_env
from workers import jobs
from workers.queues import ALL_QUEUES, QueueName


@pytest.fixture
def env(app: Flask, jira: Jira, installed_site: JiraSite, jira_stub: JiraStub) -> Iterator[ActionEnv]:
    with app.app_context():
        yield action_env(app, jira, installed_site, jira_stub)


class Host:
    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        return RemoteBranch(name=name, head_sha="b" * 40)


def test_the_interactive_queue_is_served_first() -> None:
    assert actions.INTERACTIVE_QUEUE == QueueName.INTERACTIVE.value == ALL_QUEUES[0].value


def test_run_action_in_an_rq_worker(env: ActionEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(action_credentials, "action_host", lambda integration, user: Host())
    integration = env.integration()
    repo = env.repository(integration)
    issue = actions.Issue("ABC-1", "Login", "Bug", "ABC")
    job = actions.submit(
        env.session,
        redis_conn.client,
        tenant_id=env.tenant_id,
        account_id=ACCOUNT,
        issue=issue,
        target=actions.Target(repo, integration),
        kind=ActionKind.CREATE_BRANCH,
        request={"source": "main", "name": "ABC-1-login"},
        as_user=False,
    )
    SimpleWorker([actions.INTERACTIVE_QUEUE], connection=redis_conn.client).work(burst=True)
    rq_job = Job.fetch(actions.rq_job_id(job.id), connection=redis_conn.client)
    result: Any = rq_job.return_value()
    assert rq_job.is_finished and result["status"] == "done" and result["result"]["name"] == "ABC-1-login"


def test_an_unknown_action_is_skipped(env: ActionEnv) -> None:
    assert jobs.run_action("no-such-action") == {"id": "no-such-action", "status": "skipped"}
