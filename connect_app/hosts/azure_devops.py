"""Azure DevOps Services and Azure DevOps Server/TFS (Git REST API), one class for both.

The base URL is the organization (``https://dev.azure.com/{organization}``) or the
server's collection (``https://tfs.example.com/tfs/DefaultCollection``); everything
else differs only in ``api-version`` (7.1 on Services; 6.0 by default on a server,
5.0 or older where its API allows). Webhooks are Service Hooks subscriptions that
post with basic auth whose password is our secret.

Payload parsing and Service Hooks deliveries are in ``azure_devops_payloads``, the
Entra ID OAuth flow in ``azure_devops_oauth``. Quirks handled here:
* a pull request has no "updated" time (see ``parse_pull_request``), so with
  ``updated_since`` we ask the server for PRs created *or* closed since then (7.1
  ``searchCriteria.minTime``); older servers are filtered here. New pushes or votes on
  an open PR do not move that time: ``git.pullrequest.updated`` webhooks (and full
  re-indexes) catch those;
* a bad PAT may be answered with ``203`` and the HTML sign-in page, or a redirect to
  it: we ask for a 401 (``X-TFS-FedAuthRedirect: Suppress``) and treat HTML as one;
* ``remoteUrl`` carries the organization as URL user name: stripped for ``git``.
"""

from __future__ import annotations

import base64
import contextlib
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from requests.auth import AuthBase

from connect_app.errors import (
    AppError,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    RateLimited,
    Unsupported,
)
from connect_app.hosts.azure_devops_oauth import DEFAULT_SCOPES, ENTRA_AUTHORITY, entra_flow
from connect_app.hosts.azure_devops_payloads import (
    HOOK_EVENTS,
    ZERO_SHA,
    full_ref,
    hook_subscription,
    list_values,
    parse_delivery,
    parse_pull_request,
    parse_repository,
    quote_segment,
    short_ref,
    verify_delivery,
)
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
from connect_app.hosts.http import HostHttpClient
from connect_app.hosts.oauth import OAuthCodeFlow, OAuthCodeFlowHost
from connect_app.hosts.pagination import AZURE_CONTINUATION, TopSkipPagination

# Re-exported: the registry and callers import these from here.
__all__ = [
    "HOOK_EVENTS",
    "SERVER_INFO",
    "SERVICES_INFO",
    "AzureDevOpsHost",
    "parse_pull_request",
    "parse_repository",
]

SERVICES_URL = "https://dev.azure.com"
SCOPE_HINT = (
    "A personal access token needs Code (Read) to index, Code (Read & Write) to create "
    "branches and pull requests, and Service Hooks (Read & Write) for webhooks."
)
# Security namespace "Git Repositories" and its bits (token repoV2/<project id>/<repo id>).
GIT_NAMESPACE = "2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87"
GENERIC_CONTRIBUTE, MANAGE_PERMISSIONS = 4, 8192
NO_SIGN_IN_REDIRECT = {"X-TFS-FedAuthRedirect": "Suppress"}  # a 401 instead of a redirect to sign-in
_SHA = re.compile(r"^[0-9a-fA-F]{40}$")
_BRANCH_EXISTS = frozenset({"staleOldObjectId", "refNameConflict"})
_NEEDS_PERMISSION = frozenset({"createBranchPermissionRequired", "writePermissionRequired"})
_REFS_PAGING = AZURE_CONTINUATION
_PR_PAGING = TopSkipPagination(page_size=100)

_COMMON_CAPS = frozenset(Capability) - {Capability.OAUTH}
SERVICES_INFO = ProviderInfo(
    ProviderId.AZURE_DEVOPS, "Azure DevOps", (AuthType.PAT, AuthType.OAUTH), False, frozenset(Capability), SERVICES_URL
)
SERVER_INFO = ProviderInfo(
    ProviderId.AZURE_DEVOPS_SERVER, "Azure DevOps Server / TFS", (AuthType.PAT,), True, _COMMON_CAPS
)


class _AzureAuth(AuthBase):
    """PAT: basic auth with an empty user name; OAuth: bearer. An auth object rather than
    headers, so the shared client sends it (and the no-redirect header) to our origin only."""

    def __init__(self, credentials: Credentials) -> None:
        token = credentials.token or credentials.password
        if not token:
            raise HostAuthError("Azure DevOps needs a personal access token or an OAuth token")
        self.token = token
        bearer = credentials.auth_type is AuthType.OAUTH
        self._value = f"Bearer {token}" if bearer else "Basic " + base64.b64encode(f":{token}".encode()).decode()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.update({"Authorization": self._value, **NO_SIGN_IN_REDIRECT})
        return r


def _version_at_least(api_version: str, wanted: tuple[int, int]) -> bool:
    found = re.match(r"(\d+)\.(\d+)", api_version)
    return found is not None and (int(found[1]), int(found[2])) >= wanted


