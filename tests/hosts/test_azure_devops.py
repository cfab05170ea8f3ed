"""Azure DevOps Services / Server: contract tests against Microsoft's Git 7.1 and Service Hooks 7.1
descriptions (Prism), wire-shape tests with the descriptions' own httpExamples served by a loopback
stub, and webhook payloads copied from Microsoft's service-hooks documentation."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from connect_app.errors import AuthError, HostAuthError, HostError, HostPermissionDenied, RateLimited, Unsupported
from connect_app.hosts.azure_devops import (
    HOOK_EVENTS,
    AzureDevOpsHost,
    parse_pull_request,
    parse_repository,
)
from connect_app.hosts.base import (
    AuthType,
    Capability,
    Credentials,
    GitHost,
    Permission,
    ProviderId,
    PullRequestAction,
    PullRequestState,
    RemoteRepository,
    WebhookEventType,
)
from tests.support.http_server import LoopbackServer
from tests.support.prism import PrismMock, load_spec, shared_spec_path, shared_specs_dir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "azure_devops"
PAT = "pat-secret-0123456789abcdef"
OAUTH = Credentials(AuthType.OAUTH, token="oauth-access-token-xyz")
REPO_ID = "d3d1760b-311c-4175-a726-20dfc6a7f885"
REPO = RemoteRepository(
    external_id=REPO_ID,
    name="MyProject/repo",
    clone_url="https://fabrikam@dev.azure.com/fabrikam/MyProject/_git/repo",
    web_url="https://dev.azure.com/fabrikam/MyProject/_git/repo",
    namespace="MyProject",
)


def http_example(area: str, name: str, status: str = "200") -> Any:
    path = shared_specs_dir() / "azure-devops-7.1/specification/git/7.1/httpExamples" / area / name
    return json.loads(path.read_text(encoding="utf-8-sig"))["responses"][status]["body"]


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


# --------------------------------------------------------------------------- loopback stub


@dataclass
class Stub:
    """Routes ``(method, path)`` to a handler; records every request."""

    routes: dict[tuple[str, str], Callable[[Request], Response]] = field(default_factory=dict)
    seen: list[Request] = field(default_factory=list)

    def json(self, method: str, path: str, body: Any, status: int = 200, **headers: str) -> None:
        self.routes[(method, path)] = lambda _r: Response(
            json.dumps(body), status=status, headers=headers, content_type="application/json"
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        request.get_data()
        self.seen.append(request)
        handler = self.routes.get((request.method, request.path))
        response = handler(request) if handler else Response("{}", status=404, content_type="application/json")
        return response(environ, start_response)


@pytest.fixture
def stub() -> Iterator[tuple[Stub, LoopbackServer]]:
    app = Stub()
    server = LoopbackServer(app).start()
    yield app, server
    server.stop()


def stub_host(loopback: LoopbackServer, credentials: Credentials | None = None, **kw: Any) -> AzureDevOpsHost:
    creds = credentials or Credentials(AuthType.PAT, token=PAT)
    return AzureDevOpsHost(f"{loopback.url}/fabrikam", creds, allow_private=True, **kw)


# --------------------------------------------------------------------------- Prism contract tests


def _with_service_hooks(doc: dict[str, Any]) -> None:
    """One mock for both descriptions: the Service Hooks paths join the Git ones (the few
    definitions they share are identical). Their httpExamples are dropped: Prism does not use them."""
    hooks = load_spec(shared_spec_path("azure-devops-hooks"))
    for item in hooks["paths"].values():
        for op in item.values():
            if isinstance(op, dict):
                op.pop("x-ms-examples", None)
    doc["paths"].update(hooks["paths"])
    for name, schema in hooks["definitions"].items():
        doc["definitions"].setdefault(name, schema)


@pytest.fixture(scope="module")
def azure_prism() -> Iterator[PrismMock]:
    with PrismMock(shared_spec_path("azure-devops-git"), transform=_with_service_hooks) as mock:
        yield mock


def prism_host(mock: PrismMock) -> AzureDevOpsHost:
    # Every operation of the description declares only the oauth2 scheme, so Prism wants a bearer token.
    return AzureDevOpsHost(f"{mock.root_url}/fabrikam", OAUTH, allow_private=True)


@pytest.mark.slow
def test_prism_list_repositories_of_a_project(azure_prism: PrismMock) -> None:
    host = prism_host(azure_prism)
    with azure_prism.recording() as rec:
        repos = list(host.list_repositories(namespace="MyProject"))
    rec.assert_all_valid(min_requests=1)
    raw = rec.exchanges[0].response.json()
    parsed = [parse_repository(r) for r in (raw if isinstance(raw, list) else raw["value"])]
    assert parsed and all(p.external_id for p in parsed)
    assert repos == [p for p, r in zip(parsed, raw, strict=True) if not r.get("isDisabled")]
    assert rec.exchanges[0].url.split("?")[0].endswith("/fabrikam/MyProject/_apis/git/repositories")


@pytest.mark.slow
def test_prism_branches_pull_requests_and_writes(azure_prism: PrismMock) -> None:
    host = prism_host(azure_prism)
    with azure_prism.recording() as rec:
        branches = list(host.list_branches(REPO))
        prs = list(host.list_pull_requests(REPO))
        recent = list(host.list_pull_requests(REPO, updated_since=datetime(2019, 1, 1, tzinfo=UTC)))
        branch = host.create_branch(REPO, "feature/ABC-1", "ffe9cba521f00d7f60e322845072238635edb451")
        pr = host.create_pull_request(REPO, source="feature/ABC-1", target="main", title="ABC-1 x", body="d")
    rec.assert_all_valid(min_requests=6)
    assert branches and all(b.name for b in branches)
    assert prs and all(p.state in PullRequestState for p in prs) and recent
    assert branch.name == "feature/ABC-1"
    assert pr.external_id and pr.title
    posted = [json.loads(e.response.request.body) for e in rec.exchanges if e.method == "POST"]
    assert posted[0] == [
        {
            "name": "refs/heads/feature/ABC-1",
            "oldObjectId": "0" * 40,
            "newObjectId": "ffe9cba521f00d7f60e322845072238635edb451",
        }
    ]
    assert posted[1]["sourceRefName"] == "refs/heads/feature/ABC-1"
    assert posted[1]["targetRefName"] == "refs/heads/main"


@pytest.mark.slow
def test_prism_service_hook_subscriptions(azure_prism: PrismMock) -> None:
    host = prism_host(azure_prism)
    with azure_prism.recording() as rec:
        registration = host.register_webhook(REPO, "https://app.example/webhooks/1/s", "hook-secret")
        host.delete_webhook(REPO, registration.id)
    rec.assert_all_valid(min_requests=1 + 2 * len(HOOK_EVENTS))
    subscribed = [json.loads(e.response.request.body) for e in rec.exchanges if e.method == "POST"]
    assert [s["eventType"] for s in subscribed] == list(HOOK_EVENTS)
    assert all(s["consumerInputs"]["basicAuthPassword"] == "hook-secret" for s in subscribed)
    assert all(s["publisherInputs"]["repository"] == REPO_ID for s in subscribed)
    assert len(registration.id.split(",")) == len(HOOK_EVENTS)
    assert sum(e.method == "DELETE" for e in rec.exchanges) == len(HOOK_EVENTS)


@pytest.mark.slow
def test_prism_permission_reads_repository_with_users_token(azure_prism: PrismMock) -> None:
    host = prism_host(azure_prism)
    with azure_prism.recording() as rec:
        permission = host.repository_permission(REPO, Credentials(AuthType.OAUTH, token="user-token"))
    assert not rec.exchanges[0].request_violations  # GET repository; the security API is not in this description
    assert rec.exchanges[0].response.request.headers["Authorization"] == "Bearer user-token"
    assert permission is Permission.READ  # floor when the permissions API cannot confirm more


# --------------------------------------------------------------------------- credentials, errors, rate limits


def test_provider_info_and_protocol() -> None:
    services = AzureDevOpsHost.services("fabrikam", Credentials(AuthType.PAT, token=PAT))
    server = AzureDevOpsHost.azure_server("https://tfs.example.com/tfs/DefaultCollection", OAUTH, api_version="5.0")
    assert isinstance(services, GitHost)
    assert services.base_url == "https://dev.azure.com/fabrikam" and services.api_version == "7.1"
    assert services.info.id is ProviderId.AZURE_DEVOPS and Capability.OAUTH in services.info.capabilities
    assert server.info.id is ProviderId.AZURE_DEVOPS_SERVER and server.api_version == "5.0"
    assert Capability.OAUTH not in server.info.capabilities
    with pytest.raises(Unsupported):
        server.authorize_url(state="s", redirect_uri="https://app.example/cb")


def test_pat_is_basic_auth_with_empty_user_and_validate_names_the_user(stub: tuple[Stub, LoopbackServer]) -> None:
    app, server = stub
    app.json("GET", "/fabrikam/_apis/connectionData", {"authenticatedUser": {"providerDisplayName": "Normal Paulk"}})
    assert stub_host(server).validate_credentials() == "Normal Paulk"
    sent = app.seen[0].headers
    assert sent["Authorization"] == "Basic " + base64.b64encode(f":{PAT}".encode()).decode()
    assert sent["X-TFS-FedAuthRedirect"] == "Suppress"


@pytest.mark.parametrize("status", [401, 203])
def test_refused_or_sign_in_page_is_auth_error_with_scope_hint(stub: tuple[Stub, LoopbackServer], status: int) -> None:
    app, server = stub
    app.routes[("GET", "/fabrikam/_apis/connectionData")] = lambda _r: Response(
        f"<html>Sign in {PAT}</html>", status=status, content_type="text/html"
    )
    with pytest.raises(HostAuthError) as info:
        stub_host(server).validate_credentials()
    assert "Code (Read)" in info.value.message and "Service Hooks" in info.value.message
    assert PAT not in str(info.value) and PAT not in repr(info.value.args)


def test_retry_after_429_waits_then_succeeds(stub: tuple[Stub, LoopbackServer]) -> None:
    app, server = stub
    answers = iter([Response("{}", status=429, headers={"Retry-After": "2"}), None])

    def handler(_r: Request) -> Response:
        return next(answers) or Response(json.dumps({"count": 0, "value": []}), content_type="application/json")

    app.routes[("GET", "/fabrikam/_apis/git/repositories")] = handler
    clock = FakeClock()
    assert list(stub_host(server, sleep=clock.sleep, clock=clock).list_repositories()) == []
    assert len(app.seen) == 2 and 2.0 <= sum(clock.slept) <= 3.0  # waited Retry-After (plus jitter), then once more


def test_long_retry_after_is_rate_limited_without_token(stub: tuple[Stub, LoopbackServer]) -> None:
    app, server = stub
    app.json("GET", "/fabrikam/_apis/git/repositories", {"message": "TF400733"}, status=429, **{"Retry-After": "3600"})
    with pytest.raises(RateLimited) as info:
        list(stub_host(server, sleep=FakeClock().sleep).list_repositories())
    assert info.value.reset_at is not None and PAT not in str(info.value)
    assert len(app.seen) == 1  # no hammering inside the window


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# --------------------------------------------------------------------------- wire shapes (httpExamples)


def test_list_repositories_of_all_projects_with_real_wire_shape(stub: tuple[Stub, LoopbackServer]) -> None:
    app, server = stub
    app.json("GET", "/fabrikam/_apis/git/repositories", http_example("repositories", "GET__git_repositories.json"))
    host = stub_host(server)
    repos = list(host.list_repositories())
    assert app.seen[0].args["api-version"] == "7.1"
    first = repos[0]
    assert first.external_id == "5febef5a-833d-4e14-b9c0-14cb638f91e6"
    assert first.name == "Fabrikam-Fiber-Git/AnotherRepository" and first.namespace == "Fabrikam-Fiber-Git"
    assert {r.default_branch for r in repos} >= {"master"}
    user_in_url = RemoteRepository("x", "p/r", "https://fabrikam@dev.azure.com/fabrikam/p/_git/r")
    assert host.clone_url(user_in_url) == "https://dev.azure.com/fabrikam/p/_git/r"


def test_branches_follow_continuation_token(stub: tuple[Stub, LoopbackServer]) -> None:
    app, server = stub
    page = http_example("refs", "GET__git_repositories__repositoryId__refs_heads.json")

    second = {**page, "value": [{**ref, "name": ref["name"] + "-2"} for ref in page["value"]]}

    def handler(request: Request) -> Response:
        if request.args.get("continuationToken"):
            return Response(json.dumps(second), content_type="application/json")
        return Response(json.dumps(page), headers={"x-ms-continuationtoken": "next-1"}, content_type="application/json")

    app.routes[("GET", f"/fabrikam/MyProject/_apis/git/repositories/{REPO_ID}/refs")] = handler
    branches = list(stub_host(server).list_branches(REPO))
    assert [r.args.get("continuationToken") for r in app.seen] == [None, "next-1"]
    assert app.seen[0].args["filter"] == "heads/"
    assert branches[0].name == "feature/calcApp" and branches[0].head_sha == "ffe9cba521f00d7f60e322845072238635edb451"
    assert len(branches) == 2 * len(page["value"])


def test_pull_requests_states_and_updated_since(stub: tuple[Stub, LoopbackServer]) -> None:
    app, server = stub
    body = http_example("pullRequests", "GET__git_repositories__repositoryId__pullRequests.json")
    done = dict(body["value"][0], pullRequestId=7, status="completed", closedDate="2024-05-01T10:00:00.1234567Z")
    gone = dict(body["value"][0], pullRequestId=8, status="abandoned", closedDate="2016-11-02T00:00:00Z")
    app.json(
        "GET",
        f"/fabrikam/MyProject/_apis/git/repositories/{REPO_ID}/pullrequests",
        {"value": [*body["value"], done, gone]},
    )
    host = stub_host(server)
    prs = {p.external_id: p for p in host.list_pull_requests(REPO)}
    assert app.seen[0].args["searchCriteria.status"] == "all" and app.seen[0].args["$top"] == "100"
    assert prs["22"].state is PullRequestState.OPEN and prs["22"].source_branch == "npaulk/my_work"
    assert prs["22"].url == f"{REPO.web_url}/pullrequest/22" and prs["22"].author == "Normal Paulk"
    assert prs["7"].state is PullRequestState.MERGED and prs["7"].updated_at == datetime(
        2024, 5, 1, 10, 0, 0, 123456, UTC
    )
    assert prs["8"].state is PullRequestState.DECLINED
    app.seen.clear()
    since = datetime(2024, 1, 1, tzinfo=UTC)
    assert [p.external_id for p in host.list_pull_requests(REPO, updated_since=since)] == ["7"]
    assert [(r.args["searchCriteria.queryTimeRangeType"], r.args["searchCriteria.minTime"]) for r in app.seen] == [
        ("created", "2024-01-01T00:00:00Z"),
        ("closed", "2024-01-01T00:00:00Z"),
    ]
    app.seen.clear()  # an older server has no time filter: filtered here instead
    old = stub_host(server, server=True, api_version="6.0")
    assert [p.external_id for p in old.list_pull_requests(REPO, updated_since=since)] == ["7"]
    assert len(app.seen) == 1 and "searchCriteria.minTime" not in app.seen[0].args
    assert app.seen[0].args["api-version"] == "6.0"


def test_create_branch_resolves_exact_branch_and_reports_conflicts(stub: tuple[Stub, LoopbackServer]) -> None:
    app, server = stub
    refs = f"/fabrikam/MyProject/_apis/git/repositories/{REPO_ID}/refs"
    app.json(
        "GET",
        refs,
        {
            "value": [
                {"name": "refs/heads/main-old", "objectId": "1" * 40},
                {"name": "refs/heads/main", "objectId": "2" * 40},
            ]
        },
    )
    ok = http_example("refs", "POST__git_repositories__repositoryId__refs.json")
    app.json("POST", refs, ok)
    branch = stub_host(server).create_branch(REPO, "vsts-api-sample/answer-woman-flame", "main")
    assert app.seen[0].args["filter"] == "heads/main"
    assert json.loads(app.seen[1].get_data())[0]["newObjectId"] == "2" * 40
    assert branch.name == "vsts-api-sample/answer-woman-flame"
    failed = {"value": [{"name": "refs/heads/x", "success": False, "updateStatus": "staleOldObjectId"}]}
    app.json("POST", refs, failed)
    with pytest.raises(HostError) as info:
        stub_host(server).create_branch(REPO, "x", "2" * 40)
    assert info.value.code == "branch_exists" and info.value.status == 409


@pytest.mark.parametrize(
    ("contribute", "manage", "expected"),
    [
        (True, True, Permission.ADMIN),
        (True, False, Permission.WRITE),
        (False, False, Permission.READ),
        (None, None, Permission.READ),
    ],
)
def test_repository_permission(
    stub: tuple[Stub, LoopbackServer], contribute: bool | None, manage: bool | None, expected: Permission
) -> None:
    app, server = stub
    app.json(
        "GET",
        f"/fabrikam/MyProject/_apis/git/repositories/{REPO_ID}",
        http_example("repositories", "GET__git_repositories__repositoryId_.json"),
    )
    for bit, answer in ((4, contribute), (8192, manage)):
        if answer is not None:
            app.json(
                "GET",
                f"/fabrikam/_apis/permissions/2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87/{bit}",
                {"count": 1, "value": [answer]},
            )
    user = Credentials(AuthType.PAT, token="user-pat-1234")
    assert stub_host(server).repository_permission(REPO, user) is expected
    assert app.seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b":user-pat-1234").decode()
    if contribute is not None:
        # preview-only resource: a plain "7.1" would be refused with a 400
        assert app.seen[1].args["api-version"] == "7.1-preview"
        assert app.seen[1].args["alwaysAllowAdministrators"] == "false"
        assert (
            app.seen[1].args["tokens"]
            == "repoV2/6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c/5febef5a-833d-4e14-b9c0-14cb638f91e6"
        )


def test_no_permission_when_repository_unreadable(stub: tuple[Stub, LoopbackServer]) -> None:
    _app, server = stub
    assert stub_host(server).repository_permission(REPO, Credentials(AuthType.PAT, token="u")) is Permission.NONE


def test_git_auth() -> None:
    pat = AzureDevOpsHost.services("fabrikam", Credentials(AuthType.PAT, token=PAT)).git_auth()
    assert (pat.username, pat.password) == ("pat", PAT) and PAT not in repr(pat)
    oauth = AzureDevOpsHost.services("fabrikam", OAUTH).git_auth()
    assert oauth.http_header == "Authorization: Bearer oauth-access-token-xyz"


# --------------------------------------------------------------------------- webhooks


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("git-connect-for-jira", "wrong"),
        {"Authorization": "Bearer hook-secret"},
        {"Authorization": "Basic %%%"},
    ],
    ids=["missing", "wrong-secret", "not-basic", "malformed"],
)
def test_verify_webhook_refuses(headers: dict[str, str]) -> None:
    host = AzureDevOpsHost.services("fabrikam", OAUTH)
    with pytest.raises(AuthError) as info:
        host.verify_webhook(headers, fixture("git.push"), "hook-secret")
    assert "hook-secret" not in str(info.value)


def test_verify_webhook_accepts_the_secret() -> None:
    host = AzureDevOpsHost.services("fabrikam", OAUTH)
    host.verify_webhook({"authorization": basic("any", "hook-secret")["Authorization"]}, b"{}", "hook-secret")


def test_parse_push() -> None:
    [event] = AzureDevOpsHost.services("fabrikam", OAUTH).parse_webhook({}, fixture("git.push"))
    assert event.type is WebhookEventType.PUSH
    assert event.repository_external_id == "278d5cd2-584d-4b63-824a-2ba458937249"
    assert event.delivery_id == "03c164c2-8912-4d5e-8009-3707d5f83734"
    assert [(r.ref, r.before, r.after) for r in event.refs] == [
        ("refs/heads/master", "aad331d8d3b131fa9ae03cf5e53965b51942618a", "33b55f7cb7e7e245323987634f960cf4a6e6bc74")
    ]
    assert event.commit_ids == ("33b55f7cb7e7e245323987634f960cf4a6e6bc74",)
    deleted = json.loads(fixture("git.push"))
    deleted["resource"]["refUpdates"][0]["newObjectId"] = "0" * 40
    [gone] = AzureDevOpsHost.services("fabrikam", OAUTH).parse_webhook({}, json.dumps(deleted).encode())
    assert gone.refs[0].after is None


@pytest.mark.parametrize(
    ("name", "action", "state"),
    [
        ("git.pullrequest.created", PullRequestAction.OPENED, PullRequestState.OPEN),
        ("git.pullrequest.updated", PullRequestAction.MERGED, PullRequestState.MERGED),
        ("git.pullrequest.merged", PullRequestAction.MERGED, PullRequestState.MERGED),
    ],
)
def test_parse_pull_request_events(name: str, action: PullRequestAction, state: PullRequestState) -> None:
    [event] = AzureDevOpsHost.services("fabrikam", OAUTH).parse_webhook({}, fixture(name))
    assert event.type is WebhookEventType.PULL_REQUEST and event.pull_request_action is action
    pr = event.pull_request
    assert pr is not None and pr.state is state and pr.external_id == "1"
    assert (pr.source_branch, pr.target_branch, pr.title) == ("mytopic", "master", "my first pull request")
    assert pr.url == "https://dev.azure.com/fabrikam/DefaultCollection/_git/Fabrikam/pullrequest/1"
    assert event.repository_external_id == "4bc14d40-c903-45e2-872e-0462c7748079"


def test_parse_unknown_event_is_ignored() -> None:
    assert AzureDevOpsHost.services("f", OAUTH).parse_webhook({}, b'{"eventType": "build.complete"}') == []


def test_parse_pull_request_without_closed_date_uses_creation_date() -> None:
    pr = parse_pull_request(
        {
            "pullRequestId": 3,
            "status": "active",
            "creationDate": "2024-02-03T04:05:06Z",
            "closedDate": "0001-01-01T00:00:00",
        }
    )
    assert pr.updated_at == pr.created_at == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)


# --------------------------------------------------------------------------- OAuth (Microsoft Entra ID)


def test_oauth_authorize_exchange_refresh(stub: tuple[Stub, LoopbackServer]) -> None:
    app, server = stub
    host = AzureDevOpsHost.services(
        "fabrikam",
        OAUTH,
        oauth_client_id="cid",
        oauth_client_secret="csecret-123",
        entra_authority=server.url,
        allow_private=True,
    )
    url = urllib.parse.urlsplit(host.authorize_url(state="st8", redirect_uri="https://app.example/cb"))
    query = urllib.parse.parse_qs(url.query)
    assert url.path == "/organizations/oauth2/v2.0/authorize"
    assert query["state"] == ["st8"] and query["client_id"] == ["cid"] and query["response_type"] == ["code"]
    assert (
        "offline_access" in query["scope"][0]
        and "499b84ac-1321-427f-aa17-267ca6975798/vso.code_write" in query["scope"][0]
    )
    app.json(
        "POST", "/organizations/oauth2/v2.0/token", {"access_token": "at", "refresh_token": "rt", "expires_in": 3600}
    )
    tokens = host.exchange_code(code="the-code", redirect_uri="https://app.example/cb")
    assert tokens.access_token == "at" and tokens.refresh_token == "rt" and tokens.expires_at is not None
    form = urllib.parse.parse_qs(app.seen[-1].get_data(as_text=True))
    assert form["grant_type"] == ["authorization_code"] and form["code"] == ["the-code"]
    assert form["client_secret"] == ["csecret-123"]
    assert host.refresh("rt").access_token == "at"
    assert urllib.parse.parse_qs(app.seen[-1].get_data(as_text=True))["refresh_token"] == ["rt"]
    app.json(
        "POST",
        "/organizations/oauth2/v2.0/token",
        {"error": "invalid_grant", "error_description": "AADSTS70000"},
        status=400,
    )
    with pytest.raises(HostAuthError) as info:
        host.refresh("old-refresh-token")
    assert "invalid_grant" in str(info.value)
    assert "old-refresh-token" not in str(info.value) and "csecret-123" not in str(info.value)


def test_register_webhook_rolls_back_on_failure(stub: tuple[Stub, LoopbackServer]) -> None:
    app, server = stub
    app.json(
        "GET",
        f"/fabrikam/MyProject/_apis/git/repositories/{REPO_ID}",
        http_example("repositories", "GET__git_repositories__repositoryId_.json"),
    )
    answers = iter([Response('{"id": "sub-1"}', content_type="application/json")])

    def subscribe(_r: Request) -> Response:
        return next(answers, None) or Response('{"message": "TF400813"}', status=403, content_type="application/json")

    app.routes[("POST", "/fabrikam/_apis/hooks/subscriptions")] = subscribe
    app.json("DELETE", "/fabrikam/_apis/hooks/subscriptions/sub-1", None, status=204)
    with pytest.raises(HostPermissionDenied):
        stub_host(server).register_webhook(REPO, "https://app.example/hooks/1", "hook-secret")
    assert [(r.method, r.path) for r in app.seen][-1] == ("DELETE", "/fabrikam/_apis/hooks/subscriptions/sub-1")
    subscribed = json.loads(app.seen[1].get_data())
    assert subscribed["publisherInputs"] == {"projectId": "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c", "repository": REPO_ID}
