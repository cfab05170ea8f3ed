"""GitHub's GraphQL API (``POST /graphql``; GHES: ``<server>/api/graphql``) where it is cheaper than REST.

Decision (issue 3: "REST v3; GraphQL where it saves requests"), for the fields the index
keeps (number, title, body, state with merged-vs-declined, head/base branch, author, url,
created/updated time):

* **Pull request listing.** REST ``GET /repos/{o}/{r}/pulls?state=all&sort=updated&direction=desc``
  already carries ``merged_at`` in each list item, so REST needs no per-PR call to tell
  MERGED from DECLINED. Both APIs page 100 at a time, and
  ``repository.pullRequests(first: 100, orderBy: {field: UPDATED_AT, direction: DESC})``
  with no nested connection costs 1 point (GitHub's formula: the connections' requests
  / 100, rounded, at least 1). Per repository:

  ==========================  ===============================  ===============================
  listing                     REST (``core``, 5,000 req/h)     GraphQL (``graphql``, 5,000 pt/h)
  ==========================  ===============================  ===============================
  all N pull requests         ceil(N/100) requests             ceil(N/100) requests = points
  e.g. N = 2,500              25 requests, ~53 MB              25 requests, 25 points, ~0.7 MB
  poll, nothing changed       1 request answered 304: **0**    1 request, 1 point
  poll, k changed             ceil(k/50) requests              ceil(k/100) points
  ==========================  ===============================  ===============================

  GitHub's own example REST item is ~21 KB (it embeds the head and base repositories);
  GraphQL returns ~0.3 KB for our fields. A REST page of 100 (~2.1 MB) is thus above the
  ETag cache's 2 MB cap and never revalidated; REST polls ask for pages of 50, which are.

  So GraphQL saves **no requests** for our fields. It wins the full listing (the initial
  backfill: same count, but from GitHub's separate ``graphql`` budget, which leaves
  ``core`` for what only REST can do, and ~75x fewer bytes) and loses polls of quiet
  repositories, where REST's conditional request is free (1,000 repositories polled every
  15 minutes: 4,000 points an hour over GraphQL, ~0 over REST). Hence
  :meth:`GitHubGraphQL.preferred`: GraphQL when ``updated_since`` is None, REST otherwise.
  (Switching polls to GraphQL when ``core`` is spent would help, but the shared client
  records ``core`` on the credential-wide key that also blocks every other resource.)
* **Branches.** REST ``/branches`` returns each branch's head sha in the list item (one
  request per 100 branches, like ``refs(first: 100)``), and it revalidates. No saving:
  branches stay on REST.

Fallback to REST, for the call at hand and, when the cause is not transient, for the rest
of this host object's life: the endpoint answers 404 (GHES without GraphQL), 401/403
(e.g. fine-grained token or SAML restrictions), a query the server's schema rejects
(older GHES), ``FORBIDDEN``/``INSUFFICIENT_SCOPES`` errors. Transient: rate limited,
unavailable, ``NOT_FOUND`` (REST then says it in its own words), errors without a type
(GitHub's query timeouts). A failure after some pages continues over REST and skips the
pull requests already yielded.

Rate budget: the ``rateLimit { cost limit remaining resetAt }`` in every query is recorded
in the shared budget store under the ``graphql`` resource of this credential (next to
``core``), and every POST reserves from that bucket (``rate_resource="graphql"``).

Queries use variables only (no user text inside query strings) and are listed in
:data:`QUERIES`; the tests validate each against GitHub's published schema
(``@octokit/graphql-schema``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from connect_app.errors import HostAuthError, HostError, HostPermissionDenied, HostUnavailable, RateLimited
from connect_app.hosts.base import PullRequest, PullRequestState, RateBudget
from connect_app.hosts.http import HostHttpClient

log = logging.getLogger(__name__)

GRAPHQL_RESOURCE = "graphql"
PAGE_SIZE = 100
# GitHub's REST API shows a deleted account as "ghost"; GraphQL gives a null author.
GHOST_LOGIN = "ghost"

PULL_REQUESTS_QUERY = """
query PullRequests($owner: String!, $name: String!, $first: Int!, $after: String) {
  rateLimit { cost limit remaining resetAt }
  repository(owner: $owner, name: $name) {
    pullRequests(first: $first, after: $after, orderBy: {field: UPDATED_AT, direction: DESC}) {
      pageInfo { hasNextPage endCursor }
      nodes {
        number title body url state createdAt updatedAt headRefName baseRefName
        author { login }
      }
    }
  }
}
"""
QUERIES = (PULL_REQUESTS_QUERY,)  # every query this module sends

_PERMANENT_TYPES = frozenset({"FORBIDDEN", "INSUFFICIENT_SCOPES"})
_STATES = {"MERGED": PullRequestState.MERGED, "CLOSED": PullRequestState.DECLINED}


class GraphQLFailed(HostError):
    """GraphQL could not answer; ``permanent`` when retrying GraphQL on this host is pointless."""

    code = "graphql_failed"

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class GitHubHttpClient(HostHttpClient):
    """The shared client, plus the budget of one GitHub rate-limit resource.

    GraphQL reports its budget in the response body, where the shared client does not
    look. The key scheme is the one ``HostHttpClient.request`` uses for ``rate_resource``;
    this reads the base class's ``_budget_key``/``_budgets``/``_clock`` until ``http.py``
    offers per-resource budget access itself.
    """

    def _resource_key(self, resource: str | None) -> str:
        return self._budget_key if resource in (None, "core") else f"{self._budget_key}:{resource}"

    def resource_budget(self, resource: str | None = None) -> RateBudget | None:
        return self._budgets.get(self._resource_key(resource), now=self._clock())

    def record_resource_budget(self, resource: str, budget: RateBudget) -> None:
        self._budgets.record(self._resource_key(resource), budget, now=self._clock())


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def to_pull_request_node(node: Mapping[str, Any]) -> PullRequest:
    """A ``PullRequest`` node of :data:`PULL_REQUESTS_QUERY`; the same result as REST's item."""
    author = node.get("author")
    created = _time(node.get("createdAt"))
    return PullRequest(
        external_id=str(node["number"]),
        title=str(node.get("title") or ""),
        state=_STATES.get(str(node.get("state")), PullRequestState.OPEN),
        source_branch=str(node.get("headRefName") or ""),
        target_branch=str(node.get("baseRefName") or ""),
        url=str(node.get("url") or ""),
        updated_at=_time(node.get("updatedAt")) or created or datetime.now(UTC),
        description=str(node.get("body") or ""),
        author=author.get("login") if isinstance(author, dict) else GHOST_LOGIN,
        created_at=created,
    )


