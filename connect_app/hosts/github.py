"""GitHub.com and GitHub Enterprise Server (REST v3), one class for both.

The two differ only in where things live: GitHub.com's API is on
``https://api.github.com`` and its OAuth pages on ``https://github.com``; a GHES
server ``https://ghe.example.com`` serves both under its own origin
(``/api/v3``, ``/login/oauth/...``). Everything else — HTTP, pagination, rate
limits, ETags, error mapping — is the shared :class:`HostHttpClient`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connect_app.errors import AuthError, HostAuthError, HostError, HostNotFound, HostPermissionDenied
from connect_app.hosts.base import (
    AuthType,
    Capability,
    Credentials,
    GitAuth,
    OAuthTokens,
    Permission,
    ProviderId,
    ProviderInfo,
    PullRequest,
    PullRequestAction,
    PullRequestState,
    RateBudget,
    RefUpdate,
    RemoteBranch,
    RemoteRepository,
    RepositoryAction,
    WebhookEvent,
    WebhookEventType,
    WebhookRegistration,
)
from connect_app.hosts.etags import EtagCache
from connect_app.hosts.http import HostHttpClient
from connect_app.hosts.ratelimit import BudgetStore

GITHUB_API_URL = "https://api.github.com"
GITHUB_WEB_URL = "https://github.com"
OAUTH_SCOPES = ("repo", "admin:repo_hook", "read:user")
WEBHOOK_EVENTS = ("push", "pull_request", "repository")
_ZERO_SHA = re.compile(r"^0+$")
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

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


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sha(value: Any) -> str | None:
    return value if isinstance(value, str) and value and not _ZERO_SHA.match(value) else None


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


def to_pull_request(item: Mapping[str, Any]) -> PullRequest:
    if item.get("merged_at") or item.get("merged") is True:
        state = PullRequestState.MERGED
    elif item.get("state") == "closed":
        state = PullRequestState.DECLINED
    else:
        state = PullRequestState.OPEN
    updated = _parse_time(item.get("updated_at")) or _parse_time(item.get("created_at"))
    return PullRequest(
        external_id=str(item["number"]),
        title=str(item.get("title") or ""),
        state=state,
        source_branch=str((item.get("head") or {}).get("ref") or ""),
        target_branch=str((item.get("base") or {}).get("ref") or ""),
        url=str(item.get("html_url") or ""),
        updated_at=updated or datetime.now(UTC),
        description=str(item.get("body") or ""),
        author=(item.get("user") or {}).get("login"),
        created_at=_parse_time(item.get("created_at")),
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


class GitHubHost:
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

    @classmethod
    def enterprise(cls, server_url: str, credentials: Credentials, **kw: Any) -> GitHubHost:
        """GHES at ``server_url`` (what the admin types, e.g. ``https://ghe.example.com``)."""
        server = server_url.rstrip("/")
        server = server.removesuffix("/api/v3")
        return cls(credentials, api_url=f"{server}/api/v3", web_url=server, info=GITHUB_ENTERPRISE_INFO, **kw)

    @property
    def graphql_url(self) -> str:
        return f"{self.web_url}/api/graphql" if self.api_url.endswith("/api/v3") else f"{self.api_url}/graphql"

    def _client(self, token: str) -> HostHttpClient:
        return HostHttpClient(self.api_url, auth={"Authorization": f"Bearer {token}"}, **self._client_kw)

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
        scopes = _header(response.headers, "x-oauth-scopes")
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
        params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": 100}
        for item in self._http.paginate(f"{_repo_path(repo)}/pulls", params=params):
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
        if not secret:
            raise AuthError("This webhook has no secret configured; refusing the delivery")
        signature = _header(headers, "x-hub-signature-256")
        algorithm, digest = ("sha256", hashlib.sha256)
        if signature is None:  # legacy SHA-1 header only when GitHub sent no SHA-256 one
            signature = _header(headers, "x-hub-signature")
            algorithm, digest = ("sha1", hashlib.sha1)
        if not signature:
            raise AuthError("The GitHub delivery carries no X-Hub-Signature-256 header")
        expected = f"{algorithm}=" + hmac.new(secret.encode(), raw_body, digest).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
            raise AuthError("The GitHub delivery's signature does not match this webhook's secret")

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        event = (_header(headers, "x-github-event") or "").strip()
        delivery = _header(headers, "x-github-delivery")
        try:
            payload = json.loads(raw_body)
        except ValueError as e:
            raise HostError("The GitHub delivery is not valid JSON", code="bad_webhook", status=400) from e
        if not isinstance(payload, dict):
            return []
        repository = payload.get("repository") or {}
        repo_id = str(repository["id"]) if "id" in repository else None
        common: dict[str, Any] = {
            "repository_external_id": repo_id,
            "delivery_id": delivery,
            "repository_name": repository.get("full_name"),
        }
        if event == "push":
            return [_push_event(payload, common)]
        if event == "pull_request":
            action = _pull_request_action(payload)
            if action is None or not isinstance(payload.get("pull_request"), dict):
                return []
            pr = to_pull_request(payload["pull_request"])
            return [WebhookEvent(WebhookEventType.PULL_REQUEST, pull_request=pr, pull_request_action=action, **common)]
        if event == "repository":
            actions = {"created": RepositoryAction.CREATED, "deleted": RepositoryAction.DELETED}
            repo_action = actions.get(str(payload.get("action")))
            if repo_action is None:
                return []
            return [WebhookEvent(WebhookEventType.REPOSITORY, repository_action=repo_action, **common)]
        if event == "ping":
            return [WebhookEvent(WebhookEventType.PING, **common)]
        return []

    def rate_budget(self) -> RateBudget | None:
        return self._http.budget()

    # --- OAuth ---------------------------------------------------------------------

    def _oauth_client(self) -> tuple[str, str]:
        if not self._client_id or not self._client_secret:
            raise HostAuthError(f"OAuth is not configured for {self.info.name}: set its client id and secret")
        return self._client_id, self._client_secret

    def authorize_url(self, *, state: str, redirect_uri: str) -> str:
        client_id, _ = self._oauth_client()
        query = {"client_id": client_id, "redirect_uri": redirect_uri, "state": state, "scope": " ".join(OAUTH_SCOPES)}
        return f"{self.web_url}/login/oauth/authorize?{urllib.parse.urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str) -> OAuthTokens:
        return self._token_request({"code": code, "redirect_uri": redirect_uri})

    def refresh(self, refresh_token: str) -> OAuthTokens:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token_request(self, fields: dict[str, str]) -> OAuthTokens:
        client_id, client_secret = self._oauth_client()
        web = HostHttpClient(self.web_url, allow_private=self._client_kw["allow_private"])
        try:
            body = web.post_json(
                "/login/oauth/access_token", {"client_id": client_id, "client_secret": client_secret, **fields}
            )
        finally:
            web.close()
        if not isinstance(body, dict) or not body.get("access_token"):
            # GitHub answers 200 with {"error": ..., "error_description": ...} for a bad code
            error = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise HostAuthError(f"{self.info.name} refused the OAuth request: {error or 'no access token returned'}")
        expires_in = body.get("expires_in")
        expires_at = datetime.now(UTC) + timedelta(seconds=int(expires_in)) if expires_in else None
        return OAuthTokens(str(body["access_token"]), body.get("refresh_token") or None, expires_at)


def _pull_request_action(payload: Mapping[str, Any]) -> PullRequestAction | None:
    action = payload.get("action")
    if action == "opened":
        return PullRequestAction.OPENED
    if action in ("edited", "synchronize", "reopened", "ready_for_review"):
        return PullRequestAction.UPDATED
    if action == "closed":
        merged = (payload.get("pull_request") or {}).get("merged")
        return PullRequestAction.MERGED if merged else PullRequestAction.DECLINED
    return None  # labels, assignees, reviews: nothing the index shows


def _push_event(payload: Mapping[str, Any], common: dict[str, Any]) -> WebhookEvent:
    deleted = bool(payload.get("deleted"))
    ref = RefUpdate(
        ref=str(payload.get("ref") or ""),
        before=_sha(payload.get("before")),
        after=None if deleted else _sha(payload.get("after")),
    )
    commits = tuple(str(c["id"]) for c in payload.get("commits") or [] if isinstance(c, dict) and c.get("id"))
    return WebhookEvent(WebhookEventType.PUSH, refs=(ref,), commit_ids=commits, **common)
