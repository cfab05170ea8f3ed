"""Webhook intake under load: signed GitHub push deliveries into a real gunicorn (benchmark 4).

Setup: one installed tenant with one GitHub integration and ``BENCH_WEBHOOK_REPOS`` (default
100) repositories, in a scratch database (SQLite file, or ``BENCH_DATABASE_URL``); Redis is
``BENCH_REDIS_URL`` or the embedded one. The server is :class:`bench.gunicorn_harness.GunicornServer`
(gthread, 2 workers x 8 threads by default).

Ours: ``BENCH_WEBHOOK_DELIVERIES`` (default 1,000 per round, 2 rounds, after 200 to warm up)
``push`` deliveries (GitHub's own example payload, ``tests/fixtures/github/push.json``, ~9 KB)
with distinct ``X-GitHub-Delivery`` ids,
each for one of the repositories in turn and signed with the integration's webhook secret
(``X-Hub-Signature-256``), posted by ``BENCH_CLIENTS`` (default 50) keep-alive clients. Every
answer must be 202 ``accepted`` with ``"enqueued": true``; afterwards the bench checks that
the database holds exactly that many ``webhook_delivery`` rows, all ``enqueued``, and that
Redis holds the index request of every repository (the scheduler keeps one request per
repository and queues at most ``MAX_JOBS_PER_TENANT`` jobs of a tenant at once; the rest wait
as requests, which is what "enqueued" means for a delivery). Baseline: ``GET /healthz`` from
the same clients on the same server. Figures: accepted deliveries per second against
/healthz requests per second (as ms per request, so the ratio reads like the others), and
client-side p50/p99 latency.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from flask import Flask
from sqlalchemy import delete, func, select

from bench.common import Figure, p50, p99
from bench.gunicorn_harness import CONCURRENCY, GunicornServer, LoadRun, Request, drive, load_average
from bench.panel import _app, db_name
from bench.panel_gunicorn import server_env
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.indexing.queueing import REQUEST_PREFIX, WEBHOOK_SEEN_PREFIX
from connect_app.integrations import NewIntegration, add_repositories, create_integration, webhook_secret
from connect_app.jira import tenants
from connect_app.models import RepositorySelection, Tenant, WebhookDelivery
from connect_app.runtime import runtime

PUSH = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "github" / "push.json"
ROUNDS = 2


def _setup(app: Flask, n_repos: int) -> tuple[int, str, str, list[tuple[int, str]]]:
    """Tenant, integration, repositories; returns (tenant id, webhook path, secret, [(repo id, external id)])."""
    with app.app_context():
        session = db.session()
        payload = tenants.InstallPayload.parse(
            {"key": runtime(app).settings.app_key, "clientKey": f"bench-hooks-{time.time_ns()}",
             "sharedSecret": "bench-secret-" + "x" * 32, "baseUrl": "https://bench.atlassian.net"}
        )  # fmt: skip
        tenant = tenants.install(session, payload, runtime(app).secrets)
        session.flush()
        integration = create_integration(
            session,
            tenant.id,
            NewIntegration(
                provider=ProviderId.GITHUB,
                credentials=Credentials(AuthType.PAT, token="bench-token"),
                display_name="bench hooks",
                repository_selection=RepositorySelection.SELECTED,
            ),
        )
        remotes = [
            RemoteRepository(str(900_000 + r), f"bench/hooks-{r}", f"https://github.com/bench/hooks-{r}.git")
            for r in range(n_repos)
        ]
        repos = add_repositories(session, integration, remotes)
        session.commit()
        out = (
            tenant.id,
            f"/webhooks/{integration.id}/{integration.webhook_token}",
            webhook_secret(integration),
            [(r.id, r.external_id) for r in repos],
        )
        db.session.remove()
        return out


def _deliveries(n: int, offset: int, path: str, secret: str, repos: list[tuple[int, str]]) -> list[Request]:
    template = json.loads(PUSH.read_text())
    bodies = {}
    for _, external_id in repos:
        template["repository"]["id"] = int(external_id)
        bodies[external_id] = json.dumps(template).encode()
    out = []
    for i in range(offset, offset + n):
        body = bodies[repos[i % len(repos)][1]]
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"bench-delivery-{i}",
            "X-Hub-Signature-256": f"sha256={digest}",
            "Content-Type": "application/json",
        }
        out.append(Request("POST", path, headers, body, tag="ours"))
    return out


def _check_accepted(run: LoadRun) -> None:
    for r in run.by_tag("ours"):
        answer = json.loads(r.body) if r.status == 202 else {}
        if r.status != 202 or answer.get("status") != "accepted" or answer.get("enqueued") is not True:
            raise RuntimeError(f"a delivery was not accepted and enqueued: {r.status} {r.body[:300]!r}")


def run() -> list[Figure]:
    n = int(os.environ.get("BENCH_WEBHOOK_DELIVERIES", "1000"))
    n_repos = int(os.environ.get("BENCH_WEBHOOK_REPOS", "100"))
    root = Path(tempfile.mkdtemp(prefix="gcj-bench-hooks-"))
    app = _app(root)
    tenant_id, path, secret, repos = _setup(app, n_repos)
    repo_ids = [rid for rid, _ in repos]
    try:
        with app.app_context():
            conn = redis_conn.client
            conn.delete(*[f"{p}{rid}" for rid in repo_ids for p in (REQUEST_PREFIX, WEBHOOK_SEEN_PREFIX)])
        warm = max(200, CONCURRENCY * 4)
        ours = _deliveries(warm + ROUNDS * n, 0, path, secret, repos)
        healthz = [Request("GET", "/healthz", tag="base") for _ in range(n)]
        with GunicornServer(server_env(app), log_path=root / "gunicorn.log") as server:
            drive(server, healthz[:warm])
            _check_accepted(drive(server, ours[:warm]))
            load_before = load_average()[0]
            base_runs, our_runs = [], []
            for r in range(ROUNDS):
                base_runs.append(drive(server, healthz))
                our_run = drive(server, ours[warm + r * n : warm + (r + 1) * n])
                _check_accepted(our_run)
                our_runs.append(our_run)
            load_after = load_average()[0]
            description = server.description

        with app.app_context():
            session = db.session()
            counts = dict(
                session.execute(
                    select(WebhookDelivery.status, func.count())
                    .where(WebhookDelivery.tenant_id == tenant_id)
                    .group_by(WebhookDelivery.status)
                ).all()
            )
            requested = sum(1 for rid in repo_ids if conn.exists(f"{WEBHOOK_SEEN_PREFIX}{rid}"))
            db.session.remove()
        expected = warm + ROUNDS * n
        if counts != {"enqueued": expected} or requested != len(repo_ids):
            raise RuntimeError(f"stored {counts} (expected {expected} enqueued); {requested}/{len(repo_ids)} requested")

        base_rps = sum(x.per_second() for x in base_runs) / ROUNDS
        ours_rps = sum(x.per_second() for x in our_runs) / ROUNDS
        base_ms = [ms for x in base_runs for ms in x.ms("base")]
        ours_ms = [ms for x in our_runs for ms in x.ms("ours")]
        note = (
            f"{n:,} deliveries x {ROUNDS} rounds over {n_repos} repositories, {db_name(app)}; {description}; "
            f"{CONCURRENCY} clients; load {load_before:.1f}->{load_after:.1f}; verified {expected} rows enqueued"
        )
        throughput = {
            "accepted_per_second": ours_rps,
            "healthz_per_second": base_rps,
            "load_average_1m": load_after,
        }
        ours_cpu = sum(x.server_cpu_seconds for x in our_runs) * 1000 / len(ours_ms)
        base_cpu = sum(x.server_cpu_seconds for x in base_runs) * 1000 / len(base_ms)
        return [
            Figure("webhook intake, server CPU per delivery (gunicorn processes)", ours_cpu, base_cpu, "/healthz",
                   note),
            Figure("webhook intake, ms per accepted delivery", 1000 / ours_rps, 1000 / base_rps, "/healthz", note,
                   throughput),
            Figure("webhook intake latency, p50", p50(ours_ms), p50(base_ms), "/healthz p50", note),
            Figure("webhook intake latency, p99", p99(ours_ms), p99(base_ms), "/healthz p99", note),
        ]  # fmt: skip
    finally:
        with app.app_context():
            session = db.session()
            session.execute(delete(Tenant).where(Tenant.id == tenant_id))
            session.commit()
            db.session.remove()
            db.engine.dispose()
        shutil.rmtree(root, ignore_errors=True)