def _blocked(budget: RateBudget | None) -> bool:
    return budget is not None and budget.remaining == 0  # the store forgets budgets past their reset


def _failure(errors: list[Any]) -> GraphQLFailed:
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    types = {str(e.get("type")) for e in errors if isinstance(e, dict) and e.get("type")}
    # a query the server's schema rejects carries extensions.code (e.g. undefinedField)
    invalid = any(isinstance(e, dict) and (e.get("extensions") or {}).get("code") for e in errors)
    message = str(first.get("message") or "GraphQL error")[:300]
    return GraphQLFailed(f"GitHub GraphQL: {message}", permanent=bool(types & _PERMANENT_TYPES) or invalid)


class GitHubGraphQL:
    """GraphQL on one GitHub (or GHES) with the host's client; see the module docstring."""

    def __init__(self, http: GitHubHttpClient, url: str, *, enabled: bool = True) -> None:
        self._http = http
        self.url = url
        self.disabled_reason: str | None = None if enabled else "GraphQL is turned off for this integration"
        self.points_spent = 0

    def budget(self) -> RateBudget | None:
        return self._http.resource_budget(GRAPHQL_RESOURCE)

    def preferred(self, updated_since: datetime | None) -> bool:
        """GraphQL for this pull request listing? Full listings, unless off or out of points."""
        if self.disabled_reason is not None or _blocked(self.budget()):
            return False
        return updated_since is None

    def query(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` of one query; :class:`GraphQLFailed` for anything else."""
        try:
            response = self._http.request(
                "POST", self.url, json={"query": query, "variables": dict(variables)}, rate_resource=GRAPHQL_RESOURCE
            )
        except (RateLimited, HostUnavailable) as e:
            raise GraphQLFailed(f"GitHub GraphQL: {e.message}", permanent=False) from e
        except (HostAuthError, HostPermissionDenied, HostError) as e:  # 404: no GraphQL here; 401/403; 4xx
            raise GraphQLFailed(f"GitHub GraphQL: {e.message}", permanent=True) from e
        try:
            body = response.json()
        except HostError as e:  # not JSON (e.g. a proxy's HTML page)
            raise GraphQLFailed(f"GitHub GraphQL: {e.message}", permanent=False) from e
        if not isinstance(body, dict):
            raise GraphQLFailed("GitHub GraphQL answered with an unexpected shape", permanent=False)
        data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else {}
        self._record(data.get("rateLimit"))
        if body.get("errors"):
            errors = body["errors"] if isinstance(body["errors"], list) else [body["errors"]]
            raise _failure(errors)
        return data

    def _record(self, rate: Any) -> None:
        if not isinstance(rate, dict) or not isinstance(rate.get("remaining"), int):
            return
        self.points_spent += int(rate.get("cost") or 0)
        limit = rate.get("limit")
        budget = RateBudget(limit if isinstance(limit, int) else None, rate["remaining"], _time(rate.get("resetAt")))
        self._http.record_resource_budget(GRAPHQL_RESOURCE, budget)

    def pull_requests(self, owner: str, name: str, *, updated_since: datetime | None = None) -> Iterator[PullRequest]:
        """Newest-updated first, stopping at the first one older than ``updated_since``."""
        after: str | None = None
        while True:
            variables = {"owner": owner, "name": name, "first": PAGE_SIZE, "after": after}
            data = self.query(PULL_REQUESTS_QUERY, variables)
            connection = (data.get("repository") or {}).get("pullRequests")
            if not isinstance(connection, dict):
                raise GraphQLFailed(f"GitHub GraphQL returned no pull requests for {owner}/{name}", permanent=False)
            for node in connection.get("nodes") or []:
                if not isinstance(node, dict):
                    continue
                pr = to_pull_request_node(node)
                if updated_since is not None and pr.updated_at < updated_since:
                    return  # newest first: the rest are older too
                yield pr
            page = connection.get("pageInfo") or {}
            cursor = page.get("endCursor")
            if not page.get("hasNextPage"):
                return
            if not isinstance(cursor, str) or not cursor or cursor == after:
                raise GraphQLFailed("GitHub GraphQL sent the same page twice", permanent=False)
            after = cursor

    def pull_requests_or_rest(
        self,
        owner: str,
        name: str,
        updated_since: datetime | None,
        rest: Callable[[], Iterator[PullRequest]],
    ) -> Iterator[PullRequest]:
        """GraphQL when :meth:`preferred`, REST (``rest()``) otherwise or when GraphQL fails."""
        seen: set[str] = set()
        if self.preferred(updated_since):
            try:
                for pr in self.pull_requests(owner, name, updated_since=updated_since):
                    seen.add(pr.external_id)
                    yield pr
                return
            except GraphQLFailed as e:
                if e.permanent:
                    self.disabled_reason = e.message
                log.info("%s; listing %s/%s pull requests over REST", e.message, owner, name)
        yield from (pr for pr in rest() if pr.external_id not in seen)
