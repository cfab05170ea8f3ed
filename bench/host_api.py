"""Host API efficiency against Prism-served GitHub (benchmark 5): requests, not milliseconds.

The GitHub side is Prism (``tests/support/prism.py``) serving GitHub's own OpenAPI description,
behind :class:`CountingProxy`, a small loopback proxy that counts every request the app sends to
"GitHub" (method, path, status, bytes). Prism ignores ``If-None-Match`` and sends no ``ETag``,
so the proxy does what GitHub does: it gives each 200 GET a strong ETag (a hash of the body)
and answers ``304 Not Modified`` (no body) when the request's ``If-None-Match`` matches it.
It also drops Prism's example ``Link`` header (it points at api.github.com, which the client
rightly refuses to follow): every listing is one page. History comes from git (``git
http-backend`` on loopback, :mod:`tests.support.git_server`), never from the API.

* **(a) initial index** of a repository with ``BENCH_HOST_COMMITS`` (default 5,000) commits:
  API requests per 1,000 commits. Baseline: what an API-only indexer needs for the same
  history, GitHub's ``GET /repos/{o}/{r}/commits?per_page=100`` (10 requests per 1,000
  commits, computed, not sent).
* **(b) unchanged repositories**: ``BENCH_HOST_REPOS`` (default 20) small repositories,
  indexed, then reindexed on schedule twice with nothing new; the second (steady-state)
  reindex is counted. Ours: with conditional requests (the app's Redis ETag cache, as in
  production). Baseline: the same with the ETag cache switched off (no ``If-None-Match``
  sent). Both: requests per repository, and how many of them count against GitHub's rate
  limit (a 304 does not) and the bytes received.

``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL`` as for the other suites (defaults: SQLite file
and embedded Redis in a temp folder).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from flask import Flask

from bench.common import Figure
from connect_app import create_app, integrations, migrate
from connect_app.config import Environment, Settings
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.hosts.etags import CachedResponse
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.models import RepositorySelection
from tests.support.git_server import GitHttpServer, make_bulk_repo, make_repo
from tests.support.prism import PrismMock, github_spec_path

API_ONLY_PER_PAGE = 100  # GitHub's maximum page size for GET /repos/{o}/{r}/commits
_REPO_PATH = re.compile(r"^/repos/[^/]+/[^/]+")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "link", "etag", "date", "server"}
)


@dataclass
class Tally:
    """What the proxy saw: one entry per request."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    bytes_out: int = 0

    def add(self, method: str, path: str, status: int, size: int) -> None:
        route = _REPO_PATH.sub("/repos/{owner}/{repo}", path.split("?", 1)[0])
        with self.lock:
            self.requests[(method, route, status)] += 1
            self.bytes_out += size

    def snapshot(self) -> tuple[Counter[tuple[str, str, int]], int]:
        with self.lock:
            return Counter(self.requests), self.bytes_out

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.requests.values())


class CountingProxy:
    """``http://127.0.0.1:<port>`` -> Prism, counting requests and answering conditional GETs."""

    def __init__(self, upstream_port: int) -> None:
        self.tally = Tally()
        tally, upstream = self.tally, upstream_port

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "if-none-match")}
                conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    status, resp_headers = resp.status, resp.getheaders()
                finally:
                    conn.close()
                etag = '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'
                conditional = self.command == "GET" and status == 200
                if conditional and self.headers.get("If-None-Match") == etag:
                    status, payload = 304, b""
                tally.add(self.command, self.path, status, len(payload))  # before the client can read it
                self.send_response(status)
                for name, value in resp_headers:
                    if name.lower() not in _HOP_BY_HOP and not (status == 304 and name.lower() == "content-type"):
                        self.send_header(name, value)
                if conditional:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="counting-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class NoEtagCache:
    """Stands in for the Redis ETag cache when conditional requests are switched off."""

    def __init__(self, *_args: Any, **_kw: Any) -> None:
        pass

    def get(self, key: str) -> CachedResponse | None:
        return None

    def set(self, key: str, value: CachedResponse) -> None:
        pass


@contextmanager
def conditional_requests(enabled: bool) -> Iterator[None]:
    """With ``enabled`` False, hosts built for integrations get no ETag cache (no ``If-None-Match``)."""
    original = getattr(integrations, "RedisEtagCache")  # noqa: B009 - the name host_config() looks up
    if not enabled:
        setattr(integrations, "RedisEtagCache", NoEtagCache)  # noqa: B010
    try:
        yield
    finally:
        setattr(integrations, "RedisEtagCache", original)  # noqa: B010


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


def _github_repositories(app: Flask, tenant_id: int, api_url: str, clone_urls: list[str], tag: str) -> list[int]:
    """One GitHub integration (API at ``api_url``) holding one repository per clone URL."""
    with app.app_context():
        session = db.session()
        integration = create_integration(
            session,
            tenant_id,
            NewIntegration(
                provider=ProviderId.GITHUB,
                credentials=Credentials(AuthType.PAT, token=f"ghp_bench_{tag}_{time.time_ns()}"),
                display_name=f"bench {tag}",
                base_url=api_url,
                repository_selection=RepositorySelection.SELECTED,
            ),
        )
        remotes = [
            RemoteRepository(
                external_id=str(700_000 + i),
                name=f"bench-{tag}/repo-{i}",
                clone_url=url,
                web_url=f"{api_url}/bench-{tag}/repo-{i}",
                default_branch="main",
            )
            for i, url in enumerate(clone_urls)
        ]
        ids = [r.id for r in add_repositories(session, integration, remotes)]
        session.commit()
        db.session.remove()
        return ids


