"""GitHub GraphQL (``connect_app/hosts/github_graphql.py``) and when ``GitHubHost`` uses it.

Contract. GitHub's OpenAPI description has no GraphQL, so:

* every query the module sends (``QUERIES``, and every POST the fake below receives) is
  validated with ``graphql-core`` against GitHub's published schema
  (``@octokit/graphql-schema``'s ``schema.graphql``, a pinned npm devDependency), and
  ``QUERIES`` once more with that package's own ``validate()`` (graphql-js, its JSON schema);
* the fake answers by *executing* the query against that same schema over its own
  records, so every response has exactly the shape the query asks for, with the schema's
  non-null fields, enums and interfaces enforced (a record that breaks the schema is an
  execution error, which the tests assert never happens);
* the point cost it reports is GitHub's documented formula, checked on GitHub's own
  worked example.

REST answers in the same fake carry GitHub's example pull request item from
``@octokit/openapi`` (with our numbers, titles and times), so the REST/GraphQL parity and
byte counts compare realistic payloads.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute_sync,
    parse,
    validate,
    value_from_ast_untyped,
)
from werkzeug.wrappers import Request, Response

from connect_app.hosts.base import AuthType, Credentials, PullRequestState, RateBudget, RemoteRepository
from connect_app.hosts.etags import MAX_CACHED_BODY, MemoryEtagCache
from connect_app.hosts.github import GitHubHost
from connect_app.hosts.github_graphql import PULL_REQUESTS_QUERY, QUERIES
from connect_app.hosts.ratelimit import MemoryBudgetStore
from tests.support.http_server import LoopbackServer
from tests.support.prism import ENSURE_NODE_DEPS, NODE_MODULES, OCTOKIT_GENERATED, REPO_ROOT

SCHEMA_SDL = NODE_MODULES / "@octokit" / "graphql-schema" / "schema.graphql"
TOKEN = "ghp_GraphQLSecretToken123456"
CREDS = Credentials(AuthType.PAT, token=TOKEN)
REPO = RemoteRepository("1", "octo/widgets", "https://github.com/octo/widgets.git")
T0 = datetime(2024, 1, 1, tzinfo=UTC)

# --------------------------------------------------------------------------- schema and cost


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    if not SCHEMA_SDL.is_file():  # a node_modules older than package-lock.json: npm ci
        subprocess.run(["sh", str(ENSURE_NODE_DEPS)], cwd=REPO_ROOT, capture_output=True, check=False)
    if not SCHEMA_SDL.is_file():
        pytest.fail(f"{SCHEMA_SDL} is missing: run `make node-deps`")
    # GitHub's published SDL defines two EnterpriseOwnerInfo fields twice and breaks the
    # interface-deprecation rule in a few types; neither touches what a query may ask for,
    # so skip the SDL/schema self-checks (as GitHub's own tooling evidently does).
    return build_schema(SCHEMA_SDL.read_text(), assume_valid_sdl=True, assume_valid=True)


def documented_cost(document: DocumentNode, variables: dict[str, Any]) -> int:
    """GitHub's "Calculating a rate limit score": every connection (a field with ``first`` or
    ``last``) needs one request per parent node; the sum / 100, rounded, at least 1."""
    total = 0

    def walk(selection_set: SelectionSetNode | None, parents: int) -> None:
        nonlocal total
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, InlineFragmentNode):
                walk(selection.selection_set, parents)
            elif isinstance(selection, FieldNode):
                size = next(
                    (
                        int(value_from_ast_untyped(arg.value, variables))
                        for arg in selection.arguments or ()
                        if arg.name.value in ("first", "last")
                    ),
                    None,
                )
                if size is not None:
                    total += parents
                walk(selection.selection_set, parents * size if size is not None else parents)

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            walk(definition.selection_set, 1)
    return max(1, int(total / 100 + 0.5))


# GitHub's worked example (docs: "Rate limits and query limits for the GraphQL API"):
# 1 + 100 + 5,000 = 5,101 requests -> a score of 51.
GITHUB_COST_EXAMPLE = """
query {
  viewer {
    login
    repositories(first: 100) {
      edges { node { id
        issues(first: 50) {
          edges { node { id
            labels(first: 60) { edges { node { id name } } }
          } }
        }
      } }
    }
  }
}
"""


def test_cost_formula_matches_githubs_worked_example(schema: GraphQLSchema) -> None:
    document = parse(GITHUB_COST_EXAMPLE)
    assert validate(schema, document) == []
    assert documented_cost(document, {}) == 51


def test_every_query_we_send_is_valid_against_githubs_schema(schema: GraphQLSchema) -> None:
    for query in QUERIES:
        assert validate(schema, parse(query)) == [], query
    # one page of 100 pull requests with no nested connection: 1 point
    assert documented_cost(parse(PULL_REQUESTS_QUERY), {"first": 100}) == 1


WRONG_QUERIES = (
    PULL_REQUESTS_QUERY.replace("headRefName", "headBranch"),
    PULL_REQUESTS_QUERY.replace("UPDATED_AT", "LAST_UPDATED"),
)


def test_the_validator_rejects_what_github_would(schema: GraphQLSchema) -> None:
    for query in WRONG_QUERIES:
        assert validate(schema, parse(query)), query


# @octokit/graphql-schema's own validate(): graphql-js over the package's introspection JSON
_OCTOKIT_VALIDATE = """
import { validate } from "@octokit/graphql-schema";
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const found = JSON.parse(input).map((query) => validate(query).map((error) => error.message));
  process.stdout.write(JSON.stringify(found));
});
"""


def test_octokits_own_validator_agrees(schema: GraphQLSchema) -> None:
    queries = [*QUERIES, *WRONG_QUERIES]
    result = subprocess.run(
        ["node", "--input-type=module", "-e", _OCTOKIT_VALIDATE],
        input=json.dumps(queries),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(result.stdout)
    assert found[: len(QUERIES)] == [[] for _ in QUERIES]
    assert all(found[len(QUERIES) :])


# --------------------------------------------------------------------------- the fake GitHub


@dataclass
class Record:
    number: int
    title: str
    body: str
    state: str  # OPEN CLOSED MERGED
    created: datetime
    updated: datetime
    head: str
    author: str | None  # None: a deleted account


def records(n: int) -> list[Record]:
    out = []
    for i in range(1, n + 1):
        state = "MERGED" if i % 3 == 0 else "CLOSED" if i % 5 == 0 else "OPEN"
        created = T0 + timedelta(hours=i)
        updated = created + timedelta(minutes=(i * 7919) % 100_003)  # distinct, not in number order
        author = None if i == 7 else f"dev{i % 4}"
        body = "" if i % 4 == 0 else f"Fixes ABC-{i}"
        out.append(Record(i, f"ABC-{i} change", body, state, created, updated, f"feature/ABC-{i}", author))
    return out


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class GraphQLCall:
    query: str
    variables: dict[str, Any]
    errors: list[str]  # validation against GitHub's schema
    cost: int = 0


@dataclass
class FakeGitHub:
    """GitHub on 127.0.0.1: REST ``/repos/{o}/{r}/pulls`` and GraphQL over the same records."""

    schema: GraphQLSchema
    rest_item: dict[str, Any]
    url: str
    repos: dict[str, list[Record]] = field(default_factory=dict)
    graphql_calls: list[GraphQLCall] = field(default_factory=list)
    rest_calls: list[tuple[str, int]] = field(default_factory=list)  # (full path, status)
    execution_errors: list[str] = field(default_factory=list)
    bytes_sent: dict[str, int] = field(default_factory=lambda: {"rest": 0, "graphql": 0})
    graphql_remaining: int = 5000
    graphql_rate_headers: bool = True
    core_remaining: int = 5000
    graphql_fault: Callable[[int], Response | None] | None = None
    reset: int = field(default_factory=lambda: int(time.time()) + 3600)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def host(self, **kw: Any) -> GitHubHost:
        return GitHubHost(CREDS, api_url=self.url, allow_private=True, **kw)

    def app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            if request.method == "POST" and request.path in ("/graphql", "/api/graphql"):
                response = self._graphql(request)
            elif request.method == "GET" and request.path.removeprefix("/api/v3").endswith("/pulls"):
                response = self._rest_pulls(request)
            else:
                response = Response("{}", 404, content_type="application/json")
        return response(environ, start_response)

    # --- REST

    def _rest(self, record: Record, repo: str) -> dict[str, Any]:
        item = copy.deepcopy(self.rest_item)
        closed = _iso(record.updated) if record.state != "OPEN" else None
        item.update(
            number=record.number,
            title=record.title,
            body=record.body or None,  # REST: null, GraphQL: ""
            state="open" if record.state == "OPEN" else "closed",
            closed_at=closed,
            merged_at=closed if record.state == "MERGED" else None,
            html_url=f"https://github.com/{repo}/pull/{record.number}",
            created_at=_iso(record.created),
            updated_at=_iso(record.updated),
        )
        item["head"]["ref"], item["base"]["ref"] = record.head, "main"
        item["user"]["login"] = record.author or "ghost"
        return item

    def _rest_pulls(self, request: Request) -> Response:
        path = request.path.removeprefix("/api/v3")
        repo = path.removeprefix("/repos/").removesuffix("/pulls")
        if "page" not in request.args:  # the first page: what GitHubHost asks for
            assert (request.args.get("state"), request.args.get("sort"), request.args.get("direction")) == (
                "all",
                "updated",
                "desc",
            )
        page, per_page = int(request.args.get("page", 1)), int(request.args.get("per_page", 100))
        ordered = sorted(self.repos.get(repo, []), key=lambda r: r.updated, reverse=True)
        chunk = ordered[(page - 1) * per_page : page * per_page]
        body = _compact([self._rest(r, repo) for r in chunk])
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        headers = {"ETag": etag, "x-ratelimit-limit": "5000", "x-ratelimit-reset": str(self.reset)}
        headers["x-ratelimit-resource"] = "core"
        if request.headers.get("If-None-Match") == etag:
            self.rest_calls.append((request.full_path, 304))
            return Response(status=304, headers={**headers, "x-ratelimit-remaining": str(self.core_remaining)})
        self.core_remaining -= 1
        headers["x-ratelimit-remaining"] = str(self.core_remaining)
        if page * per_page < len(ordered):
            headers["Link"] = f'<{self.url}{request.path}?per_page={per_page}&page={page + 1}>; rel="next"'
        self.rest_calls.append((request.full_path, 200))
        self.bytes_sent["rest"] += len(body)
        return Response(body, headers=headers, content_type="application/json")

    # --- GraphQL

    def _connection(self, repo: str, args: dict[str, Any]) -> dict[str, Any]:
        first = args.get("first")
        assert isinstance(first, int) and 1 <= first <= 100, "GitHub requires first/last between 1 and 100"
        order = args.get("orderBy") or {}
        key = "created" if order.get("field") == "CREATED_AT" else "updated"
        ordered = sorted(self.repos[repo], key=lambda r: getattr(r, key), reverse=order.get("direction") == "DESC")
        start = int(base64.b64decode(args["after"]).decode().split(":")[1]) if args.get("after") else 0
        chunk = ordered[start : start + first]
        end = start + len(chunk)
        return {
            "pageInfo": {
                "hasNextPage": end < len(ordered),
                "endCursor": base64.b64encode(f"cursor:{end}".encode()).decode() if chunk else None,
            },
            "nodes": [self.node(r, repo) for r in chunk],
        }

    @staticmethod
    def node(record: Record, repo: str) -> dict[str, Any]:
        return {
            "number": record.number,
            "title": record.title,
            "body": record.body,
            "url": f"https://github.com/{repo}/pull/{record.number}",
            "state": record.state,
            "createdAt": _iso(record.created),
            "updatedAt": _iso(record.updated),
            "headRefName": record.head,
            "baseRefName": "main",
            "author": None if record.author is None else {"__typename": "User", "login": record.author},
        }

    def execute(self, query: str, variables: dict[str, Any], cost: int) -> dict[str, Any]:
        """Run ``query`` against GitHub's schema over the records: the response follows both."""
        not_found: list[str] = []

        def repository(_info: Any, owner: str, name: str, **_: Any) -> dict[str, Any] | None:
            full = f"{owner}/{name}"
            if full not in self.repos:
                not_found.append(full)
                return None
            return {"pullRequests": lambda _i, **args: self._connection(full, args)}

        self.graphql_remaining -= cost
        root = {
            "rateLimit": {
                "cost": cost,
                "limit": 5000,
                "remaining": self.graphql_remaining,
                "used": 5000 - self.graphql_remaining,
                "resetAt": _iso(datetime.fromtimestamp(self.reset, UTC)),
                "nodeCount": 100,
            },
            "repository": repository,
        }
        result = execute_sync(self.schema, parse(query), root_value=root, variable_values=variables)
        self.execution_errors.extend(e.message for e in result.errors or [])
        answer: dict[str, Any] = {"data": result.data}
        if not_found:
            message = "Could not resolve to a Repository with the name '{}'."
            answer["errors"] = [
                {"type": "NOT_FOUND", "path": ["repository"], "message": message.format(n)} for n in not_found
            ]
        return answer

    def _graphql(self, request: Request) -> Response:
        payload = json.loads(request.get_data())
        query, variables = payload["query"], payload.get("variables") or {}
        document = parse(query)
        call = GraphQLCall(query, variables, [e.message for e in validate(self.schema, document)])
        self.graphql_calls.append(call)
        fault = self.graphql_fault(len(self.graphql_calls) - 1) if self.graphql_fault else None
        if fault is not None:
            return fault
        if call.errors:  # what GitHub answers to a query its schema rejects
            errors = [{"message": m, "extensions": {"code": "undefinedField"}} for m in call.errors]
            return Response(_compact({"errors": errors}), content_type="application/json")
        call.cost = documented_cost(document, variables)
        body = _compact(self.execute(query, variables, call.cost))
        headers = {}
        if self.graphql_rate_headers:
            headers = {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": str(self.graphql_remaining),
                "x-ratelimit-reset": str(self.reset),
                "x-ratelimit-resource": "graphql",
            }
        self.bytes_sent["graphql"] += len(body)
        return Response(body, headers=headers, content_type="application/json")


