# ruff: noqa: F811 - fake_github is imported as a fixture and is a parameter here
"""Schemathesis against ``/api/openapi.json`` through the Flask app (WSGI, no sockets for the
app itself), with a valid context JWT of a Jira admin of tenant A (qsh ``context-qsh``).

Every operation gets a few derandomized examples with generated path ids, and -- when it takes
an integration or repository id -- a few more with tenant A's real ids (from
:func:`~tests.security.adversarial_support.build_world`, its integration pointed at a scripted
GitHub on loopback), so requests get past the 404s into the handlers. Destructive operations
run last. Checks: never a 500, and the status code, content type and JSON body conform to the
document.

No network: the integration's host is loopback (:class:`~tests.web.fake_github.FakeGitHub`);
any other name a generated ``base_url`` carries fails to resolve (``socket.getaddrinfo`` is
fenced) and any non-loopback connect fails the test; RQ jobs are only enqueued, never run.
A host that cannot be reached is the app's documented 502/503 ``HostError`` (a gateway error,
not a crash), accepted for the operations that call a host synchronously (:data:`CALLS_HOST`),
and so is the browser's 503 ``history_unavailable`` for a repository without a mirror
(:data:`READS_MIRROR`). Deterministic companions: ids beyond the database's integer range,
NUL characters in every parameter and body field, and credentials beyond Latin-1.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connect_app.extensions import db
from connect_app.hosts.base import AuthType, Credentials
from connect_app.integrations import encode_credentials
from connect_app.models import Integration
from connect_app.runtime import runtime
from tests.security.adversarial_support import ADMIN, USER, World, build_world
from tests.support.connect import JiraSite
from tests.support.jira_stub import JiraStub
from tests.support.stub_host import loopback_only
from tests.web.fake_github import GOOD_TOKEN, FakeGitHub, fake_github  # noqa: F401

EXAMPLES = 10  # per operation and id mode: bounded so the whole file stays well under a minute
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
SHARDS = 4
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Operations that talk to a git host while the request waits (credentials check, repository
# listing, a user's token check); unreachable hosts are their 502/503 HostError by design.
CALLS_HOST = {
    "POST /api/integrations",
    "POST /api/integrations/validate",
    "PATCH /api/integrations/{integration_id}",
    "PUT /api/integrations/{integration_id}/credentials",
    "GET /api/integrations/{integration_id}/remote-repositories",
    "POST /api/integrations/{integration_id}/repositories",
    "PUT /api/me/tokens/{integration_id}",
    "POST /api/me/tokens/{integration_id}/test",
    "GET /api/repositories/{repository_id}/branches",
    "POST /api/oauth/flows/{flow_id}/validate",
    "POST /api/oauth/flows/{flow_id}/integration",
}
GATEWAY_ERRORS = {502, 503}
# The repository browser reads history from the workers' mirrors; the test's repository (rows
# only) has none, which the API answers with its documented 503 ``history_unavailable``.
READS_MIRROR = {
    "GET /api/browse/repositories/{repository_id}/commits",
    "GET /api/browse/repositories/{repository_id}/compare",
}


def _fence_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names resolve only to loopback; connecting anywhere else fails the test."""
    loopback_only(monkeypatch)
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            loopback = ipaddress.ip_address(name.strip("[]").split("%")[0]).is_loopback
        except ValueError:
            loopback = name == "localhost"
        if not loopback:
            raise socket.gaierror(socket.EAI_NONAME, "name resolution is fenced in this test")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@dataclass
class Found:
    problems: dict[str, str] = field(default_factory=dict)  # (operation, kind) -> first example
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, key: str, message: str) -> None:
        self.problems.setdefault(key, message[:600])


