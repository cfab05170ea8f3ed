"""/metrics: who may read it, request latency by endpoint, and what is read at scrape time
(queue depth, index run durations, hosts' rate budgets) from Redis and the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from connect_app import create_app, extensions
from connect_app.config import Settings
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import ProviderId, RateBudget
from connect_app.hosts.ratelimit import RedisBudgetStore
from connect_app.integrations import host_config
from connect_app.metrics import exposition, index_runs, queues, rate_limits
from connect_app.metrics.http import method_label, status_class
from connect_app.models import IndexRun, IntegrationStatus, RunKind, RunStatus, Trigger
from tests.indexing.scheduling_support import make_integration, make_tenant

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(client: FlaskClient, **kwargs: object) -> Samples:
    response = client.get("/metrics", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


# --- access -----------------------------------------------------------------------------


@pytest.fixture()
def token_app(settings: Settings) -> Iterator[Flask]:
    saved = extensions.db._default, extensions.redis_conn._default
    app = create_app(settings.with_overrides(metrics_token="scrape-me-please"))
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        extensions.db._default, extensions.redis_conn._default = saved


def test_without_a_token_only_local_clients_are_answered(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert remote.status_code == 403
    assert remote.get_json()["error"]["code"] == "metrics_local_only"


def test_with_a_token_a_bearer_header_is_required(token_app: Flask) -> None:
    client = token_app.test_client()
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.get_json()["error"]["code"] == "metrics_token_required"
    for wrong in ("Bearer nope", "Basic scrape-me-please", "scrape-me-please", "Bearer scrape-me-please-too"):
        assert client.get("/metrics", headers={"Authorization": wrong}).status_code == 401
    ok = client.get(
        "/metrics", headers={"Authorization": "Bearer scrape-me-please"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert ok.status_code == 200
    assert b"gcj_metrics_source_up" in ok.data


def test_metrics_is_not_a_jira_route(client: FlaskClient) -> None:
    assert client.get("/metrics", headers={"Authorization": "JWT not-a-token"}).status_code == 200


# --- request latency --------------------------------------------------------------------


def test_latency_is_labelled_by_endpoint_never_by_raw_path(client: FlaskClient) -> None:
    before = scrape(client)
    client.get("/healthz")
    client.post("/webhooks/424242/some-token-value", data=b"{}")
    client.get("/no/such/page/987654")
    text = client.get("/metrics").get_data(as_text=True)
    after = parse(text)
    count = "gcj_http_request_duration_seconds_count"

    def delta(**labels: str) -> float:
        return (value(after, count, **labels) or 0) - (value(before, count, **labels) or 0)

    assert delta(endpoint="health.healthz", method="GET", status="2xx") == 1
    webhook = [k for k in after if k[0] == count and ("endpoint", "webhooks.receive") in k[1]]
    assert webhook, "the webhook request is counted under its endpoint"
    assert delta(endpoint="unmatched", method="GET", status="4xx") == 1
    assert "424242" not in text and "987654" not in text and "some-token-value" not in text


def test_label_values_are_bounded() -> None:
    assert [status_class(s) for s in (200, 302, 404, 503, 999)] == ["2xx", "3xx", "4xx", "5xx", "other"]
    assert method_label("get") == "GET"
    assert method_label("BREW") == "other"


# --- queues -----------------------------------------------------------------------------


def test_queue_depth_per_queue_and_state(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        indexing = Queue("indexing", connection=redis_conn.client)
        indexing.enqueue("workers.jobs.prune")
        indexing.enqueue("workers.jobs.prune")
        Queue("custom-queue", connection=redis_conn.client).enqueue("workers.jobs.prune")
    samples = scrape(client)
    assert value(samples, "gcj_queue_jobs", queue="indexing", state="queued") == 2
    assert value(samples, "gcj_queue_jobs", queue="interactive", state="queued") == 0
    assert value(samples, "gcj_queue_jobs", queue="indexing", state="failed") == 0
    assert value(samples, "gcj_queue_jobs", queue="custom-queue", state="queued") == 1
    age = value(samples, "gcj_queue_oldest_job_age_seconds", queue="indexing")
    assert age is not None and 0 <= age < 600
    assert value(samples, "gcj_queue_oldest_job_age_seconds", queue="webhooks") == 0
    assert value(samples, "gcj_queue_workers", queue="indexing") == 0
    assert value(samples, "gcj_metrics_source_up", source="queues") == 1


def test_the_dispatcher_heartbeat_age(app: Flask, client: FlaskClient) -> None:
    assert value(scrape(client), "gcj_dispatcher_heartbeat_age_seconds") is None
    with app.app_context():
        redis_conn.client.set(queues.DISPATCHER_HEARTBEAT_KEY, repr(datetime.now(UTC).timestamp() - 30))
    age = value(scrape(client), "gcj_dispatcher_heartbeat_age_seconds")
    assert age is not None and 29 <= age < 600


def test_the_web_side_names_agree_with_the_workers() -> None:
    from workers.dispatcher import HEARTBEAT_KEY
    from workers.queues import ALL_QUEUES

    assert queues.KNOWN_QUEUES == tuple(q.value for q in ALL_QUEUES)
    assert queues.DISPATCHER_HEARTBEAT_KEY == HEARTBEAT_KEY


# --- index runs -------------------------------------------------------------------------


def test_index_run_durations_from_recent_finished_runs(app: Flask, client: FlaskClient) -> None:
    now = datetime.now(UTC)
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        integration = make_integration(session, tenant)

        def run(kind: RunKind, status: RunStatus, waited: float, took: float | None, ended_ago: float) -> None:
            finished = now - timedelta(seconds=ended_ago)
            started = finished - timedelta(seconds=took or 0)
            session.add(
                IndexRun(
                    tenant_id=tenant.id,
                    integration_id=integration.id,
                    kind=kind.value,
                    trigger=Trigger.SCHEDULED.value,
                    status=status.value,
                    queued_at=started - timedelta(seconds=waited),
                    started_at=started,
                    finished_at=None if took is None else finished,
                )
            )

        for seconds in (1, 2, 3, 4, 100):
            run(RunKind.INDEX, RunStatus.DONE, waited=0.5, took=seconds, ended_ago=60)
        run(RunKind.INDEX, RunStatus.FAILED, waited=2, took=10, ended_ago=30)
        run(RunKind.INDEX, RunStatus.DONE, waited=1, took=5000, ended_ago=3600)  # outside the window
        run(RunKind.DISCOVER, RunStatus.DONE, waited=1, took=7, ended_ago=10)
        run(RunKind.INDEX, RunStatus.RUNNING, waited=1, took=None, ended_ago=120)  # started 2 minutes ago
        session.commit()
    samples = scrape(client)

    def duration(kind: str, q: str) -> float | None:
        return value(samples, "gcj_index_run_duration_seconds", kind=kind, quantile=q)

    # index runs finished in the window: 1, 2, 3, 4, 10, 100 seconds
    assert duration("index", "0.5") == pytest.approx(3)
    assert duration("index", "0.9") == pytest.approx(100)
    assert duration("index", "1.0") == pytest.approx(100)
    assert duration("discover", "0.5") == pytest.approx(7)
    assert value(samples, "gcj_index_runs_finished_recent", kind="index", status="done") == 5
    assert value(samples, "gcj_index_runs_finished_recent", kind="index", status="failed") == 1
    assert value(samples, "gcj_index_runs_running", kind="index") == 1
    oldest = value(samples, "gcj_index_run_oldest_running_seconds", kind="index")
    assert oldest is not None and 119 <= oldest < 600
    assert value(samples, "gcj_index_run_wait_seconds", kind="index", quantile="1.0") == pytest.approx(2)


def test_quantile_is_nearest_rank() -> None:
    assert index_runs.quantile([], 0.5) == 0
    assert index_runs.quantile([5.0], 0.99) == 5
    assert index_runs.quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2
    assert index_runs.quantile([1.0, 2.0, 3.0, 4.0], 0.75) == 3
    assert index_runs.quantile([1.0, 2.0, 3.0, 4.0], 1.0) == 4


# --- rate budgets -----------------------------------------------------------------------


def _budget_key(integration: object) -> str:
    from connect_app.hosts.registry import build_host

    host = build_host(host_config(integration))  # type: ignore[arg-type]
    return str(host._http._budget_key)  # type: ignore[attr-defined]


def test_rate_limit_remaining_per_integration_without_secrets(app: Flask, client: FlaskClient) -> None:
    rate_limits.clear_cache()
    secret = "glpat-" + "s3cr3tT0kenValue1234"
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        busy = make_integration(session, tenant, token=secret)
        unknown = make_integration(session, tenant)
        disabled = make_integration(session, tenant, provider=ProviderId.GITHUB_ENTERPRISE)
        disabled.status = IntegrationStatus.DISABLED.value
        session.commit()
        now = datetime.now(UTC)
        reset = now + timedelta(minutes=10)
        store = RedisBudgetStore(redis_conn.client)
        store.record(_budget_key(busy), RateBudget(limit=5000, remaining=1234, reset_at=reset), now=now.timestamp())
        store.record(_budget_key(disabled), RateBudget(limit=5000, remaining=1, reset_at=reset), now=now.timestamp())
        busy_id, unknown_id, disabled_id = busy.id, unknown.id, disabled.id
    text = client.get("/metrics").get_data(as_text=True)
    samples = parse(text)
    labels = {"integration": str(busy_id), "provider": "gitlab-self-managed"}
    assert value(samples, "gcj_host_rate_limit_remaining", **labels) == 1234
    assert value(samples, "gcj_host_rate_limit_limit", **labels) == 5000
    reset_in = value(samples, "gcj_host_rate_limit_reset_seconds", **labels)
    assert reset_in is not None and 500 < reset_in <= 600
    series = {dict(k[1]).get("integration") for k in samples if k[0] == "gcj_host_rate_limit_remaining"}
    assert str(unknown_id) not in series  # nothing recorded yet: no series
    assert str(disabled_id) not in series
    assert secret not in text and "127.0.0.1" not in text


# --- a source that cannot be read -------------------------------------------------------


def test_a_failing_source_is_reported_and_the_others_still_answer(app: Flask) -> None:
    def broken(_now: datetime) -> list[Metric]:
        raise ConnectionError("redis is away")

    def fine(_now: datetime) -> list[Metric]:
        family = GaugeMetricFamily("gcj_test_fine", "A source that works.")
        family.add_metric([], 1.0)
        return [family]

    with app.test_request_context("/metrics"):
        body, content_type = exposition.render({"broken": broken, "fine": fine})
    samples = parse(body.decode())
    assert content_type.startswith("text/plain")
    assert value(samples, "gcj_metrics_source_up", source="broken") == 0
    assert value(samples, "gcj_metrics_source_up", source="fine") == 1
    assert value(samples, "gcj_test_fine") == 1


def test_redis_down_still_answers_with_the_database_metrics(app: Flask, settings: Settings) -> None:
    from tests.indexing.scheduling_support import app_without_redis

    with app_without_redis(settings) as broken:
        response = broken.test_client().get("/metrics")
    assert response.status_code == 200
    samples = parse(response.get_data(as_text=True))
    assert value(samples, "gcj_metrics_source_up", source="queues") == 0
    assert value(samples, "gcj_metrics_source_up", source="index_runs") == 1