@pytest.fixture(scope="module")
def rest_item() -> dict[str, Any]:
    """GitHub's own example list item for ``GET /repos/{owner}/{repo}/pulls``."""
    doc = json.loads((OCTOKIT_GENERATED / "api.github.com.json").read_text())
    item: dict[str, Any] = doc["components"]["examples"]["pull-request-simple-items"]["value"][0]
    return item


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[LoopbackServer, list[FakeGitHub]]]:
    """One server for the module (stopping one takes ~0.5 s); it serves the current test's fake."""
    current: list[FakeGitHub] = []
    server = LoopbackServer(lambda environ, start_response: current[-1].app(environ, start_response)).start()
    yield server, current
    server.stop()


@pytest.fixture
def fake(
    schema: GraphQLSchema, rest_item: dict[str, Any], loopback: tuple[LoopbackServer, list[FakeGitHub]]
) -> Iterator[FakeGitHub]:
    server, current = loopback
    github = FakeGitHub(schema, rest_item, server.url, repos={REPO.name: records(250)})
    current.append(github)
    yield github
    current.remove(github)
    # whatever a test did: every query sent was valid, every response followed the schema
    assert all(call.errors == [] for call in github.graphql_calls), [c.errors for c in github.graphql_calls]
    assert github.execution_errors == []


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_compact(body), status, headers=headers, content_type="application/json")


