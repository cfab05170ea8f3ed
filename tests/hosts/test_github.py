"""GitHub / GitHub Enterprise provider.

* Contract: every call against Prism serving GitHub's own description
  (``@octokit/openapi``, api.github.com and the newest GHES), no request violations,
  and the description's examples parsed into our dataclasses.
* Behaviour Prism cannot show (rate limits, paging stops, error wording): a werkzeug
  stub on 127.0.0.1.
* Webhooks: test_github_webhooks.py; GraphQL (its own contract, against GitHub's
  published GraphQL schema): test_github_graphql.py. The REST contract here runs with
  GraphQL turned off, so every listing is REST.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from connect_app.errors import HostAuthError, HostError, HostPermissionDenied, RateLimited
from connect_app.hosts.base import (
    AuthType,
    Credentials,
    GitHost,
    Permission,
    PullRequestState,
    RemoteRepository,
)
from connect_app.hosts.etags import MemoryEtagCache
from connect_app.hosts.github import GITHUB_ENTERPRISE_INFO, GitHubHost, missing_scopes
from tests.support.http_server import LoopbackServer
from tests.support.prism import PrismMock, ghes_versions, github_spec_path, request_violations

TOKEN = "ghp_TopSecretToken1234567890"
CREDS = Credentials(AuthType.PAT, token=TOKEN)
REPO = RemoteRepository(
    external_id="1296269",
    name="octocat/Hello-World",
    clone_url="https://github.com/octocat/Hello-World.git",
    web_url="https://github.com/octocat/Hello-World",
)
SPEC_PATHS = [
    "/user",
    "/user/repos",
    "/orgs/{org}/repos",
    "/repos/{owner}/{repo}",
    "/repos/{owner}/{repo}/branches",
    "/repos/{owner}/{repo}/pulls",
    "/repos/{owner}/{repo}/git/ref/{ref}",
    "/repos/{owner}/{repo}/commits/{ref}",
    "/repos/{owner}/{repo}/git/refs",
    "/repos/{owner}/{repo}/hooks",
    "/repos/{owner}/{repo}/hooks/{hook_id}",
]


def _strip_link_headers(doc: dict[str, Any]) -> None:
    """The examples' ``Link`` points at https://api.github.com/resource?page=2, another origin
    the client rightly refuses to follow; paging is tested against the stub below."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            headers = node.get("headers")
            if isinstance(headers, dict):
                headers.pop("Link", None)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc["paths"])


# --------------------------------------------------------------------------- Prism contract


@pytest.fixture(scope="module", params=["github", "github-enterprise"])
def github_mock(request: pytest.FixtureRequest) -> Iterator[tuple[str, PrismMock]]:
    spec = github_spec_path() if request.param == "github" else github_spec_path(ghes_versions()[-1])
    with PrismMock(spec, paths=SPEC_PATHS, transform=_strip_link_headers) as mock:
        yield request.param, mock


@pytest.fixture
def prism_host(github_mock: tuple[str, PrismMock]) -> Iterator[tuple[GitHubHost, PrismMock]]:
    kind, mock = github_mock
    if kind == "github":
        host = GitHubHost(CREDS, api_url=mock.base_url, allow_private=True, graphql=False)
    else:  # the admin types the server URL; the provider adds /api/v3
        host = GitHubHost.enterprise(mock.root_url, CREDS, allow_private=True, graphql=False)
        assert host.info is GITHUB_ENTERPRISE_INFO and host.api_url == mock.base_url
    yield host, mock
    host.close()


def _contract(mock: PrismMock, call: Callable[[], Any], *, requests_expected: int = 1) -> Any:
    with mock.recording() as rec:
        result = call()
    rec.assert_all_valid(min_requests=requests_expected)
    return result


@pytest.mark.slow
def test_provider_satisfies_the_protocol(prism_host: tuple[GitHubHost, PrismMock]) -> None:
    assert isinstance(prism_host[0], GitHost)


@pytest.mark.slow
def test_prism_flags_a_request_that_breaks_the_description(github_mock: tuple[str, PrismMock]) -> None:
    # the harness must be able to fail: a ref without its required sha
    _, mock = github_mock
    response = requests.post(mock.url("/repos/o/r/git/refs"), json={"ref": "refs/heads/x"}, timeout=10)
    assert request_violations(response)


@pytest.mark.slow
def test_validate_credentials(prism_host: tuple[GitHubHost, PrismMock]) -> None:
    host, mock = prism_host
    assert _contract(mock, host.validate_credentials) == "octocat"


