"""GitHub.com and GitHub Enterprise Server (REST v3, GraphQL where cheaper), one class for both.

The two differ only in where things live: GitHub.com's API is on
``https://api.github.com`` and its OAuth pages on ``https://github.com``; a GHES
server ``https://ghe.example.com`` serves both under its own origin
(``/api/v3``, ``/api/graphql``, ``/login/oauth/...``). Everything else — HTTP, pagination,
rate limits, ETags, error mapping — is the shared :class:`HostHttpClient`. Webhook
deliveries: ``github_webhooks``; GraphQL and when it is used: ``github_graphql``.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from connect_app.errors import HostAuthError, HostError, HostNotFound, HostPermissionDenied
from connect_app.hosts.base import (
    AuthType,
    Capability,
    Credentials,
    GitAuth,
    Permission,
    ProviderId,
    ProviderInfo,
    PullRequest,
    RateBudget,
    RemoteBranch,
    RemoteRepository,
    WebhookEvent,
    WebhookRegistration,
)
from connect_app.hosts.etags import EtagCache
from connect_app.hosts.github_graphql import GitHubGraphQL, GitHubHttpClient
from connect_app.hosts.github_webhooks import parse_delivery, to_pull_request, verify_signature
from connect_app.hosts.oauth import OAuthCodeFlow, OAuthCodeFlowHost
from connect_app.hosts.ratelimit import BudgetStore

GITHUB_API_URL = "https://api.github.com"
GITHUB_WEB_URL = "https://github.com"
OAUTH_SCOPES = ("repo", "admin:repo_hook", "read:user")
WEBHOOK_EVENTS = ("push", "pull_request", "repository")
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# A REST pull request item is ~21 KB in GitHub's example (it embeds the head and base repositories),
# so a page of 100 passes the ETag cache's 2 MB cap; polls ask for 50 so an unchanged page is a free 304.
_POLL_PAGE = 50

_ALL_CAPABILITIES = frozenset(Capability)
GITHUB_INFO = ProviderInfo(
    id=ProviderId.GITHUB,
    name="GitHub",
    auth_types=(AuthType.PAT, AuthType.OAUTH),
    self_hosted=False,
    capabilities=_ALL_CAPABILITIES,
    default_base_url=GITHUB_API_URL,
)
GITHUB_ENTERPRISE_INFO = ProviderInfo(
    id=ProviderId.GITHUB_ENTERPRISE,
    name="GitHub Enterprise Server",
    auth_types=(AuthType.PAT, AuthType.OAUTH),
    self_hosted=True,
    capabilities=_ALL_CAPABILITIES,
)

# Classic scopes that include others (GitHub docs, "Scopes for OAuth apps").
_IMPLIED_SCOPES = {
    "repo": {"public_repo", "repo:status", "repo_deployment", "repo:invite", "security_events"},
    "admin:repo_hook": {"write:repo_hook", "read:repo_hook"},
    "write:repo_hook": {"read:repo_hook"},
    "user": {"read:user", "user:email", "user:follow"},
}
# What this app needs from a classic token, as (any of these scopes, the scope to ask for, why).
_SCOPE_NEEDS = (
    ({"repo"}, "repo", "to read private repositories and create branches and pull requests"),
    # `repo` already grants repository hooks; only a token without it needs the hook scope
    ({"repo", "public_repo", "admin:repo_hook", "write:repo_hook"}, "admin:repo_hook", "to register webhooks"),
)


def granted_scopes(header: str) -> frozenset[str]:
    """The scopes a classic token has, expanded with the ones they imply."""
    scopes = {s.strip() for s in header.split(",") if s.strip()}
    for scope in list(scopes):
        scopes |= _IMPLIED_SCOPES.get(scope, set())
    return frozenset(scopes)


def missing_scopes(header: str, *, webhooks: bool = True) -> list[tuple[str, str]]:
    """``(scope, why)`` for every need ``X-OAuth-Scopes`` does not cover."""
    granted = granted_scopes(header)
    needs = _SCOPE_NEEDS if webhooks else _SCOPE_NEEDS[:1]
    return [(ask, why) for any_of, ask, why in needs if not granted & any_of]


def _seg(value: str) -> str:
    """One URL path segment (a ``/`` inside becomes ``%2F``, as GitHub's own clients send it)."""
    return urllib.parse.quote(value, safe="")


def _repo_path(repo: RemoteRepository) -> str:
    owner, sep, name = repo.name.partition("/")
    if not sep or not owner or not name:
        raise HostError(f"not a GitHub repository name: {repo.name!r} (expected owner/name)", code="bad_repository")
    return f"/repos/{_seg(owner)}/{_seg(name)}"


def to_repository(item: Mapping[str, Any]) -> RemoteRepository:
    owner = item.get("owner") or {}
    return RemoteRepository(
        external_id=str(item["id"]),
        name=str(item["full_name"]),
        clone_url=str(item["clone_url"]),
        web_url=item.get("html_url"),
        default_branch=item.get("default_branch"),
        namespace=owner.get("login"),
        private=bool(item.get("private", True)),
    )


def to_permission(permissions: Mapping[str, Any] | None) -> Permission:
    granted = permissions or {}
    if granted.get("admin"):
        return Permission.ADMIN
    if granted.get("maintain") or granted.get("push"):
        return Permission.WRITE
    if granted.get("triage") or granted.get("pull"):
        return Permission.READ
    return Permission.NONE


class GitHubHost(OAuthCodeFlowHost):
    """A :class:`~connect_app.hosts.base.GitHost` (and ``OAuthFlow``) for GitHub.com or GHES."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        api_url: str = GITHUB_API_URL,
        web_url: str = GITHUB_WEB_URL,
        info: ProviderInfo = GITHUB_INFO,
        oauth_client_id: str | None = None,
        oauth_client_secret: str | None = None,
        webhooks: bool = True,
        allow_private: bool = False,
        budget_store: BudgetStore | None = None,
        etag_cache: EtagCache | None = None,
        max_wait_seconds: float = 60.0,
        graphql: bool = True,
    ) -> None:
        if credentials.auth_type not in (AuthType.PAT, AuthType.OAUTH) or not credentials.token:
            raise HostAuthError(f"{info.name} needs a personal access token or an OAuth token")
        self.info = info
        self.api_url = api_url.rstrip("/")
        self.web_url = web_url.rstrip("/")
        self._token = credentials.token
        self._client_id = oauth_client_id
        self._client_secret = oauth_client_secret
        self._webhooks = webhooks
        self._client_kw: dict[str, Any] = {
            "allow_private": allow_private,
            "budget_store": budget_store,
            "etag_cache": etag_cache,
            "max_wait_seconds": max_wait_seconds,
        }
        self._http = self._client(self._token)
        self.graphql_api = GitHubGraphQL(self._http, self.graphql_url, enabled=graphql)

    @classmethod
    def enterprise(cls, server_url: str, credentials: Credentials, **kw: Any) -> GitHubHost:
        """GHES at ``server_url`` (what the admin types, e.g. ``https://ghe.example.com``)."""
        server = server_url.rstrip("/")
        server = server.removesuffix("/api/v3")
        return cls(credentials, api_url=f"{server}/api/v3", web_url=server, info=GITHUB_ENTERPRISE_INFO, **kw)

    @property
    def graphql_url(self) -> str:
        return f"{self.web_url}/api/graphql" if self.api_url.endswith("/api/v3") else f"{self.api_url}/graphql"

    def _client(self, token: str) -> GitHubHttpClient:
        return GitHubHttpClient(self.api_url, auth={"Authorization": f"Bearer {token}"}, **self._client_kw)

    def close(self) -> None:
        self._http.close()

    # --- account and repositories ----------------------------------------------

    def validate_credentials(self) -> str:
        try:
            response = self._http.request("GET", "/user")
        except HostAuthError as e:
            raise HostAuthError(
                f"{self.info.name} refused the token (401): it is wrong, expired or revoked. "
                "Create a new token and save it in the integration's settings."
            ) from e
        login = str((response.json() or {}).get("login") or "")
        scopes = response.headers.get("x-oauth-scopes")  # the headers are case-insensitive
        if scopes is not None:  # classic PAT or OAuth app token; fine-grained tokens send none
            missing = missing_scopes(scopes, webhooks=self._webhooks)
            if missing:
                needs = "; ".join(f"{scope} ({why})" for scope, why in missing)
                raise HostPermissionDenied(
                    f"The token of {login} lacks scope(s): {needs}. It has: {scopes or 'none'}. "
                    "Edit the token on GitHub (Settings > Developer settings > Personal access tokens) "
                    "to add them."
                )
        return login

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]:
        if namespace is None:
            params = {"per_page": 100, "affiliation": "owner,collaborator,organization_member"}
            yield from map(to_repository, self._http.paginate("/user/repos", params=params))
            return
        pages = self._http.paginate(f"/orgs/{_seg(namespace)}/repos", params={"per_page": 100, "type": "all"})
        try:
            first = next(pages, None)
        except HostNotFound:  # not an organization: the user's own account, private repos included
            own = self._http.paginate("/user/repos", params={"per_page": 100, "affiliation": "owner"})
            yield from (r for r in map(to_repository, own) if (r.namespace or "").lower() == namespace.lower())
            return
        if first is not None:
            yield to_repository(first)
            yield from map(to_repository, pages)

    def clone_url(self, repo: RemoteRepository) -> str:
        return repo.clone_url

    def git_auth(self) -> GitAuth:
        return GitAuth(username="x-access-token", password=self._token)

    def list_branches(self, repo: RemoteRepository) -> Iterator[RemoteBranch]:
        base = repo.web_url or ""
        for item in self._http.paginate(f"{_repo_path(repo)}/branches", params={"per_page": 100}):
            name = str(item["name"])
            url = f"{base}/tree/{urllib.parse.quote(name, safe='/')}" if base else None
            yield RemoteBranch(name=name, head_sha=(item.get("commit") or {}).get("sha"), url=url)

    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]:
        """Over GraphQL or REST, whichever costs less now (see ``github_graphql``); same results."""
        path = _repo_path(repo)
        owner, name = repo.name.split("/", 1)
        rest = functools.partial(self._rest_pull_requests, path, updated_since)
        yield from self.graphql_api.pull_requests_or_rest(owner, name, updated_since, rest)

    def _rest_pull_requests(self, path: str, updated_since: datetime | None) -> Iterator[PullRequest]:
        per_page = 100 if updated_since is None else _POLL_PAGE
        params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": per_page}
        for item in self._http.paginate(f"{path}/pulls", params=params):
            pr = to_pull_request(item)
            if updated_since is not None and pr.updated_at < updated_since:
                return  # newest first: everything after this is older too, so stop paging
            yield pr

    # --- actions -----------------------------------------------------------------

    def _resolve_sha(self, repo: RemoteRepository, ref: str) -> str:
        if _FULL_SHA.match(ref):
            return ref
        path = _repo_path(repo)
        try:
            found = self._http.get_json(f"{path}/git/ref/{_seg('heads/' + ref)}")
            return str(found["object"]["sha"])
        except HostNotFound:
            pass
        try:  # a tag, a short sha, or anything else GitHub can resolve to a commit
            return str(self._http.get_json(f"{path}/commits/{_seg(ref)}")["sha"])
        except HostNotFound as e:
            raise HostNotFound(f"{repo.name} has no branch, tag or commit named {ref!r}") from e

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        sha = self._resolve_sha(repo, from_ref)
        try:
            created = self._http.post_json(f"{_repo_path(repo)}/git/refs", {"ref": f"refs/heads/{name}", "sha": sha})
        except HostError as e:
            if e.status == 422 and "already exists" in e.message.lower():
                raise HostError(
                    f"A branch named {name!r} already exists in {repo.name}", code="branch_exists", status=409
                ) from e
            raise
        head = str((created.get("object") or {}).get("sha") or sha)
        url = f"{repo.web_url}/tree/{urllib.parse.quote(name, safe='/')}" if repo.web_url else None
        return RemoteBranch(name=name, head_sha=head, url=url)

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        payload = {"title": title, "head": source, "base": target, "body": body}
        try:
            return to_pull_request(self._http.post_json(f"{_repo_path(repo)}/pulls", payload))
        except HostError as e:
            if e.status == 422 and "already exists" in e.message.lower():
                raise HostError(
                    f"A pull request from {source} to {target} already exists in {repo.name}",
                    code="pull_request_exists",
                    status=409,
                ) from e
            raise

    def repository_permission(self, repo: RemoteRepository, user: Credentials) -> Permission:
        if not user.token:
            raise HostAuthError(f"{self.info.name} needs the user's personal access token to check access")
        client = self._client(user.token)
        try:
            data = client.get_json(_repo_path(repo))
        except (HostNotFound, HostPermissionDenied):  # GitHub hides repositories you cannot see
            return Permission.NONE
        finally:
            client.close()
        return to_permission(data.get("permissions") if isinstance(data, dict) else None)

    # --- webhooks ----------------------------------------------------------------

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        payload = {
            "name": "web",
            "active": True,
            "events": list(WEBHOOK_EVENTS),
            "config": {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
        }
        hook = self._http.post_json(f"{_repo_path(repo)}/hooks", payload)
        return WebhookRegistration(id=str(hook["id"]), url=str((hook.get("config") or {}).get("url") or url))

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        try:
            self._http.delete(f"{_repo_path(repo)}/hooks/{_seg(webhook_id)}")
        except HostNotFound:
            return  # already gone: deleting is idempotent

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        verify_signature(headers, raw_body, secret)

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        return parse_delivery(headers, raw_body)

    def rate_budget(self) -> RateBudget | None:
        return self._http.budget()

    # --- OAuth ---------------------------------------------------------------------

    def oauth_flow(self) -> OAuthCodeFlow:
        """GitHub's web application flow on the web host (github.com or the GHES server):
        no ``response_type``, no ``grant_type`` on the code exchange, client id and secret
        in the form body; a bad code is a 200 whose body holds ``error``."""
        return OAuthCodeFlow(
            name=self.info.name,
            authorize_endpoint=f"{self.web_url}/login/oauth/authorize",
            token_endpoint=f"{self.web_url}/login/oauth/access_token",
            client_id=self._client_id,
            client_secret=self._client_secret,
            scopes=OAUTH_SCOPES,
            response_type=None,
            code_grant_type=False,
            http_options=self._client_kw,
        )
