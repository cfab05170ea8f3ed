# ruff: noqa: F811 - fake_github is imported as a fixture and is a parameter here
"""Secrets scan: after a realistic run, no secret appears in a log line, an HTTP response, a
database row, a Redis value (RQ payloads decompressed) or a file of the workers' git mirrors --
only their encrypted forms.

The run: a signed install (shared secret); through the admin API a plain-git integration
with a password (a real repository served on loopback), a GitHub integration with a PAT (a
scripted GitHub on loopback) and one made through the OAuth sign-in (client secret,
authorization code, access token); the real RQ worker discovers and indexes; a user saves
their own token; signed webhook deliveries (GitHub's HMAC, GitLab's secret header); then the
panel, admin, browse and user pages and the JSON API are called.

Logs are captured twice: the raw records (caplog at DEBUG: what any handler would be given)
and what the app's own root handler wrote (the process's stderr/stdout).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _pytest.logging import LogCaptureHandler
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import select

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId
from connect_app.integrations import NewIntegration, create_integration, webhook_secret
from connect_app.models import Base, Integration
from connect_app.oauth_settings import EXTENSION_KEY, OAuthClient, OAuthSettings
from connect_app.runtime import runtime
from tests.security.adversarial_support import ADMIN, USER
from tests.support.connect import Jira, JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.jira_stub import JiraStub
from tests.support.stub_host import Reply, Seen, StubHost, loopback_only
from tests.web.development_data import tenant_id_of
from tests.web.fake_github import GOOD_TOKEN, FakeGitHub, fake_github  # noqa: F401

QUEUES = ("interactive", "webhooks", "indexing", "maintenance")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
USER_TOKEN = "ghp_UsersOwnSecretToken0123456789abcd"
OAUTH_CLIENT_SECRET = "oauth-client-secret-never-shown-0123456789"
OAUTH_CODE = "oauth-one-time-code-0123456789"
OAUTH_ACCESS = "gho_OAuthAccessTokenSecret0123456789"
GITLAB_TOKEN = "glpat-GitLabSecretToken0123456789"


class OAuthGitHub:
    """GitHub's OAuth web flow on loopback: the code exchange and the API as the new token."""

    def __init__(self) -> None:
        self.stub = StubHost(self._handle)
        self.url = self.stub.url

    def _handle(self, seen: Seen) -> Reply:
        if seen.path == "/login/oauth/access_token":
            return Reply(200, {"access_token": OAUTH_ACCESS, "scope": "repo,read:user", "token_type": "bearer"})
        if seen.headers.get("authorization") != f"Bearer {OAUTH_ACCESS}":
            return Reply(401, {"message": "Bad credentials"})
        scopes = {"X-OAuth-Scopes": "repo, admin:repo_hook, read:user"}
        if seen.path == "/user":
            return Reply(200, {"login": "octo-oauth", "id": 7}, scopes)
        if seen.path == "/user/repos":
            return Reply(200, [], scopes)
        return Reply(404, {"message": "Not Found"})


# The one designed exposure: a Jira admin's single-integration view shows the integration's
# webhook secret, to paste on the host when the app could not register the hook itself
# (``webhook.secret`` in openapi_admin; "Copy secret" on Manage repositories).
SHOWN_TO_ADMINS = {
    "GitHub webhook secret": "GET /api/integrations/{id}",
    "GitLab webhook secret": "GET /api/integrations/{id}",
}


@dataclass
class Collected:
    responses: list[tuple[str, str]] = field(default_factory=list)  # (what was called, body and headers)
    sent_jwts: list[str] = field(default_factory=list)


@pytest.fixture
def oauth_github(monkeypatch: pytest.MonkeyPatch) -> Iterator[OAuthGitHub]:
    host = OAuthGitHub()
    yield host
    host.stub.close()


def _record(seen: Collected, response: Any, label: str = "") -> Any:
    text = response.get_data(as_text=True) + json.dumps(sorted(response.headers.items()))
    seen.responses.append((label, text))
    return response