@pytest.fixture
def world(
    app: Flask,
    installed_site: JiraSite,
    jira_stub: JiraStub,
    fake_github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    jira_stub.admins.add(ADMIN)
    with app.app_context():
        found = build_world(installed_site, "a")
        integration = db.session().get(Integration, found.integration_id)
        assert integration is not None
        integration.base_url = fake_github.url
        integration.credentials_encrypted = runtime().secrets.encrypt(
            encode_credentials(Credentials(AuthType.PAT, token=GOOD_TOKEN))
        )
        db.session().commit()
    _fence_network(monkeypatch)
    yield found
    jira_stub.admins.discard(ADMIN)


def _order(operation: Any) -> tuple[int, str]:
    return (1 if operation.method.upper() == "DELETE" else 0, operation.label)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_api_fuzzing_finds_no_server_errors(app: Flask, world: World, shard: int) -> None:
    """One shard of the operations (each shard its own test: bounded time per test, a fresh world)."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    every = sorted((result.ok() for result in schema.get_all_operations()), key=lambda o: o.label)
    assert len(every) >= 30, [o.label for o in every]
    operations = sorted(every[shard::SHARDS], key=_order)
    found = Found()
    real_ids = {"integration_id": world.integration_id, "repository_id": world.repository_id}

    def exercise(operation: Any, path_parameters: dict[str, Any] | None) -> None:
        label = f"{operation.method.upper()} {operation.path}"

        @FUZZ
        @given(case=operation.as_strategy(path_parameters=path_parameters))
        def run(case: Any) -> None:
            token = world.site.token("GET", "/", context=True, account_id=ADMIN)
            response = case.call(headers={"Authorization": f"JWT {token}"})
            found.calls += 1
            found.statuses[response.status_code] = found.statuses.get(response.status_code, 0) + 1
            if response.status_code in GATEWAY_ERRORS and label in CALLS_HOST:
                return
            if response.status_code == 503 and label in READS_MIRROR and "history_unavailable" in response.text:
                return
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as e:
                found.add(f"{label} [{type(e).__name__}]", f"{e}\n  {case.as_curl_command()}")

        try:
            run()
        except Unsatisfiable:
            pass

    for operation in operations:
        exercise(operation, None)
        wanted = {p.name for p in operation.path_parameters} & real_ids.keys()
        if wanted:
            exercise(operation, {name: real_ids[name] for name in wanted})

    assert found.calls >= len(operations) * 3, found.calls
    assert not found.problems, "\n\n".join(f"{k}: {v}" for k, v in sorted(found.problems.items()))


@pytest.mark.parametrize("huge", [2**31, 2**63, 10**30])
def test_ids_beyond_the_database_integer_range_are_404s(app: Flask, world: World, huge: int) -> None:
    """Flask's ``int`` converter takes any size; PostgreSQL integers are 32-bit (SQLite's 64).
    Every route with an integer id answers an out-of-range one as an unknown id, not a 500."""
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items() if type(conv).__name__ == "IntegerConverter"]
        if not ints:
            continue
        url = rule.rule
        for name in ints:
            url = url.replace(f"<int:{name}>", str(huge))
        url = url.replace("<token>", "t" * 32)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            token = world.site.token("GET", "/", context=True, account_id=ADMIN)
            response = client.open(url, method=method, json={}, headers={"Authorization": f"JWT {token}"})
            # 404, or the body's own 400 where the body is read first; never a 500
            assert response.status_code in (400, 404), (method, url, response.get_data(as_text=True))
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("text", ["ghp_\U000219dbabcdefghijklmnop", "ghp_\u20acabcdefghijklmnop"])
def test_credentials_no_host_could_receive_are_400s(
    app: Flask, world: World, fake_github: FakeGitHub, text: str
) -> None:
    """Found by the fuzzer: a token beyond Latin-1 cannot go into an HTTP header, and used to
    end in a UnicodeEncodeError (500) on every route that checks credentials with the host."""
    client = app.test_client()
    github = {"provider": "github", "base_url": fake_github.url, "auth": {"type": "pat", "token": text}}
    calls = [
        ("POST", "/api/integrations/validate", github, ADMIN),
        ("POST", "/api/integrations", github, ADMIN),
        ("PUT", f"/api/integrations/{world.integration_id}/credentials", {"auth": github["auth"]}, ADMIN),
        ("PUT", f"/api/me/tokens/{world.integration_id}", {"token": text}, USER),
        ("PUT", f"/api/me/tokens/{world.integration_id}", {"token": "ghp_abcdefghijklmnop", "username": text}, USER),
    ]
    for method, url, body, account in calls:
        token = world.site.token("GET", "/", context=True, account_id=account)
        response = client.open(url, method=method, json=body, headers={"Authorization": f"JWT {token}"})
        assert response.status_code == 400, (method, url, response.get_data(as_text=True))


def _string_fields(schema: dict[str, Any], doc: dict[str, Any], depth: int = 0) -> list[tuple[str, ...]]:
    """Paths to the string (and string array: last element ``[]``) properties of a request body
    schema, two levels deep."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    out: list[tuple[str, ...]] = []
    for name, prop in (schema.get("properties") or {}).items():
        if "$ref" in prop:
            prop = doc["components"]["schemas"][prop["$ref"].rsplit("/", 1)[-1]]
        if prop.get("type") == "string":
            out.append((name,))
        elif prop.get("type") == "array" and (prop.get("items") or {}).get("type") == "string":
            out.append((name, "[]"))
        elif prop.get("type") == "object" and depth < 1:
            out += [(name, *sub) for sub in _string_fields(prop, doc, depth + 1)]
    return out


