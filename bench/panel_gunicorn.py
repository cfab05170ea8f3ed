"""Issue panel under load: a real gunicorn, 50 concurrent keep-alive clients (benchmark 3).

Data: :mod:`bench.panel`'s tenant (``BENCH_PANEL_COMMITS``, default 1,000,000 commits over 50
repositories, each linked to one of 100,000 issue keys ``BENCH-2..BENCH-100001``;
``BENCH_PANEL_LINKED``, default 1,000, linked to ``BENCH-1``), in a scratch database: a SQLite
file in a temp folder, or ``BENCH_DATABASE_URL`` (PostgreSQL, what production runs; the
bench's rows are deleted at the end).

Server: ``gunicorn connect_app.wsgi:app`` on 127.0.0.1, ``gthread`` worker class,
``BENCH_GUNICORN_WORKERS`` x ``BENCH_GUNICORN_THREADS`` (default 2 x 8), configured through
the app's own environment variables. Redis: ``BENCH_REDIS_URL``, else the embedded one.

Load: ``BENCH_CLIENTS`` (default 50) keep-alive clients (:func:`bench.gunicorn_harness.drive`)
send ``BENCH_PANEL_REQUESTS`` (default 3,000) requests, then the same number again for the
other endpoint; each panel request carries its own context JWT (distinct ``jti`` claims, all
signed with the tenant's shared secret). Ours: ``GET /api/issues/BENCH-1/development``
(default limit 50). Baseline: ``GET /healthz`` in the same server, same clients. A third
phase, ``GET /api/me`` (JWT verification and tenant lookup only), splits the cost into
framework, auth and the panel's own data. The phases take turns (baseline, auth, ours, twice)
and each figure pools its rounds, so a change of machine load lands on every side. Latency is
client-measured (socket write to last byte); throughput is requests / wall time of a round;
server CPU is the gunicorn processes' CPU time per request (PostgreSQL's own is not in it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from flask import Flask
from sqlalchemy import delete

from bench.common import Figure, p50, p99
from bench.gunicorn_harness import CONCURRENCY, GunicornServer, LoadRun, Request, drive, load_average
from bench.panel import KEY, _app, _populate, db_name
from connect_app.extensions import db, redis_conn
from connect_app.jira.jwt import CONTEXT_QSH, encode_request_token
from connect_app.models import Branch, Commit, IssueLink, PullRequestRecord, Tag, Tenant
from connect_app.runtime import runtime

ROUNDS = 2


def server_env(app: Flask) -> dict[str, str]:
    """The app's environment for a gunicorn serving the same database, Redis and keys."""
    settings = runtime(app).settings
    with app.app_context():
        database_url = db.engine.url.render_as_string(hide_password=False)
        redis_url = settings.redis_url
        if not redis_url:  # the embedded server the bench process started: share its socket
            redis_url = "unix://" + str(redis_conn.client.socket_file)  # type: ignore[attr-defined]
    return {
        "APP_ENV": "test",
        "INSTANCE_PATH": str(settings.instance_path),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
        "JIRA_BASE_URL_PATTERNS": ",".join(settings.jira_base_url_patterns),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
    }


def _api_requests(n: int, client_key: str, secret: str, path: str, tag: str) -> list[Request]:
    out = []
    for i in range(n):
        token = encode_request_token(
            issuer=client_key, secret=secret, subject=f"acct-{i % 50}", qsh=CONTEXT_QSH, ttl=3600,
            extra_claims={"jti": f"bench-{tag}-{i}"},
        )  # fmt: skip
        out.append(Request("GET", path, {"Authorization": f"JWT {token}"}, tag=tag))
    return out


def _check(run: LoadRun, tag: str) -> None:
    bad = [r for r in run.by_tag(tag) if r.status != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} {tag} requests failed, e.g. {bad[0].status}: {bad[0].body[:300]!r}")


def measure(server: GunicornServer, phases: dict[str, list[Request]], n: int, rounds: int) -> dict[str, list[LoadRun]]:
    """Each phase's requests: a warm-up, then ``rounds`` rounds of ``n``, the phases taking turns."""
    warm = max(200, CONCURRENCY * 4)
    for tag, requests in phases.items():
        _check(drive(server, requests[:warm]), tag)
    runs: dict[str, list[LoadRun]] = {tag: [] for tag in phases}
    for r in range(rounds):
        for tag, requests in phases.items():
            run = drive(server, requests[warm + r * n : warm + (r + 1) * n])
            _check(run, tag)
            runs[tag].append(run)
    return runs