@pytest.mark.slow
@pytest.mark.parametrize("namespace", [None, "acme"])
def test_list_repositories(prism_host: tuple[GitHubHost, PrismMock], namespace: str | None) -> None:
    host, mock = prism_host
    repos = _contract(mock, lambda: list(host.list_repositories(namespace=namespace)))
    assert repos == [
        RemoteRepository(
            external_id="1296269",
            name="octocat/Hello-World",
            clone_url="https://github.com/octocat/Hello-World.git",
            web_url="https://github.com/octocat/Hello-World",
            default_branch="master",
            namespace="octocat",
            private=False,
        )
    ]
    assert host.clone_url(repos[0]) == "https://github.com/octocat/Hello-World.git"


@pytest.mark.slow
def test_list_branches(prism_host: tuple[GitHubHost, PrismMock]) -> None:
    host, mock = prism_host
    [branch] = _contract(mock, lambda: list(host.list_branches(REPO)))
    assert (branch.name, branch.head_sha) == ("master", "c5b97d5ae6c19d5c5df71a34c7fbeeda2479ccbc")
    assert branch.url == "https://github.com/octocat/Hello-World/tree/master"


@pytest.mark.slow
def test_list_pull_requests(prism_host: tuple[GitHubHost, PrismMock]) -> None:
    host, mock = prism_host
    [pr] = _contract(mock, lambda: list(host.list_pull_requests(REPO)))
    assert pr.external_id == "1347" and pr.title == "Amazing new feature"
    assert pr.state is PullRequestState.MERGED  # the example has merged_at set
    assert (pr.source_branch, pr.target_branch, pr.author) == ("new-topic", "master", "octocat")
    assert pr.url == "https://github.com/octocat/Hello-World/pull/1347"
    assert pr.updated_at == datetime(2011, 1, 26, 19, 1, 12, tzinfo=UTC)


@pytest.mark.slow
def test_create_branch_resolves_the_ref_then_creates_it(prism_host: tuple[GitHubHost, PrismMock]) -> None:
    host, mock = prism_host
    with mock.recording() as rec:
        branch = host.create_branch(REPO, "feature/ABC-1-login", "main")
    rec.assert_all_valid(min_requests=2)
    assert [(e.method, urllib.parse.urlsplit(e.url).path.removeprefix(mock.base_path)) for e in rec.exchanges] == [
        ("GET", "/repos/octocat/Hello-World/git/ref/heads%2Fmain"),
        ("POST", "/repos/octocat/Hello-World/git/refs"),
    ]
    sent = json.loads(rec.exchanges[1].response.request.body)
    assert sent == {"ref": "refs/heads/feature/ABC-1-login", "sha": "aa218f56b14c9653891f9e74264a383fa43fefbd"}
    assert branch.name == "feature/ABC-1-login" and branch.head_sha == "aa218f56b14c9653891f9e74264a383fa43fefbd"


@pytest.mark.slow
def test_create_pull_request(prism_host: tuple[GitHubHost, PrismMock]) -> None:
    host, mock = prism_host
    pr = _contract(
        mock, lambda: host.create_pull_request(REPO, source="feature/ABC-1", target="main", title="ABC-1", body="x")
    )
    assert pr.external_id == "1347" and pr.url.endswith("/pull/1347")


@pytest.mark.slow
def test_repository_permission_uses_the_users_token(prism_host: tuple[GitHubHost, PrismMock]) -> None:
    host, mock = prism_host
    with mock.recording() as rec:
        permission = host.repository_permission(REPO, Credentials(AuthType.PAT, token="user-token-5678"))
    rec.assert_all_valid()
    assert permission is Permission.READ  # example: {admin: false, push: false, pull: true}
    assert rec.exchanges[0].response.request.headers["Authorization"] == "Bearer user-token-5678"


@pytest.mark.slow
def test_register_and_delete_webhook(prism_host: tuple[GitHubHost, PrismMock]) -> None:
    host, mock = prism_host
    with mock.recording() as rec:
        hook = host.register_webhook(REPO, "https://app.example/webhooks/7/abc", "s3cret-value")
        host.delete_webhook(REPO, hook.id)
    rec.assert_all_valid(min_requests=2)
    assert hook.id == "12345678"
    sent = json.loads(rec.exchanges[0].response.request.body)
    assert sent["events"] == ["push", "pull_request", "repository"]
    assert sent["config"] == {
        "url": "https://app.example/webhooks/7/abc",
        "content_type": "json",
        "secret": "s3cret-value",
        "insecure_ssl": "0",
    }
    assert rec.exchanges[1].method == "DELETE" and rec.exchanges[1].url.endswith("/hooks/12345678")


# --------------------------------------------------------------------------- stub host