def _label(method: str, url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    return f"{method} " + "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def _db_text() -> list[str]:
    """Every value of every row of every table, as text (JSON and bytes included)."""
    out = []
    session = db.session()
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            for column, value in zip(table.columns, row, strict=True):
                if isinstance(value, bytes):
                    text = value.decode("utf-8", "replace")
                elif isinstance(value, str):
                    text = value
                else:
                    text = json.dumps(value, default=str)
                out.append(f"{table.name}.{column.name}={text}")
    return out


def _redis_text() -> list[str]:
    client = redis_conn.client
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values: list[Any] = [client.get(key)]
        elif kind == "hash":
            values = [v for pair in client.hgetall(key).items() for v in pair]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind in ("set", "zset"):
            values = list(client.smembers(key)) if kind == "set" else client.zrange(key, 0, -1)
        else:
            continue
        out += [f"{key!r}={_readable(v)}" for v in values]
    return out


def _readable(value: Any) -> str:
    """Text of a Redis value; RQ's job payloads are zlib-compressed pickles, so those too."""
    if not isinstance(value, bytes):
        return str(value)
    try:
        value = zlib.decompress(value)
    except zlib.error:
        pass
    return value.decode("utf-8", "replace")


def _mirror_text(mirrors: Path) -> list[str]:
    """Every small file of the workers' git mirrors (config, FETCH_HEAD, refs...): a clone URL
    with the password in it would be kept in a mirror's config."""
    out = []
    for path in mirrors.rglob("*") if mirrors.exists() else []:
        if path.is_file() and path.stat().st_size < 1_000_000:
            out.append(f"{path}: {path.read_bytes().decode('utf-8', 'replace')}")
    return out


def _found(secrets: dict[str, str], texts: list[str]) -> list[str]:
    hits = []
    for name, secret in secrets.items():
        for text in texts:
            if secret in text:
                at = text.index(secret)
                hits.append(f"{name}: …{text[max(0, at - 120) : at + len(secret) + 40]}…")
                break
    return hits


def test_no_secret_in_logs_responses_database_or_redis(
    app: Flask,
    jira: Jira,
    site: JiraSite,
    jira_stub: JiraStub,
    git_repo: ServedRepo,
    fake_github: FakeGitHub,
    oauth_github: OAuthGitHub,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    # What the app's own root handler(s) write, exactly as formatted (and scrubbed) for stderr.
    root_output = io.StringIO()
    root_handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, LogCaptureHandler)
    ]
    for handler in root_handlers:
        monkeypatch.setattr(handler, "stream", root_output)
    loopback_only(monkeypatch)
    monkeypatch.setitem(
        app.extensions,
        EXTENSION_KEY,
        OAuthSettings({ProviderId.GITHUB: OAuthClient("oauth-client-id", OAUTH_CLIENT_SECRET)}),
    )
    jira_stub.admins.add(ADMIN)
    fake_github.repos = []  # nothing to clone from github.com: the worker stays on loopback
    fake_github.scopes[USER_TOKEN] = "repo, read:user"
    seen = Collected()
    client = jira.client

    def api(method: str, url: str, body: Any = None, account: str = ADMIN) -> Any:
        token = site.token(method, url, context=True, account_id=account)
        seen.sent_jwts.append(token)
        response = client.open(url, method=method, json=body, headers={"Authorization": f"JWT {token}"})
        return _record(seen, response, _label(method, url))

    def page(url: str, account: str = ADMIN) -> Any:
        token = site.token("GET", url, account_id=account)
        seen.sent_jwts.append(token)
        sep = "&" if "?" in url else "?"
        return _record(seen, client.get(f"{url}{sep}jwt={token}", headers={"Accept": "text/html"}))

    # -- install, integrations (password, PAT, OAuth)
    assert _record(seen, jira.install(site)).status_code == 204
    git_auth = {"type": "password", "username": git_repo.server.username, "password": git_repo.server.password}
    created = api("POST", "/api/integrations", {"provider": "git", "base_url": git_repo.url, "auth": git_auth})
    assert created.status_code == 201, created.get_data(as_text=True)
    git_id = created.get_json()["id"]
    github = api(
        "POST",
        "/api/integrations",
        {"provider": "github", "base_url": fake_github.url, "auth": {"type": "pat", "token": GOOD_TOKEN}},
    )
    assert github.status_code == 201, github.get_data(as_text=True)
    github_id = github.get_json()["id"]

    flow = api("POST", "/api/oauth/flows", {"provider": "github", "base_url": oauth_github.url})
    assert flow.status_code == 201, flow.get_data(as_text=True)
    flow_body = flow.get_json()
    authorize = _record(seen, client.get(flow_body["authorize_url"]))
    assert authorize.status_code == 302, authorize.get_data(as_text=True)
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize.headers["Location"]).query))["state"]
    query = urllib.parse.urlencode({"code": OAUTH_CODE, "state": state})
    callback = _record(seen, client.get(f"/oauth/callback?{query}", headers={"Accept": "text/html"}))
    assert callback.status_code == 200, callback.get_data(as_text=True)
    from_oauth = api("POST", f"/api/oauth/flows/{flow_body['id']}/integration", {"display_name": "via oauth"})
    assert from_oauth.status_code == 201, from_oauth.get_data(as_text=True)

    # -- the worker discovers and indexes (the plain git repository, over HTTP with the password)
    with app.app_context():
        SimpleWorker(list(QUEUES), connection=redis_conn.client).work(burst=True)
        db.session.remove()

    # -- a user's own token, webhooks
    saved = api("PUT", f"/api/me/tokens/{github_id}", {"token": USER_TOKEN}, account=USER)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    with app.app_context():
        tenant_id = tenant_id_of(site)
        gitlab = create_integration(
            db.session(),
            tenant_id,
            NewIntegration(ProviderId.GITLAB, Credentials(AuthType.PAT, token=GITLAB_TOKEN), "gitlab"),
        )
        db.session().commit()
        hooks = {
            i.id: (i.webhook_token, webhook_secret(i))
            for i in db.session().scalars(select(Integration).where(Integration.id.in_([github_id, gitlab.id])))
        }
        db.session.remove()
    push = (FIXTURES / "github" / "push.json").read_bytes()
    token, secret = hooks[github_id]
    signature = "sha256=" + hmac.new(secret.encode(), push, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": signature}
    delivered = _record(
        seen,
        client.post(
            f"/webhooks/{github_id}/{token}", data=push, headers={**headers, "Content-Type": "application/json"}
        ),
    )
    assert delivered.status_code in (200, 202), delivered.get_data(as_text=True)
    gl_token, gl_secret = hooks[gitlab.id]
    gl_push = (FIXTURES / "gitlab" / "webhook_push.json").read_bytes()
    gl_headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": gl_secret, "Content-Type": "application/json"}
    gl_delivered = _record(seen, client.post(f"/webhooks/{gitlab.id}/{gl_token}", data=gl_push, headers=gl_headers))
    assert gl_delivered.status_code in (200, 202), gl_delivered.get_data(as_text=True)
    forged = {**headers, "X-Hub-Signature-256": "sha256=" + hmac.new(b"guess", push, hashlib.sha256).hexdigest()}
    wrong = _record(seen, client.post(f"/webhooks/{github_id}/{token}", data=push, headers=forged))
    assert wrong.status_code in (400, 401)

    # -- what people look at
    for url in ("/admin/repositories", "/admin/configure", "/browse", "/user/settings", "/panel/issue?issueKey=ABC-1"):
        assert page(url, account=ADMIN if url.startswith("/admin") else USER).status_code == 200, url
    for url in (
        "/api/integrations",
        f"/api/integrations/{git_id}",
        f"/api/integrations/{github_id}",
        f"/api/integrations/{git_id}/repositories",
        f"/api/integrations/{github_id}/log",
        f"/api/integrations/{github_id}/log/summary",
        "/api/index-runs",
        "/api/oauth/providers",
    ):
        assert api("GET", url).status_code == 200, url
    for url in ("/api/me/tokens", "/api/issues/ABC-1/development", "/api/browse/repositories"):
        assert api("GET", url, account=USER).status_code == 200, url
    assert _record(seen, client.get("/metrics")).status_code in (200, 401, 403)
    development = api("GET", "/api/issues/ABC-1/development", account=USER).get_data(as_text=True)
    assert "initial import" in development, "the worker indexed nothing: the scan would prove little"

    # -- the scan
    with app.app_context():
        stored = _db_text() + _redis_text()
        mirror_files = _mirror_text(runtime().settings.mirrors_dir)
        stored += mirror_files
        tenant_secret_ok = any(site.shared_secret not in t for t in stored)
        db.session.remove()
    secrets = {
        "shared secret": site.shared_secret,
        "git password": git_repo.server.password,
        "GitHub PAT": GOOD_TOKEN,
        "GitLab PAT": GITLAB_TOKEN,
        "user token": USER_TOKEN,
        "GitHub webhook secret": secret,
        "GitLab webhook secret": gl_secret,
        "OAuth client secret": OAUTH_CLIENT_SECRET,
        "OAuth code": OAUTH_CODE,
        "OAuth access token": OAUTH_ACCESS,
    }
    captured = capfd.readouterr()
    raw_records = [
        f"{r.name}: {r.getMessage()} {r.exc_text or ''} {json.dumps(getattr(r, 'fields', None), default=str)}"
        for r in caplog.records
    ]
    emitted = [captured.out, captured.err, caplog.text, root_output.getvalue()]
    jwts = {f"request JWT #{i}": t for i, t in enumerate(seen.sent_jwts)}
    responses = {
        name: [text for label, text in seen.responses if SHOWN_TO_ADMINS.get(name) != label] for name in secrets
    }
    problems = {
        "responses": [hit for name, value in secrets.items() for hit in _found({name: value}, responses[name])],
        "database/redis": _found(secrets, stored),
        "log records": _found(secrets, raw_records),
        "log output": _found({**secrets, **jwts}, emitted),
    }
    assert tenant_secret_ok
    assert any("config" in f for f in mirror_files), "the worker kept no mirror: the scan would prove little"
    assert len(caplog.records) > 20 and seen.responses
    assert root_output.getvalue() or not root_handlers, "the root handler's output was not captured"
    assert not any(problems.values()), json.dumps(problems, indent=1)
