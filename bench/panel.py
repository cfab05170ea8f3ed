"""Issue panel data for a busy issue in a big tenant: server time of one request.

Setup: one tenant with ``BENCH_PANEL_COMMITS`` (default 1,000,000) commits spread over
``BENCH_PANEL_REPOS`` (default 50) repositories, each commit linked to an issue key (so
``issue_link`` holds as many rows as ``commit``); ``BENCH_PANEL_LINKED`` (default 1,000) of
them, spread over every repository, link to ``BENCH-1``, which also has 20 branches, 20 pull
requests and 10 tags. Rows go in through the indexer's bulk writer (one statement per
10,000 rows: ``unnest`` arrays on PostgreSQL, ``executemany`` on SQLite), then ``ANALYZE``.

Ours, in-process through Flask's test client (server time, no network), with a valid JWT:
``GET /api/issues/BENCH-1/development`` at the default limit (50), at the maximum (500),
the last page (cursor), and the panel iframe itself (``/panel/issue``: auth, the first page
and the template). Baseline: ``GET /healthz`` in the same app and run. Each figure also
carries ``cpu_ms``: this thread's CPU time (on a busy machine the wall-time tail is mostly
waiting for a core; with SQLite the database work is in it, with PostgreSQL it is not).
The default-limit API and the panel are measured once more after ``gc.freeze()`` ("gc
frozen"): a full collection of the whole process otherwise lands inside some requests.

Environment: ``BENCH_DATABASE_URL`` (default: a SQLite file in a temp folder; give a scratch
PostgreSQL database: the bench's tenant and rows are deleted at the end), ``BENCH_REDIS_URL``,
``BENCH_PANEL_COMMITS``, ``BENCH_PANEL_REPOS``, ``BENCH_PANEL_LINKED``, ``BENCH_PANEL_REPEAT``.
"""

from __future__ import annotations

import gc
import hashlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import delete, event, text

from bench.common import Figure, p50, p99
from connect_app import create_app, migrate
from connect_app.config import Environment, Settings
from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.indexing.store import insert_ignore
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.jira import tenants
from connect_app.jira.jwt import CONTEXT_QSH, encode_request_token
from connect_app.models import Branch, Commit, IssueLink, PullRequestRecord, Repository, Tag, Tenant
from connect_app.runtime import runtime

KEY = "BENCH-1"
BATCH = 10_000
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def _app(root: Path) -> Flask:
    settings = Settings(
        instance_path=root / "instance",
        encryption_keys=(Fernet.generate_key().decode(),),
        environment=Environment.TEST,
        database_url=os.environ.get("BENCH_DATABASE_URL") or None,
        redis_url=os.environ.get("BENCH_REDIS_URL") or None,
        jira_base_url_patterns=("https://*.atlassian.net",),
    )
    app = create_app(settings)
    with app.app_context():
        migrate.upgrade(db.engine)
    return app


def _sha(i: int) -> str:
    return hashlib.sha1(i.to_bytes(8, "big"), usedforsecurity=False).hexdigest()