class Stub:
    """A scripted GitHub on 127.0.0.1 (werkzeug): ``routes[(method, path)]`` answers."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Callable[[Request], Response]] = {}
        self.seen: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()
        self.server = LoopbackServer(self._app).start()

    def _app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.seen.append((request.method, request.full_path.rstrip("?"), time.time()))
        route = self.routes.get((request.method, request.path))
        response = route(request) if route else Response("{}", 404, content_type="application/json")
        return response(environ, start_response)

    def host(self, **kw: Any) -> GitHubHost:
        return GitHubHost(CREDS, api_url=self.server.url, allow_private=True, **kw)


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.server.stop()


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Callable[[Request], Response]:
    return lambda _request: Response(json.dumps(body), status, headers=headers, content_type="application/json")


def _pr(number: int, updated: str, **extra: Any) -> dict[str, Any]:
    return {
        "number": number,
        "title": f"ABC-{number}",
        "state": "open",
        "html_url": f"https://github.com/o/r/pull/{number}",
        "updated_at": updated,
        "head": {"ref": f"feature/ABC-{number}"},
        "base": {"ref": "main"},
        "user": {"login": "dev"},
        **extra,
    }


def test_rate_limit_403_far_away_raises_rate_limited_after_one_request(stub: Stub) -> None:
    reset = int(time.time()) + 3600
    stub.routes[("GET", "/user")] = _json(
        {"message": "API rate limit exceeded"},
        403,
        headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    host = stub.host()
    with pytest.raises(RateLimited) as caught:
        host.validate_credentials()
    assert caught.value.reset_at == datetime.fromtimestamp(reset, tz=UTC)
    budget = host.rate_budget()
    assert budget is not None and budget.remaining == 0
    with pytest.raises(RateLimited):  # the budget is known to be spent: nothing more is sent
        host.validate_credentials()
    assert len(stub.seen) == 1
    assert TOKEN not in str(caught.value)


@pytest.mark.slow
def test_rate_limit_403_waits_for_the_reset_then_retries_once(stub: Stub) -> None:
    reset = int(time.time()) + 2
    answers = iter(
        [
            _json(
                {"message": "API rate limit exceeded"},
                403,
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            ),
            _json(
                {"login": "octocat"},
                200,
                headers={
                    "x-ratelimit-limit": "5000",
                    "x-ratelimit-remaining": "4999",
                    "x-ratelimit-reset": str(reset + 3600),
                },
            ),
        ]
    )
    stub.routes[("GET", "/user")] = lambda request: next(answers)(request)
    host = stub.host(max_wait_seconds=10)
    assert host.validate_credentials() == "octocat"
    assert len(stub.seen) == 2 and stub.seen[1][2] >= reset  # nothing sent inside the window
    budget = host.rate_budget()
    assert budget is not None and (budget.limit, budget.remaining) == (5000, 4999)


def test_bad_token_is_an_actionable_auth_error_without_the_token(stub: Stub) -> None:
    stub.routes[("GET", "/user")] = _json({"message": f"Bad credentials {TOKEN}"}, 401)
    with pytest.raises(HostAuthError) as caught:
        stub.host().validate_credentials()
    text = str(caught.value) + caught.value.message + repr(caught.value.__cause__)
    assert TOKEN not in text
    assert "wrong, expired or revoked" in caught.value.message


@pytest.mark.parametrize(
    ("scopes", "missing"),
    [
        ("repo, read:user", []),
        ("public_repo, admin:repo_hook", ["repo"]),
        ("read:user", ["repo", "admin:repo_hook"]),
        ("", ["repo", "admin:repo_hook"]),
    ],
)
def test_classic_token_scopes(stub: Stub, scopes: str, missing: list[str]) -> None:
    assert [scope for scope, _why in missing_scopes(scopes)] == missing
    stub.routes[("GET", "/user")] = _json({"login": "octocat"}, headers={"X-OAuth-Scopes": scopes})
    if not missing:
        assert stub.host().validate_credentials() == "octocat"
        return
    with pytest.raises(HostPermissionDenied) as caught:
        stub.host().validate_credentials()
    assert all(scope in caught.value.message for scope in missing)


def test_fine_grained_tokens_have_no_scope_header_and_pass(stub: Stub) -> None:
    stub.routes[("GET", "/user")] = _json({"login": "octocat"})
    assert stub.host().validate_credentials() == "octocat"


def test_pull_requests_follow_link_pages_and_stop_at_updated_since(stub: Stub) -> None:
    base = stub.server.url
    stub.routes[("GET", "/repos/o/r/pulls")] = lambda request: Response(
        json.dumps(
            [_pr(3, "2024-05-03T00:00:00Z"), _pr(2, "2024-05-02T00:00:00Z")]
            if request.args.get("page") is None
            else [_pr(1, "2024-04-01T00:00:00Z", state="closed", merged_at=None), _pr(0, "2024-03-01T00:00:00Z")]
        ),
        headers={"Link": f'<{base}/repos/o/r/pulls?page=2>; rel="next"'} if request.args.get("page") is None else {},
        content_type="application/json",
    )
    repo = RemoteRepository("1", "o/r", "https://github.com/o/r.git")
    prs = list(stub.host().list_pull_requests(repo, updated_since=datetime(2024, 3, 15, tzinfo=UTC)))
    assert [(p.external_id, p.state) for p in prs] == [
        ("3", PullRequestState.OPEN),
        ("2", PullRequestState.OPEN),
        ("1", PullRequestState.DECLINED),
    ]
    assert [path for _m, path, _t in stub.seen] == [
        "/repos/o/r/pulls?state=all&sort=updated&direction=desc&per_page=50",  # a poll: see github_graphql
        "/repos/o/r/pulls?page=2",
    ]
    # an older pull request already on page one: page two is never asked for
    stub.seen.clear()
    newer = list(stub.host().list_pull_requests(repo, updated_since=datetime(2024, 5, 2, 12, tzinfo=UTC)))
    assert [p.external_id for p in newer] == ["3"] and len(stub.seen) == 1


def test_existing_branch_is_a_clear_branch_exists_error(stub: Stub) -> None:
    stub.routes[("POST", "/repos/o/r/git/refs")] = _json(
        {"message": "Reference already exists", "documentation_url": "https://docs.github.com/rest"}, 422
    )
    repo = RemoteRepository("1", "o/r", "https://github.com/o/r.git")
    with pytest.raises(HostError) as caught:
        stub.host().create_branch(repo, "feature/ABC-1", "a" * 40)  # a sha needs no lookup
    assert caught.value.code == "branch_exists" and "feature/ABC-1" in caught.value.message


def test_permission_is_none_when_the_user_cannot_see_the_repository(stub: Stub) -> None:
    repo = RemoteRepository("1", "o/r", "https://github.com/o/r.git")
    assert stub.host().repository_permission(repo, Credentials(AuthType.PAT, token="user-tok")) is Permission.NONE
    stub.routes[("GET", "/repos/o/r")] = _json({"permissions": {"admin": False, "maintain": True, "pull": True}})
    assert stub.host().repository_permission(repo, Credentials(AuthType.PAT, token="user-tok")) is Permission.WRITE


def test_git_auth_and_oauth_urls() -> None:
    host = GitHubHost.enterprise(
        "https://ghe.example.com", CREDS, oauth_client_id="Iv1.abc", oauth_client_secret="client-secret"
    )
    assert host.api_url == "https://ghe.example.com/api/v3"
    assert host.graphql_url == "https://ghe.example.com/api/graphql"
    auth = host.git_auth()
    assert (auth.username, auth.password) == ("x-access-token", TOKEN) and TOKEN not in repr(auth)
    url = urllib.parse.urlsplit(host.authorize_url(state="st-1", redirect_uri="https://app.example/cb"))
    query = dict(urllib.parse.parse_qsl(url.query))
    assert (url.netloc, url.path) == ("ghe.example.com", "/login/oauth/authorize")
    assert query["state"] == "st-1" and query["client_id"] == "Iv1.abc" and "repo" in query["scope"].split()
    assert GitHubHost(CREDS).graphql_url == "https://api.github.com/graphql"


def test_oauth_code_exchange_and_refresh(stub: Stub) -> None:
    answers = [
        {"access_token": "gho_new", "refresh_token": "ghr_new", "expires_in": 28800, "token_type": "bearer"},
        {"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."},
    ]
    stub.routes[("POST", "/login/oauth/access_token")] = lambda request: _json(answers.pop(0))(request)
    host = GitHubHost(
        CREDS,
        api_url=stub.server.url,
        web_url=stub.server.url,
        allow_private=True,
        oauth_client_id="cid",
        oauth_client_secret="csecret",
    )
    tokens = host.exchange_code(code="abc", redirect_uri="https://app.example/cb")
    assert (tokens.access_token, tokens.refresh_token) == ("gho_new", "ghr_new") and tokens.expires_at is not None
    with pytest.raises(HostAuthError, match="incorrect or expired"):
        host.refresh("ghr_old")


def test_unchanged_pages_are_revalidated_with_etags(stub: Stub) -> None:
    def branches(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"', "x-ratelimit-remaining": "4999"})
        body = json.dumps([{"name": "main", "commit": {"sha": "a" * 40}}])
        headers = {"ETag": '"v1"', "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999"}
        return Response(body, headers=headers, content_type="application/json")

    stub.routes[("GET", "/repos/o/r/branches")] = branches
    host = stub.host(etag_cache=MemoryEtagCache())
    repo = RemoteRepository("1", "o/r", "https://github.com/o/r.git", web_url="https://github.com/o/r")
    first = list(host.list_branches(repo))
    assert list(host.list_branches(repo)) == first and first[0].head_sha == "a" * 40
    assert len(stub.seen) == 2
    budget = host.rate_budget()
    assert budget is not None and budget.remaining == 4999  # the 304 cost nothing