class AzureDevOpsHost(OAuthCodeFlowHost):
    """One organization / collection with one credential; also the OAuth flow (Services)."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        server: bool = False,
        api_version: str | None = None,
        oauth_client_id: str | None = None,
        oauth_client_secret: str | None = None,
        entra_tenant: str = "organizations",
        entra_authority: str = ENTRA_AUTHORITY,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        **client_kw: Any,
    ) -> None:
        self.info = SERVER_INFO if server else SERVICES_INFO
        self.api_version = api_version or ("6.0" if server else "7.1")
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._client_kw = client_kw
        self._oauth = entra_flow(
            oauth_client_id,
            oauth_client_secret,
            tenant=entra_tenant,
            authority=entra_authority,
            scopes=scopes,
            http_options=client_kw,
        )
        self._http = self._client(credentials)

    @classmethod
    def services(cls, organization: str, credentials: Credentials, **kw: Any) -> AzureDevOpsHost:
        return cls(f"{SERVICES_URL}/{quote_segment(organization)}", credentials, **kw)

    @classmethod
    def azure_server(cls, collection_url: str, credentials: Credentials, **kw: Any) -> AzureDevOpsHost:
        return cls(collection_url, credentials, server=True, **kw)

    def _client(self, credentials: Credentials) -> HostHttpClient:
        return HostHttpClient(self.base_url, auth=_AzureAuth(credentials), **self._client_kw)

    def close(self) -> None:
        self._http.close()

    # --- HTTP helpers -----------------------------------------------------------------

    def _params(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"api-version": self.api_version, **(extra or {})}

    def _call(
        self, method: str, path: str, *, http: HostHttpClient | None = None, versioned: bool = True, **kw: Any
    ) -> Any:
        """One request with ``api-version``; refuses the HTML sign-in page as a failed login."""
        client = http or self._http
        kw["params"] = self._params(kw.get("params")) if versioned else kw.get("params")
        response = client.request(method, path, **kw)
        if response.status == 203 or response.headers.get("content-type", "").startswith("text/html"):
            raise HostAuthError(f"{client.host} answered with its sign-in page: the token is invalid. {SCOPE_HINT}")
        return response.json()

    def _repo_path(self, repo: RemoteRepository, suffix: str = "") -> str:
        project = f"{quote_segment(repo.namespace)}/" if repo.namespace else ""
        return f"{project}_apis/git/repositories/{quote_segment(repo.external_id)}{suffix}"

    # --- GitHost ----------------------------------------------------------------------

    def validate_credentials(self) -> str:
        try:
            # a location-service resource: no api-version, unlike the Git APIs
            data = self._call("GET", "_apis/connectionData", versioned=False)
        except HostAuthError as e:
            raise HostAuthError(f"{e.message} {SCOPE_HINT}") from e
        user = (data or {}).get("authenticatedUser") or {}
        name = user.get("providerDisplayName")
        if not name:
            raise HostAuthError(f"{self._http.host} did not accept the credentials. {SCOPE_HINT}")
        return str(name)

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]:
        prefix = f"{quote_segment(namespace)}/" if namespace else ""
        for raw in list_values(self._call("GET", f"{prefix}_apis/git/repositories")):
            if not raw.get("isDisabled"):  # disabled repositories refuse every read
                yield parse_repository(raw)

    def clone_url(self, repo: RemoteRepository) -> str:
        parts = urllib.parse.urlsplit(repo.clone_url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port}" if parts.port else ""
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def git_auth(self) -> GitAuth:
        token = self._credentials.token or self._credentials.password or ""
        if self._credentials.auth_type is AuthType.OAUTH:
            return GitAuth(http_header=f"Authorization: Bearer {token}")
        return GitAuth(username="pat", password=token)

    def list_branches(self, repo: RemoteRepository) -> Iterator[RemoteBranch]:
        params = self._params({"filter": "heads/", "$top": 1000})
        for raw in self._http.paginate(
            self._repo_path(repo, "/refs"), params=params, strategy=_REFS_PAGING, extractor=list_values
        ):
            yield RemoteBranch(name=short_ref(raw.get("name")), head_sha=raw.get("objectId"))

    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]:
        queries: list[dict[str, Any]] = [{"searchCriteria.status": "all"}]
        server_side = updated_since is not None and _version_at_least(self.api_version, (7, 1))
        if server_side and updated_since is not None:
            since = updated_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            queries = [
                {
                    "searchCriteria.status": "all",
                    "searchCriteria.minTime": since,
                    "searchCriteria.queryTimeRangeType": kind,
                }
                for kind in ("created", "closed")
            ]
        seen: set[str] = set()
        for query in queries:
            for raw in self._http.paginate(
                self._repo_path(repo, "/pullrequests"),
                params=self._params(query),
                strategy=_PR_PAGING,
                extractor=list_values,
            ):
                pr = parse_pull_request(raw, repo.web_url)
                if pr.external_id in seen or (updated_since and pr.updated_at < updated_since):
                    continue
                seen.add(pr.external_id)
                yield pr

    def _resolve_sha(self, repo: RemoteRepository, ref: str) -> str:
        if _SHA.match(ref):
            return ref.lower()
        full = full_ref(ref)
        refs = list_values(self._call("GET", self._repo_path(repo, "/refs"), params={"filter": full[5:]}))
        for raw in refs:  # the filter is a prefix match: heads/main also finds heads/main-old
            if raw.get("name") == full and raw.get("objectId"):
                return str(raw["objectId"])
        raise HostNotFound(f"{repo.name} has no branch {short_ref(ref)!r}")

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        sha = self._resolve_sha(repo, from_ref)
        update = {"name": full_ref(name), "oldObjectId": ZERO_SHA, "newObjectId": sha}
        results = list_values(self._call("POST", self._repo_path(repo, "/refs"), json=[update]))
        result = results[0] if results else {}
        if result.get("success") is not True:
            raise _ref_update_error(repo, short_ref(name), result)
        return RemoteBranch(name=short_ref(name), head_sha=result.get("newObjectId") or sha)

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        payload = {
            "sourceRefName": full_ref(source),
            "targetRefName": full_ref(target),
            "title": title,
            "description": body,
        }
        created = self._call("POST", self._repo_path(repo, "/pullrequests"), json=payload)
        return parse_pull_request(created, repo.web_url)

    def repository_permission(self, repo: RemoteRepository, user: Credentials) -> Permission:
        """READ when the user's token can read the repository; WRITE/ADMIN when the
        security API (``_apis/permissions``) confirms Contribute / Manage permissions.
        If that API is unavailable to the token (scope, old server), READ is the floor."""
        http = self._client(user)
        try:
            return self._permission(repo, http)
        finally:
            http.close()

    def _permission(self, repo: RemoteRepository, http: HostHttpClient) -> Permission:
        try:
            raw = self._call("GET", self._repo_path(repo), http=http)
        except (HostNotFound, HostPermissionDenied):
            return Permission.NONE
        project_id = (raw.get("project") or {}).get("id")
        if not project_id:
            return Permission.READ
        token = f"repoV2/{project_id}/{raw.get('id') or repo.external_id}"
        # The permissions resource exists only as a preview (7.1-preview.2 / 6.0-preview.2);
        # a plain "7.1" is answered 400 VssInvalidPreviewVersionException.
        base = re.match(r"\d+\.\d+", self.api_version)
        version = f"{base.group(0) if base else '7.1'}-preview"
        params = {"api-version": version, "tokens": token, "alwaysAllowAdministrators": "false"}
        granted = Permission.READ
        for bit, level in ((GENERIC_CONTRIBUTE, Permission.WRITE), (MANAGE_PERMISSIONS, Permission.ADMIN)):
            try:
                path = f"_apis/permissions/{GIT_NAMESPACE}/{bit}"
                answer = self._call("GET", path, http=http, params=params)
            except RateLimited:
                raise
            except HostError:  # the token may lack the scope, or the server the API
                return granted
            if not all(v is True for v in list_values(answer) or [False]):
                return granted
            granted = level
        return granted

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        project_id = (self._call("GET", self._repo_path(repo)).get("project") or {}).get("id")
        if not project_id:
            raise HostError(f"{repo.name}: Azure DevOps did not say which project owns it")
        created: list[str] = []
        try:
            for event in HOOK_EVENTS:
                body = hook_subscription(event, project_id, repo.external_id, url, secret)
                created.append(str(self._call("POST", "_apis/hooks/subscriptions", json=body)["id"]))
        except Exception:
            with contextlib.suppress(AppError):  # no half-registered hooks; the first error is the one to report
                self.delete_webhook(repo, ",".join(created))
            raise
        return WebhookRegistration(id=",".join(created), url=url)

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        for subscription in filter(None, webhook_id.split(",")):
            try:
                self._call("DELETE", f"_apis/hooks/subscriptions/{quote_segment(subscription)}")
            except HostNotFound:
                continue  # already gone

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        verify_delivery(headers, secret)

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        return parse_delivery(raw_body)

    def rate_budget(self) -> RateBudget | None:
        return self._http.budget()

    # --- OAuthFlow (Microsoft Entra ID, v2.0 endpoints; see azure_devops_oauth) ----------

    def oauth_flow(self) -> OAuthCodeFlow:
        if self.info.id is ProviderId.AZURE_DEVOPS_SERVER:
            raise Unsupported("Azure DevOps Server has no OAuth; use a personal access token")
        return self._oauth


def _ref_update_error(repo: RemoteRepository, name: str, result: Mapping[str, Any]) -> AppError:
    status = str(result.get("updateStatus") or "unknown")
    detail = f" ({result['customMessage']})" if result.get("customMessage") else ""
    if status in _BRANCH_EXISTS:
        return HostError(f"branch {name!r} already exists in {repo.name}", code="branch_exists", status=409)
    if status in _NEEDS_PERMISSION:
        return HostPermissionDenied(f"not allowed to create branch {name!r} in {repo.name}: {status}{detail}")
    if status == "invalidRefName":
        return HostError(f"{name!r} is not a valid branch name", code="invalid_branch_name", status=422)
    message = f"Azure DevOps did not create branch {name!r} in {repo.name}: {status}{detail}"
    return HostError(message, code="branch_not_created")
