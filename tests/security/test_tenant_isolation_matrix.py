"""Tenant isolation matrix: every route of the app, called by tenant B (a Jira admin of B)
with tenant A's ids, answers 403/404 -- or B's own data -- and never anything of A.

:data:`MATRIX` has one entry per ``METHOD rule`` of ``app.url_map`` (static files aside);
:func:`test_every_route_has_a_matrix_entry` fails when a route is added without one, so a new
route cannot skip this check. After the whole matrix, every tenant-scoped row of A is as it
was (nothing of A was changed or deleted through B), A's OAuth sign-in is still there, and A
still works with its own token.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from rq import Queue
from werkzeug.test import TestResponse

from connect_app.extensions import redis_conn
from connect_app.hosts.base import ProviderId
from connect_app.jira.jwt import encode_request_token
from connect_app.oauth_settings import EXTENSION_KEY, OAuthClient, OAuthSettings
from connect_app.web import oauth
from tests.security.adversarial_support import ADMIN, ISSUE_KEY, USER, World, build_world, leaked, tenant_footprint
from tests.support.connect import Jira
from tests.support.jira_stub import JiraStub

OWN = frozenset({200})  # B's own (possibly empty) data
DENIED = frozenset({404})  # another tenant's id is unknown here (never a 403 that confirms it exists)
REFUSED = frozenset({400, 401, 403, 404, 405, 409})  # nothing done, in words


@dataclass(frozen=True)
class Probe:
    """One call made with B's credentials; ``url`` is formatted with A's ids (``{integration}``,
    ``{repository}``, ``{job}``, ``{flow}``, ``{key}``) and B's (``{b_webhook_token}``,
    ``{b_integration}``).

    ``via``: ``api`` (context token of B's admin), ``page`` (B's module URL token),
    ``public`` (no token), ``install`` (an RS256 lifecycle call from Jira for site B),
    ``lifecycle`` (HS256 signed with B's secret), ``webhook`` (no token)."""

    method: str
    url: str
    expect: frozenset[int]
    via: str = "api"
    body: Any = None
    account: str = ADMIN
    shows_own: bool = False  # B's own integration must be in the answer (the call really worked)


def api(method: str, url: str, expect: frozenset[int] = DENIED, body: Any = None, **kw: Any) -> Probe:
    return Probe(method, url, expect, "api", body, **kw)


def page(url: str, **kw: Any) -> Probe:
    return Probe("GET", url, OWN, "page", **kw)


ID_I = "/api/integrations/{integration}"
BRANCH_BODY = {"repository_id": "{repository}", "source": "main", "name": "feature/ABC-1-x"}
ID_R = "/api/repositories/{repository}"
BROWSE_R = "/api/browse/repositories/{repository}"

# "METHOD rule" -> probes. Routes without ids are called as B and must show only B's data.
MATRIX: dict[str, list[Probe]] = {
    "GET /": [Probe("GET", "/", OWN, "public")],
    "GET /atlassian-connect.json": [Probe("GET", "/atlassian-connect.json", OWN, "public")],
    "GET /healthz": [Probe("GET", "/healthz", OWN, "public")],
    "GET /readyz": [Probe("GET", "/readyz", OWN, "public")],
    "GET /api/openapi.json": [Probe("GET", "/api/openapi.json", OWN, "public")],
    # operators' metrics (loopback or METRICS_TOKEN): counts only, never a tenant's names or ids
    "GET /metrics": [Probe("GET", "/metrics", frozenset({200, 401, 403}), "public")],
    # -- pages (module URLs: qsh bound to the URL)
    "GET /panel/issue": [page(f"/panel/issue?issueKey={ISSUE_KEY}&projectKey=ABC", account=USER, shows_own=True)],
    "GET /admin/repositories": [page("/admin/repositories")],
    "GET /admin/configure": [page("/admin/configure")],
    "GET /admin/welcome": [page("/admin/welcome")],
    "GET /browse": [page("/browse", account=USER)],
    "GET /user/settings": [page("/user/settings?integration={integration}", account=USER, shows_own=True)],
    "GET /actions/create-branch": [page(f"/actions/create-branch?issueKey={ISSUE_KEY}", account=USER)],
    "GET /actions/create-pull-request": [page(f"/actions/create-pull-request?issueKey={ISSUE_KEY}", account=USER)],
    # -- lifecycle: B tries to take over, disable or remove A
    "POST /lifecycle/installed": [Probe("POST", "/lifecycle/installed", frozenset({401}), "install")],
    "POST /lifecycle/uninstalled": [Probe("POST", "/lifecycle/uninstalled", frozenset({401}), "install")],
    "POST /lifecycle/enabled": [Probe("POST", "/lifecycle/enabled", frozenset({401}), "lifecycle")],
    "POST /lifecycle/disabled": [Probe("POST", "/lifecycle/disabled", frozenset({401}), "lifecycle")],
    # -- webhooks: A's integration with B's (valid, but B's) webhook token, or a guessed one
    "POST /webhooks/<int:integration_id>/<token>": [
        Probe("POST", "/webhooks/{integration}/{b_webhook_token}", frozenset({404}), "webhook", {"zen": "x"}),
        Probe("POST", "/webhooks/{integration}/{random}", frozenset({404}), "webhook", {"zen": "x"}),
    ],
    # -- OAuth popup: the flow id is a one-time capability only A's admin was given; B can
    # neither guess one nor finish A's sign-in from its own browser (no cookie).
    "GET /oauth/authorize": [Probe("GET", "/oauth/authorize?flow={random}", frozenset({400}), "public")],
    "GET /oauth/callback": [Probe("GET", "/oauth/callback?code=c&state={random}", frozenset({400}), "public")],
    # -- JSON API: routes without ids answer B's own data
    "GET /api/me": [api("GET", "/api/me", OWN)],
    "GET /api/providers": [api("GET", "/api/providers", OWN)],
    "GET /api/integrations": [api("GET", "/api/integrations", OWN, shows_own=True)],
    "POST /api/integrations": [api("POST", "/api/integrations", REFUSED, {"display_name": "x"})],
    "POST /api/integrations/validate": [api("POST", "/api/integrations/validate", REFUSED, {})],
    "GET /api/index-runs": [
        api("GET", "/api/index-runs", OWN),
        api("GET", "/api/index-runs?integration={integration}"),
        api("GET", "/api/index-runs?repository={repository}"),
    ],
    "DELETE /api/index-runs": [
        api("DELETE", "/api/index-runs?status=queued&integration={integration}"),
        api("DELETE", "/api/index-runs?status=queued&repository={repository}"),
        api("DELETE", "/api/index-runs?status=queued", OWN),  # B's queued runs only
    ],
    "GET /api/jira-projects": [api("GET", "/api/jira-projects", OWN)],
    "GET /api/oauth/providers": [api("GET", "/api/oauth/providers", OWN)],
    "POST /api/oauth/flows": [api("POST", "/api/oauth/flows", REFUSED, {"provider": "nope"})],
    "GET /api/browse/repositories": [api("GET", "/api/browse/repositories", OWN, account=USER, shows_own=True)],
    "GET /api/me/tokens": [api("GET", "/api/me/tokens", OWN, account=USER, shows_own=True)],
    "POST /api/me/permissions/refresh": [api("POST", "/api/me/permissions/refresh", frozenset({204}), account=USER)],
    "GET /api/issues/<key>/development": [
        api("GET", f"/api/issues/{ISSUE_KEY}/development", OWN, account=USER, shows_own=True)
    ],
    "GET /api/issues/<key>/create-options": [
        api("GET", f"/api/issues/{ISSUE_KEY}/create-options?summary=Fix", OWN, account=USER)
    ],
    # -- JSON API with A's ids
    "GET /api/integrations/<int:integration_id>": [api("GET", ID_I)],
    "PATCH /api/integrations/<int:integration_id>": [api("PATCH", ID_I, body={"display_name": "taken"})],
    "DELETE /api/integrations/<int:integration_id>": [api("DELETE", ID_I)],
    "PUT /api/integrations/<int:integration_id>/credentials": [
        api("PUT", ID_I + "/credentials", body={"auth": {"type": "pat", "token": "ghp_x"}}),
        api("PUT", ID_I + "/credentials", body={"oauth_flow": "{flow}"}),
        # B's own integration with A's OAuth sign-in: A's tokens must not become B's
        api("PUT", "/api/integrations/{b_integration}/credentials", frozenset({400}), {"oauth_flow": "{flow}"}),
    ],
    "GET /api/integrations/<int:integration_id>/log": [api("GET", ID_I + "/log")],
    "GET /api/integrations/<int:integration_id>/log/summary": [api("GET", ID_I + "/log/summary")],
    "POST /api/integrations/<int:integration_id>/reindex": [api("POST", ID_I + "/reindex")],
    "GET /api/integrations/<int:integration_id>/remote-repositories": [api("GET", ID_I + "/remote-repositories")],
    "GET /api/integrations/<int:integration_id>/repositories": [api("GET", ID_I + "/repositories")],
    "POST /api/integrations/<int:integration_id>/repositories": [
        api("POST", ID_I + "/repositories", body={"repositories": ["1"]})
    ],
    "PATCH /api/repositories/<int:repository_id>": [api("PATCH", ID_R, body={"enabled": False})],
    "POST /api/repositories/<int:repository_id>/reindex": [api("POST", ID_R + "/reindex")],
    "GET /api/repositories/<int:repository_id>/branches": [api("GET", ID_R + "/branches", account=USER)],
    "GET /api/browse/repositories/<int:repository_id>/refs": [api("GET", BROWSE_R + "/refs", account=USER)],
    "GET /api/browse/repositories/<int:repository_id>/commits": [api("GET", BROWSE_R + "/commits", account=USER)],
    "GET /api/browse/repositories/<int:repository_id>/compare": [
        api("GET", BROWSE_R + "/compare?from=main&to=main", account=USER)
    ],
    "GET /api/jobs/<job_id>": [api("GET", "/api/jobs/{job}", account=USER)],
    "POST /api/issues/<key>/branches": [
        api("POST", f"/api/issues/{ISSUE_KEY}/branches", DENIED, BRANCH_BODY, account=USER)
    ],
    "POST /api/issues/<key>/pull-requests": [
        api(
            "POST",
            f"/api/issues/{ISSUE_KEY}/pull-requests",
            DENIED,
            {"repository_id": "{repository}", "source": "feature/x", "target": "main", "title": "t"},
            account=USER,
        )
    ],
    "PUT /api/me/tokens/<int:integration_id>": [
        api("PUT", "/api/me/tokens/{integration}", body={"token": "ghp_x"}, account=USER)
    ],
    "DELETE /api/me/tokens/<int:integration_id>": [api("DELETE", "/api/me/tokens/{integration}", account=USER)],
    "POST /api/me/tokens/<int:integration_id>/test": [api("POST", "/api/me/tokens/{integration}/test", account=USER)],
    "GET /api/oauth/flows/<flow_id>": [api("GET", "/api/oauth/flows/{flow}")],
    "DELETE /api/oauth/flows/<flow_id>": [api("DELETE", "/api/oauth/flows/{flow}")],
    "POST /api/oauth/flows/<flow_id>/validate": [api("POST", "/api/oauth/flows/{flow}/validate", body={})],
    "POST /api/oauth/flows/<flow_id>/integration": [
        api("POST", "/api/oauth/flows/{flow}/integration", body={"display_name": "stolen"})
    ],
}


def route_keys(app: Flask) -> set[str]:
    keys = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            keys.add(f"{method} {rule.rule}")
    return keys


def test_every_route_has_a_matrix_entry(app: Flask) -> None:
    keys = route_keys(app)
    missing = sorted(keys - MATRIX.keys())
    assert not missing, f"routes without an isolation matrix entry (add them to MATRIX): {missing}"
    stale = sorted(MATRIX.keys() - keys)
    assert not stale, f"MATRIX entries for routes that no longer exist: {stale}"


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Worlds:
    a: World
    b: World


@pytest.fixture
def worlds(
    app: Flask, jira: Jira, installed_site: Any, other_site: Any, jira_stub: JiraStub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Worlds]:
    jira_stub.admins.add(ADMIN)
    # An OAuth client, so A's admin can start a sign-in (its flow id is one of A's secrets).
    monkeypatch.setitem(
        app.extensions, EXTENSION_KEY, OAuthSettings({ProviderId.GITHUB: OAuthClient("cid-matrix", "csecret-matrix")})
    )
    with app.app_context():
        a = build_world(installed_site, "a")
        b = build_world(other_site, "b")
    started = jira.api(installed_site, "POST", "/api/oauth/flows", json_body={"provider": "github"}, account_id=ADMIN)
    assert started.status_code == 201, started.get_data(as_text=True)
    a.oauth_flow_id = started.get_json()["id"]
    yield Worlds(a, b)
    jira_stub.admins.discard(ADMIN)


def _fill(text: str, w: Worlds) -> str:
    return text.format(
        integration=w.a.integration_id,
        repository=w.a.repository_id,
        job=w.a.action_job_id,
        flow=w.a.oauth_flow_id,
        key=ISSUE_KEY,
        b_webhook_token=w.b.webhook_token,
        b_integration=w.b.integration_id,
        random=secrets.token_urlsafe(16),
    )


def _fill_body(body: Any, w: Worlds) -> Any:
    """Placeholders in string values of a JSON body (``"{repository}"`` becomes A's id, an int)."""
    if isinstance(body, dict):
        return {k: _fill_body(v, w) for k, v in body.items()}
    if isinstance(body, list):
        return [_fill_body(v, w) for v in body]
    if isinstance(body, str) and body.startswith("{") and body.endswith("}"):
        value = _fill(body, w)
        return int(value) if value.isdigit() else value
    return body


def send(jira: Jira, w: Worlds, probe: Probe) -> TestResponse:
    url = _fill(probe.url, w)
    body = _fill_body(probe.body, w)
    client = jira.client
    b = w.b.site
    if probe.via == "api":
        return jira.api(b, probe.method, url, json_body=body, account_id=probe.account)
    if probe.via == "page":
        return jira.get_page(b, url, account_id=probe.account)
    if probe.via in ("public", "webhook"):
        return client.open(url, method=probe.method, json=body)
    a_body = w.a.site.install_body(jira.app_key, sharedSecret=b.shared_secret)
    if probe.via == "install":  # Jira really signed this for site B; the body names A
        token = jira.install_token(b, url)
    else:  # "lifecycle": B's shared secret, iss B, body clientKey A
        token = encode_request_token(issuer=b.client_key, secret=b.shared_secret, method="POST", path=url)
    return client.post(url, json=a_body, headers={"Authorization": f"JWT {token}"})


def test_tenant_b_never_reaches_tenant_a(app: Flask, jira: Jira, worlds: Worlds) -> None:
    with app.app_context():
        before = tenant_footprint(worlds.a.tenant_id)
        queued_before = Queue("interactive", connection=redis_conn.client).count
    problems: list[str] = []
    for key, probes in MATRIX.items():
        for probe in probes:
            response = send(jira, worlds, probe)
            text = response.get_data(as_text=True) + json.dumps(dict(response.headers))
            where = f"{key} ({probe.method} {probe.url} via {probe.via})"
            if response.status_code not in probe.expect:
                problems.append(f"{where}: HTTP {response.status_code} not in {sorted(probe.expect)}: {text[:300]}")
            if found := leaked(text, worlds.a.markers):
                problems.append(f"{where}: shows tenant A's {found}")
            if probe.shows_own and worlds.b.integration_name not in text:
                problems.append(f"{where}: B's own data is missing, so the probe proves nothing: {text[:300]}")
    assert not problems, "\n".join(problems)

    with app.app_context():
        assert tenant_footprint(worlds.a.tenant_id) == before, "tenant A's rows changed through tenant B"
        assert Queue("interactive", connection=redis_conn.client).count == queued_before
        assert worlds.a.oauth_flow_id and oauth.load_flow(worlds.a.oauth_flow_id) is not None
    # A itself still works, with its own secret and its own ids.
    mine = jira.api(worlds.a.site, "GET", f"/api/integrations/{worlds.a.integration_id}", account_id=ADMIN)
    assert mine.status_code == 200 and worlds.a.integration_name in mine.get_data(as_text=True)


def test_tenant_a_sees_its_own_data_through_the_same_calls(app: Flask, jira: Jira, worlds: Worlds) -> None:
    """The control: the id-bearing probes above answer A's data to A, so their 404s for B are
    isolation, not broken probes."""
    a = worlds.a
    for url in (
        f"/api/integrations/{a.integration_id}",
        f"/api/integrations/{a.integration_id}/repositories",
        f"/api/integrations/{a.integration_id}/log",
        f"/api/index-runs?integration={a.integration_id}",
        f"/api/oauth/flows/{a.oauth_flow_id}",
    ):
        response = jira.api(a.site, "GET", url, account_id=ADMIN)
        assert response.status_code == 200, (url, response.get_data(as_text=True))
    for url in (f"/api/jobs/{a.action_job_id}", f"/api/browse/repositories/{a.repository_id}/refs"):
        response = jira.api(a.site, "GET", url, account_id=USER)
        assert response.status_code == 200, (url, response.get_data(as_text=True))
    development = jira.api(a.site, "GET", f"/api/issues/{ISSUE_KEY}/development", account_id=USER)
    assert a.commit_sha in development.get_data(as_text=True)