# --------------------------------------------------------------------------- the harness can fail


def test_a_response_that_breaks_the_schema_is_caught(fake: FakeGitHub) -> None:
    newest = max(fake.repos[REPO.name], key=lambda r: r.updated)
    newest.title = None  # type: ignore[assignment]  # PullRequest.title is String!
    fake.execute(PULL_REQUESTS_QUERY, {"owner": "octo", "name": "widgets", "first": 100}, 1)
    assert any("PullRequest.title" in e for e in fake.execution_errors)
    fake.execution_errors.clear()


# --------------------------------------------------------------------------- choosing GraphQL or REST


def test_a_full_listing_goes_over_graphql_and_equals_the_rest_listing(fake: FakeGitHub) -> None:
    host = fake.host()
    over_graphql = list(host.list_pull_requests(REPO))
    assert (len(fake.graphql_calls), len(fake.rest_calls)) == (3, 0)  # 250 pull requests: 3 pages of 100
    assert [c.cost for c in fake.graphql_calls] == [1, 1, 1] and host.graphql_api.points_spent == 3
    assert all(c.query == PULL_REQUESTS_QUERY for c in fake.graphql_calls)  # names travel as variables

    over_rest = list(fake.host(graphql=False).list_pull_requests(REPO))
    assert len(fake.rest_calls) == 3 and len(fake.graphql_calls) == 3
    assert over_graphql == over_rest and len(over_rest) == 250  # the same dataclasses, field for field
    states = {pr.state for pr in over_rest}
    assert states == {PullRequestState.OPEN, PullRequestState.MERGED, PullRequestState.DECLINED}
    assert next(pr for pr in over_graphql if pr.external_id == "7").author == "ghost"
    # the same pages, a small fraction of the bytes (REST items embed both repositories)
    assert fake.bytes_sent["graphql"] * 20 < fake.bytes_sent["rest"]