def _stats(runs: list[LoadRun], tag: str) -> tuple[list[float], float, float]:
    """(latencies, requests per second, server CPU ms per request) of one phase's rounds."""
    ms = [x for run in runs for x in run.ms(tag)]
    rps = sum(run.per_second() for run in runs) / len(runs)
    cpu = sum(run.server_cpu_seconds for run in runs) * 1000 / len(ms)
    return ms, rps, cpu


def figures_from(runs: dict[str, list[LoadRun]], name: str, note: str, extra: dict[str, float]) -> list[Figure]:
    base, base_rps, base_cpu = _stats(runs["base"], "base")
    ours, ours_rps, ours_cpu = _stats(runs["ours"], "ours")
    auth, auth_rps, auth_cpu = _stats(runs["auth"], "auth")
    rates = {"ours_requests_per_second": ours_rps, "baseline_requests_per_second": base_rps}
    return [
        Figure(f"{name}, p50", p50(ours), p50(base), "/healthz p50", note, extra | rates),
        Figure(f"{name}, p99", p99(ours), p99(base), "/healthz p99", note, extra),
        Figure(f"{name}, ms per request at {CONCURRENCY} clients (1 / throughput)", 1000 / ours_rps,
               1000 / base_rps, "/healthz", note, rates),
        Figure(f"{name}, server CPU per request (gunicorn processes)", ours_cpu, base_cpu, "/healthz", note),
        # the stage that every API request pays: JWT verification and the tenant lookup
        Figure("GET /api/me (auth only) under gunicorn, p50", p50(auth), p50(base), "/healthz p50", note,
               {"requests_per_second": auth_rps}),
        Figure("GET /api/me (auth only), server CPU per request", auth_cpu, base_cpu, "/healthz", note),
    ]  # fmt: skip


def run() -> list[Figure]:
    n_commits = int(os.environ.get("BENCH_PANEL_COMMITS", "1000000"))
    n_repos = int(os.environ.get("BENCH_PANEL_REPOS", "50"))
    n_linked = int(os.environ.get("BENCH_PANEL_LINKED", "1000"))
    n_requests = int(os.environ.get("BENCH_PANEL_REQUESTS", "3000"))
    root = Path(tempfile.mkdtemp(prefix="gcj-bench-panel-gunicorn-"))
    app = _app(root)
    started = time.perf_counter()
    tenant_id, client_key, secret = _populate(app, n_commits, n_repos, n_linked)
    setup_s = time.perf_counter() - started
    try:
        n_total = max(200, CONCURRENCY * 4) + ROUNDS * n_requests
        phases = {
            "base": [Request("GET", "/healthz", tag="base") for _ in range(n_total)],
            "auth": _api_requests(n_total, client_key, secret, "/api/me", "auth"),
            "ours": _api_requests(n_total, client_key, secret, f"/api/issues/{KEY}/development", "ours"),
        }
        with GunicornServer(server_env(app), log_path=root / "gunicorn.log") as server:
            load_before = load_average()[0]
            runs = measure(server, phases, n_requests, ROUNDS)
            load_after = load_average()[0]
            note = (
                f"{n_commits:,} commits, {n_linked:,} linked to {KEY}, {db_name(app)}; {server.description}; "
                f"{CONCURRENCY} clients; load {load_before:.1f}->{load_after:.1f}; setup {setup_s:.0f}s"
            )
            extra = {"load_average_1m": load_after, "requests_per_round": float(n_requests)}
            return figures_from(runs, "development API under gunicorn, limit 50", note, extra)
    finally:
        with app.app_context():
            session = db.session()
            if db.engine.dialect.name == "postgresql":
                for model in (IssueLink, Commit, Branch, Tag, PullRequestRecord):
                    session.execute(delete(model).where(model.tenant_id == tenant_id))
                session.execute(delete(Tenant).where(Tenant.id == tenant_id))
                session.commit()
            db.session.remove()
            db.engine.dispose()
        shutil.rmtree(root, ignore_errors=True)