def _populate(app: Flask, n_commits: int, n_repos: int, n_linked: int) -> tuple[int, str, str]:
    """The tenant, its repositories and rows; returns (tenant id, client key, shared secret)."""
    client_key, secret = f"bench-panel-{time.time_ns()}", secrets.token_urlsafe(32)
    with app.app_context():
        session = db.session()
        payload = tenants.InstallPayload.parse(
            {"key": runtime(app).settings.app_key, "clientKey": client_key,
             "sharedSecret": secret, "baseUrl": "https://bench.atlassian.net"}
        )  # fmt: skip
        tenant = tenants.install(session, payload, runtime(app).secrets)
        session.flush()
        tenant_id = tenant.id
        integration = create_integration(
            session,
            tenant_id,
            NewIntegration(
                provider=ProviderId.GITHUB,
                credentials=Credentials(AuthType.PAT, token="bench"),
                display_name="bench",
            ),
        )
        remotes = [
            RemoteRepository(
                external_id=str(r),
                name=f"bench/repo-{r}",
                clone_url=f"https://github.com/bench/repo-{r}.git",
                web_url=f"https://github.com/bench/repo-{r}",
                default_branch="main",
            )
            for r in range(n_repos)
        ]
        repo_ids = [r.id for r in add_repositories(session, integration, remotes)]
        for repo in session.query(Repository).filter(Repository.id.in_(repo_ids)):
            repo.status, repo.last_indexed_at = "ok", T0
        session.commit()

        # BENCH-1's commits: spread over the whole history and over every repository.
        step = max(1, n_commits // n_linked)
        linked = {k * step + k % min(step, n_repos) for k in range(n_linked)}
        linked_shas: list[tuple[int, str]] = []
        for start in range(0, n_commits, BATCH):
            commits, links = [], []
            for i in range(start, min(start + BATCH, n_commits)):
                repo_id = repo_ids[i % n_repos]
                sha = _sha(i)
                key = KEY if i in linked else f"BENCH-{2 + i % 100_000}"
                at = T0 + timedelta(seconds=i * 30)
                commits.append(
                    {
                        "tenant_id": tenant_id,
                        "repository_id": repo_id,
                        "sha": sha,
                        "author_name": f"Dev {i % 97}",
                        "author_email": f"dev{i % 97}@example.com",
                        "authored_at": at,
                        "committed_at": at,
                        "message": f"{key} change number {i}\n\nSome body text for commit {i}.",
                        "files_changed": 1,
                        "parent_count": 1,
                        "url": f"https://github.com/bench/repo-{repo_id}/commit/{sha}",
                    }
                )
                links.append(
                    {
                        "tenant_id": tenant_id,
                        "repository_id": repo_id,
                        "issue_key": key,
                        "project_key": "BENCH",
                        "kind": "commit",
                        "ref": sha,
                        "source": "message",
                        "created_at": at,
                    }
                )
                if key == KEY:
                    linked_shas.append((repo_id, sha))
            insert_ignore(session, Commit, commits, keys=("repository_id", "sha"))
            insert_ignore(session, IssueLink, links, keys=("repository_id", "kind", "ref", "issue_key"))
            session.commit()

        for b in range(20):
            repo_id, sha = linked_shas[b * len(linked_shas) // 20]
            name = f"feature/{KEY}-part-{b}"
            session.add(Branch(tenant_id=tenant_id, repository_id=repo_id, name=name, head_sha=sha, url=None))
            session.add(IssueLink(tenant_id=tenant_id, repository_id=repo_id, issue_key=KEY, project_key="BENCH",
                                  kind="branch", ref=name, source="branch_name"))  # fmt: skip
            session.add(PullRequestRecord(
                tenant_id=tenant_id, repository_id=repo_id, external_id=str(b + 1), title=f"{KEY} part {b}",
                description="", state="OPEN" if b % 3 else "MERGED", source_branch=name, target_branch="main",
                author="dev", url=f"https://github.com/bench/pull/{b + 1}", updated_on_host=T0 + timedelta(hours=b),
            ))  # fmt: skip
            session.add(IssueLink(tenant_id=tenant_id, repository_id=repo_id, issue_key=KEY, project_key="BENCH",
                                  kind="pull_request", ref=str(b + 1), source="title"))  # fmt: skip
        for t in range(10):
            repo_id, sha = linked_shas[-1 - t * 7]
            session.add(Tag(tenant_id=tenant_id, repository_id=repo_id, name=f"v{t}.0", sha=sha))
        session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            session.execute(text("ANALYZE"))
            session.commit()
        db.session.remove()
    return tenant_id, client_key, secret


def _samples(fn: Callable[[], object], *, repeat: int, warmup: int = 20) -> tuple[list[float], list[float]]:
    """Wall time and this thread's CPU time per call, in ms. On a busy machine the wall time's
    tail is mostly waiting for a core; the CPU time is what the request itself costs (all of
    it with SQLite, which runs in this thread; without the server's share with PostgreSQL)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.thread_time()
        fn()
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
    return wall, cpu


def _statements(app: Flask, fn: Callable[[], object]) -> int:
    seen: list[str] = []

    def count(*_args: Any) -> None:
        seen.append("x")

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def run() -> list[Figure]:
    n_commits = int(os.environ.get("BENCH_PANEL_COMMITS", "1000000"))
    n_repos = int(os.environ.get("BENCH_PANEL_REPOS", "50"))
    n_linked = int(os.environ.get("BENCH_PANEL_LINKED", "1000"))
    repeat = int(os.environ.get("BENCH_PANEL_REPEAT", "300"))
    root = Path(tempfile.mkdtemp(prefix="gcj-bench-panel-"))
    app = _app(root)
    started = time.perf_counter()
    tenant_id, client_key, secret = _populate(app, n_commits, n_repos, n_linked)
    setup_s = time.perf_counter() - started
    try:
        client = app.test_client()
        api_token = encode_request_token(issuer=client_key, secret=secret, subject="acct", qsh=CONTEXT_QSH, ttl=3600)
        headers = {"Authorization": f"JWT {api_token}"}
        page_token = encode_request_token(
            issuer=client_key, secret=secret, path="/panel/issue", query={"issueKey": [KEY]}, subject="acct", ttl=3600
        )
        url = f"/api/issues/{KEY}/development"

        def api(query: str = "", expect: int = 50) -> Callable[[], None]:
            def call() -> None:
                response = client.get(url + query, headers=headers)
                assert response.status_code == 200, response.get_data(as_text=True)
                assert len(response.get_json()["commits"]) == expect

            return call

        first = client.get(url + "?limit=500", headers=headers).get_json()
        assert first["counts"]["commits"] == n_linked, first["counts"]
        second = client.get(f"{url}?limit=500&cursor={first['next_cursor']}", headers=headers).get_json()
        last_cursor = second["next_cursor"] or first["next_cursor"]
        last_expect = n_linked - 500 if second["next_cursor"] is None else 500

        def panel() -> None:
            response = client.get(f"/panel/issue?issueKey={KEY}&jwt={page_token}")
            assert response.status_code == 200, response.get_data(as_text=True)

        def healthz() -> None:
            assert client.get("/healthz").status_code == 200

        trips = _statements(app, api())
        note = f"{n_commits:,} commits, {n_linked:,} linked to {KEY}, {db_name(app)}; setup {setup_s:.0f}s"
        base, base_cpu = _samples(healthz, repeat=repeat)
        cases = [
            ("development API, limit 50", api(), {"statements_per_request": float(trips)}),
            ("development API, limit 500", api("?limit=500", 500), {}),
            ("development API, last page (cursor)", api(f"?limit=500&cursor={last_cursor}", last_expect), {}),
            ("issue panel iframe (first page embedded)", panel, {}),
        ]
        figures = []
        # Python's full collections walk every object of the process (50-80 ms here, see the
        # report) and land inside whichever request triggers them: the same calls again with
        # the start-up heap frozen (gc.freeze(), what a worker can do after it loaded the app).
        frozen = [(f"{name}, gc frozen", fn, {}) for name, fn, _ in (cases[0], cases[3])]
        for name, fn, extra in [*cases, *frozen]:
            if name == frozen[0][0]:
                gc.collect()
                gc.freeze()
            wall, cpu = _samples(fn, repeat=repeat)
            cpu50 = {"cpu_ms": p50(cpu), "baseline_cpu_ms": p50(base_cpu)}
            cpu99 = {"cpu_ms": p99(cpu), "baseline_cpu_ms": p99(base_cpu)}
            figures.append(Figure(f"{name}, p50", p50(wall), p50(base), "/healthz p50", note, extra | cpu50))
            figures.append(Figure(f"{name}, p99", p99(wall), p99(base), "/healthz p99", note, cpu99))
        return figures
    finally:
        gc.unfreeze()
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


def db_name(app: Flask) -> str:
    with app.app_context():
        return "PostgreSQL" if db.engine.dialect.name == "postgresql" else "SQLite"