def test_the_graphql_budget_is_recorded_apart_from_core(fake: FakeGitHub) -> None:
    store = MemoryBudgetStore()
    host = fake.host(budget_store=store)
    list(host.list_pull_requests(REPO))
    budget = host.graphql_api.budget()
    assert budget is not None and (budget.limit, budget.remaining) == (5000, 4997)
    assert budget.reset_at == datetime.fromtimestamp(fake.reset, UTC)
    assert host.rate_budget() is None  # core: nothing spent, nothing known
    # another worker with the same credential and store sees it
    other = fake.host(budget_store=store)
    seen = other.graphql_api.budget()
    assert seen is not None and seen.remaining == 4997


def test_the_budget_comes_from_the_body_when_no_headers_say_it(fake: FakeGitHub) -> None:
    fake.graphql_rate_headers = False  # e.g. a GHES with rate limiting off still answers rateLimit
    host = fake.host()
    list(host.list_pull_requests(REPO))
    budget = host.graphql_api.budget()
    assert budget is not None and budget.remaining == 4997


def test_an_incremental_poll_stays_on_rest_where_an_unchanged_page_is_free(fake: FakeGitHub) -> None:
    host = fake.host(etag_cache=MemoryEtagCache())
    since = max(r.updated for r in fake.repos[REPO.name]) - timedelta(days=3)
    first = list(host.list_pull_requests(REPO, updated_since=since))
    again = list(host.list_pull_requests(REPO, updated_since=since))
    assert first == again and first and all(pr.updated_at >= since for pr in first)
    assert fake.graphql_calls == []
    assert [status for _path, status in fake.rest_calls] == [200, 304]
    assert all("per_page=50" in path for path, _status in fake.rest_calls)
    core = host.rate_budget()
    assert core is not None and core.remaining == 4999  # the 304 cost nothing; GraphQL would have cost a point