def _counted(proxy: CountingProxy, app: Flask, repo_ids: list[int], trigger: str) -> tuple[int, int, int, float]:
    """Index each repository; returns (requests, rate-limited requests, bytes received, seconds)."""
    from bench.indexing import _run_index

    before, bytes_before = proxy.tally.snapshot()
    start = time.perf_counter()
    for repo_id in repo_ids:
        _run_index(app, repo_id, trigger)
    took = time.perf_counter() - start
    after, bytes_after = proxy.tally.snapshot()
    seen = after - before
    total = sum(seen.values())
    counted = sum(n for (_m, _p, status), n in seen.items() if status != 304)
    return total, counted, bytes_after - bytes_before, took


def _describe(counter: Counter[tuple[str, str, int]]) -> str:
    return ", ".join(f"{m} {p} {s} x{n}" for (m, p, s), n in sorted(counter.items()))


def run() -> list[Figure]:
    from bench.indexing import _drop_tenant, _tenant

    n_commits = int(os.environ.get("BENCH_HOST_COMMITS", "5000"))
    n_repos = int(os.environ.get("BENCH_HOST_REPOS", "20"))
    root = Path(tempfile.mkdtemp(prefix="gcj-bench-host-api-"))
    tenants: list[int] = []
    app = _app(root)
    try:
        with (
            GitHttpServer(root / "served") as git_server,
            PrismMock(github_spec_path()) as prism,
            CountingProxy(prism.port or 0) as proxy,
        ):
            api_url = proxy.url
            # (a) initial index of a big repository
            git_server.add_repo("big", lambda p: make_bulk_repo(p, n_commits, branches=4))
            tenant_id = _tenant(app)
            tenants.append(tenant_id)
            [big] = _github_repositories(app, tenant_id, api_url, [git_server.url_for("big")], "big")
            before, _ = proxy.tally.snapshot()
            total, counted, size, took = _counted(proxy, app, [big], "initial")
            seen_a = proxy.tally.snapshot()[0] - before
            per_k = total * 1000 / n_commits
            api_only = -(-1000 // API_ONLY_PER_PAGE)
            figures = [
                Figure(
                    "host API requests per 1,000 commits, initial index (count, not ms)",
                    per_k,
                    float(api_only),
                    f"API-only history: GET /commits?per_page={API_ONLY_PER_PAGE} (computed)",
                    note=f"{n_commits:,} commits in {took:.1f}s; requests: {_describe(seen_a)}",
                    extra={"requests": float(total), "rate_limited_requests": float(counted), "bytes": float(size)},
                )
            ]

            # (b) unchanged repositories, with and without conditional requests
            template = root / "template.git"
            make_repo(template)
            results: dict[bool, tuple[int, int, int, float, str]] = {}
            for enabled in (True, False):
                tag = "etag" if enabled else "plain"
                urls = []
                for i in range(n_repos):
                    name = f"{tag}-{i}"
                    git_server.add_repo(name, lambda p: shutil.copytree(template, p))
                    urls.append(git_server.url_for(name))
                tenant_id = _tenant(app)
                tenants.append(tenant_id)
                ids = _github_repositories(app, tenant_id, api_url, urls, tag)
                with conditional_requests(enabled):
                    _counted(proxy, app, ids, "initial")
                    _counted(proxy, app, ids, "scheduled")  # first poll: a new URL (updated-since page)
                    before, _ = proxy.tally.snapshot()
                    total, counted, size, took = _counted(proxy, app, ids, "scheduled")
                    seen = proxy.tally.snapshot()[0] - before
                results[enabled] = (total, counted, size, took, _describe(seen))
            (on_total, on_counted, on_bytes, on_s, on_seen), (off_total, off_counted, off_bytes, off_s, off_seen) = (
                results[True],
                results[False],
            )
            note = f"{n_repos} repositories; with: {on_seen}; without: {off_seen}"
            figures += [
                Figure(
                    "host API requests per unchanged repository, conditional (count, not ms)",
                    on_total / n_repos,
                    off_total / n_repos,
                    "same, conditional requests off",
                    note,
                    {"seconds_per_repository": on_s / n_repos, "baseline_seconds_per_repository": off_s / n_repos},
                ),
                Figure(
                    "rate-limited requests per unchanged repository (304s are free; count, not ms)",
                    on_counted / n_repos,
                    off_counted / n_repos,
                    "same, conditional requests off",
                    note,
                ),
                Figure(
                    "bytes received per unchanged repository (bytes, not ms)",
                    on_bytes / n_repos,
                    off_bytes / n_repos,
                    "same, conditional requests off",
                    note,
                ),
            ]
            return figures
    finally:
        for tenant_id in tenants:
            _drop_tenant(app, tenant_id)
        with app.app_context():
            redis_conn.client.close()
            db.engine.dispose()
        shutil.rmtree(root, ignore_errors=True)