def _with(body: dict[str, Any], path: tuple[str, ...], value: str) -> dict[str, Any]:
    if path[1:] == ("[]",):
        return {**body, path[0]: [value]}
    if len(path) == 1:
        return {**body, path[0]: value}
    inner = body.get(path[0]) if isinstance(body.get(path[0]), dict) else {}
    return {**body, path[0]: _with(inner, path[1:], value)}


def test_nul_characters_in_any_parameter_or_body_field_are_never_a_500(app: Flask, world: World) -> None:
    """PostgreSQL refuses NUL in text; a NUL in a query parameter, a string path parameter or a
    string body field must be a 4xx (or ignored), never a 500."""
    client = app.test_client()
    doc = client.get("/api/openapi.json").get_json()
    ids = {"integration_id": world.integration_id, "repository_id": world.repository_id}
    base_body = {"provider": "github", "auth": {"type": "pat", "token": "ghp_x"}, "token": "ghp_x"}
    problems = []
    checked = 0
    operations = sorted(
        (
            (template, method, operation, item.get("parameters", []))
            for template, item in doc["paths"].items()
            for method, operation in item.items()
            if method != "parameters"
        ),
        key=lambda op: (op[1] == "delete", op[0]),  # A's rows are deleted last
    )
    for template, method, operation, shared in operations:
        if True:
            params = [*shared, *operation.get("parameters", [])]
            path = template
            for p in params:
                if p["in"] == "path":
                    value = str(ids.get(p["name"], "a\x00b"))
                    path = path.replace("{" + p["name"] + "}", urllib.parse.quote(value, safe=""))
            variants: list[tuple[dict[str, str], Any]] = []
            for p in params:
                if p["in"] == "query":
                    variants.append(({p["name"]: "a\x00b"}, None))
            content = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if content:
                for field_path in _string_fields(content["schema"], doc):
                    variants.append(({}, _with({}, field_path, "x\x00y")))
                    variants.append(({}, _with(base_body, field_path, "x\x00y")))
            if "{" not in template or not variants:
                variants.append(({}, None))
            for query, body in variants:
                token = world.site.token("GET", "/", context=True, account_id=ADMIN)
                response = client.open(
                    path,
                    method=method.upper(),
                    query_string=query,
                    json=body,
                    headers={"Authorization": f"JWT {token}"},
                )
                checked += 1
                if response.status_code >= 500 and response.status_code not in GATEWAY_ERRORS:
                    problems.append(f"{method.upper()} {path} {query or ''} {body or ''}: {response.status_code}")
    assert checked > 40
    assert not problems, "\n".join(problems)