def test_a_rest_page_of_100_is_too_big_to_revalidate(fake: FakeGitHub) -> None:
    # why polls ask REST for 50: GitHub's example item, 100 of them, passes the ETag cache's cap
    item = len(_compact(fake.rest_item))
    assert 100 * item > MAX_CACHED_BODY > 50 * item


def test_a_spent_graphql_budget_sends_nothing_to_graphql(fake: FakeGitHub) -> None:
    host = fake.host()
    host._http.record_resource_budget("graphql", RateBudget(5000, 0, datetime.fromtimestamp(fake.reset, UTC)))
    assert len(list(host.list_pull_requests(REPO))) == 250
    assert fake.graphql_calls == [] and len(fake.rest_calls) == 3


def test_graphql_can_be_turned_off(fake: FakeGitHub) -> None:
    host = fake.host(graphql=False)
    assert host.graphql_api.disabled_reason and len(list(host.list_pull_requests(REPO))) == 250
    assert fake.graphql_calls == []


def test_github_enterprise_posts_to_api_graphql(fake: FakeGitHub) -> None:
    host = GitHubHost.enterprise(fake.url, CREDS, allow_private=True)
    assert host.graphql_url == f"{fake.url}/api/graphql"
    over_graphql = list(host.list_pull_requests(REPO))
    assert len(fake.graphql_calls) == 3 and fake.rest_calls == []
    over_rest = GitHubHost.enterprise(fake.url, CREDS, allow_private=True, graphql=False).list_pull_requests(REPO)
    assert over_graphql == list(over_rest)


# --------------------------------------------------------------------------- falling back to REST

RATE_LIMITED = {
    "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}],
}
FORBIDDEN = {
    "data": {"repository": None},
    "errors": [
        {"type": "FORBIDDEN", "path": ["repository"], "message": "Resource not accessible by personal access token"}
    ],
}
OLD_SCHEMA = {
    "errors": [
        {
            "path": ["query PullRequests", "repository", "pullRequests", "nodes", "headRefName"],
            "extensions": {"code": "undefinedField", "typeName": "PullRequest", "fieldName": "headRefName"},
            "message": "Field 'headRefName' doesn't exist on type 'PullRequest'",
        }
    ]
}


def _limited(fake: FakeGitHub) -> Response:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-limit": "5000", "x-ratelimit-reset": str(fake.reset)}
    return _json(RATE_LIMITED, headers={**headers, "x-ratelimit-resource": "graphql"})


@pytest.mark.parametrize(
    ("answer", "permanent"),
    [
        pytest.param(lambda f: _json({"message": "Not Found"}, 404), True, id="no-graphql-endpoint"),
        pytest.param(lambda f: _json({"message": "Bad credentials"}, 401), True, id="401"),
        pytest.param(lambda f: _json(FORBIDDEN), True, id="fine-grained-token-forbidden"),
        pytest.param(lambda f: _json(OLD_SCHEMA), True, id="older-ghes-schema"),
        pytest.param(lambda f: _json({"message": "Server Error"}, 502), False, id="502"),
        pytest.param(_limited, False, id="rate-limited"),
        pytest.param(lambda f: Response("<html>proxy</html>", 200, content_type="text/html"), False, id="not-json"),
    ],
)
def test_graphql_failures_fall_back_to_rest(
    fake: FakeGitHub, answer: Callable[[FakeGitHub], Response], permanent: bool
) -> None:
    fake.repos[REPO.name] = records(150)  # two pages either way
    expected = list(fake.host(graphql=False).list_pull_requests(REPO))
    fake.rest_calls.clear()
    fake.graphql_fault = lambda _index: answer(fake)
    host = fake.host(max_wait_seconds=0)
    assert list(host.list_pull_requests(REPO)) == expected
    assert len(fake.graphql_calls) == 1 and len(fake.rest_calls) == 2
    assert (host.graphql_api.disabled_reason is not None) is permanent
    assert TOKEN not in (host.graphql_api.disabled_reason or "")
    fake.graphql_fault = None
    list(host.list_pull_requests(REPO))
    limited = answer is _limited  # GraphQL's budget is known to be spent until its reset
    assert len(fake.graphql_calls) - 1 == (0 if permanent or limited else 2)


def test_a_failure_after_some_pages_continues_over_rest_without_duplicates(fake: FakeGitHub) -> None:
    fake.repos[REPO.name] = records(150)
    expected = list(fake.host(graphql=False).list_pull_requests(REPO))
    fake.rest_calls.clear()
    fake.graphql_fault = lambda index: _json({"message": "Server Error"}, 502) if index == 1 else None
    # GraphQL's first page, then REST's pages less what was already listed: each once, same order
    assert list(fake.host().list_pull_requests(REPO)) == expected
    assert len(fake.graphql_calls) == 2 and len(fake.rest_calls) == 2


def test_an_unknown_repository_falls_back_to_rests_own_answer(fake: FakeGitHub) -> None:
    missing = RemoteRepository("9", "octo/nope", "https://github.com/octo/nope.git")
    host = fake.host()
    assert list(host.list_pull_requests(missing)) == []  # the fake's REST lists nothing for it
    assert len(fake.graphql_calls) == 1 and host.graphql_api.disabled_reason is None
