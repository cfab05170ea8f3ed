"""Azure DevOps Services and Azure DevOps Server/TFS (Git REST API), one class for both.

The base URL is the organization (``https://dev.azure.com/{organization}``) or the
server's collection (``https://tfs.example.com/tfs/DefaultCollection``); everything
else differs only in ``api-version`` (7.1 on Services; 6.0 by default on a server,
5.0 or older where its API allows). Webhooks are Service Hooks subscriptions that
post with basic auth whose password is our secret.

Azure quirks handled here:
* list bodies are ``{"count": n, "value": [...]}`` on the wire, bare arrays in the
  published description: :func:`_values` accepts both;
* a pull request has no "updated" time: we use ``closedDate`` when closed, else
  ``creationDate``, and with ``updated_since`` ask the server for PRs created *or*
  closed since then (7.1 ``searchCriteria.minTime``); older servers are filtered here.
  New pushes or votes on an open PR do not move that time: ``git.pullrequest.updated``
  webhooks (and full re-indexes) catch those;
* a bad PAT may be answered with ``203`` and the HTML sign-in page, or a redirect to
  it: we ask for a 401 (``X-TFS-FedAuthRedirect: Suppress``) and treat HTML as one;
* ``remoteUrl`` carries the organization as URL user name: stripped for ``git``.

Longer than ~400 lines because it holds two providers and the Entra OAuth flow; the
token form post can move to ``hosts/http.py`` once the shared client sends form bodies.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import requests
from requests.auth import AuthBase

from connect_app.errors import (
    AppError,
    AuthError,
    BadRequest,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
    Unsupported,
)
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
    WebhookEvent,
    WebhookEventType,
    WebhookRegistration,
)
from connect_app.hosts.http import DEFAULT_TIMEOUT, HostHttpClient
from connect_app.hosts.netguard import check_url, guarded_session
from connect_app.hosts.pagination import AZURE_CONTINUATION, Pagination, TopSkipPagination

SERVICES_URL = "https://dev.azure.com"
ENTRA_AUTHORITY = "https://login.microsoftonline.com"
# Azure DevOps' application id in Microsoft Entra; scopes are "<it>/vso.*".
AZURE_DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
_ADO = AZURE_DEVOPS_RESOURCE
DEFAULT_SCOPES = (f"{_ADO}/vso.code_write", f"{_ADO}/vso.hooks_write", "offline_access")
SCOPE_HINT = (
    "A personal access token needs Code (Read) to index, Code (Read & Write) to create "
    "branches and pull requests, and Service Hooks (Read & Write) for webhooks."
)
# Security namespace "Git Repositories" and its bits (token repoV2/<project id>/<repo id>).
GIT_NAMESPACE = "2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87"
GENERIC_CONTRIBUTE, MANAGE_PERMISSIONS = 4, 8192
HOOK_EVENTS = ("git.push", "git.pullrequest.created", "git.pullrequest.updated", "git.pullrequest.merged")
HOOK_USERNAME = "git-connect-for-jira"
ZERO_SHA = "0" * 40
NO_SIGN_IN_REDIRECT = {"X-TFS-FedAuthRedirect": "Suppress"}  # a 401 instead of a redirect to sign-in
_SHA = re.compile(r"^[0-9a-fA-F]{40}$")
_BRANCH_EXISTS = frozenset({"staleOldObjectId", "refNameConflict"})
_NEEDS_PERMISSION = frozenset({"createBranchPermissionRequired", "writePermissionRequired"})
_PR_STATES = {"completed": PullRequestState.MERGED, "abandoned": PullRequestState.DECLINED}
_PR_ACTIONS = {"completed": PullRequestAction.MERGED, "abandoned": PullRequestAction.DECLINED}
# The shared strategies do not satisfy the Pagination protocol under mypy (read-only items_key).
_REFS_PAGING = cast(Pagination, AZURE_CONTINUATION)
_PR_PAGING = cast(Pagination, TopSkipPagination(page_size=100))

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


def _values(body: Any) -> list[Any]:
    value = body.get("value") if isinstance(body, dict) else body
    if not isinstance(value, list):
        raise HostError("Azure DevOps answered with an unexpected list shape", code="host_bad_response")
    return value


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None  # Azure writes DateTime.MinValue for "never"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sha_or_none(value: Any) -> str | None:
    return None if value in (None, "", ZERO_SHA) else str(value)


def _short(ref: Any) -> str:
    return str(ref or "").removeprefix("refs/heads/")


def _full(ref: str) -> str:
    return ref if ref.startswith("refs/") else f"refs/heads/{ref}"


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _version_at_least(api_version: str, wanted: tuple[int, int]) -> bool:
    found = re.match(r"(\d+)\.(\d+)", api_version)
    return found is not None and (int(found[1]), int(found[2])) >= wanted


def parse_repository(raw: Mapping[str, Any]) -> RemoteRepository:
    project = raw.get("project") or {}
    project_name = project.get("name")
    name = str(raw.get("name") or raw.get("id"))
    return RemoteRepository(
        external_id=str(raw["id"]),
        name=f"{project_name}/{name}" if project_name else name,
        clone_url=str(raw.get("remoteUrl") or ""),
        web_url=raw.get("webUrl") or raw.get("remoteUrl"),
        default_branch=_short(raw.get("defaultBranch")) or None,
        namespace=project_name,
        private=project.get("visibility") != "public",
    )


def parse_pull_request(raw: Mapping[str, Any], repo_web_url: str | None = None) -> PullRequest:
    created, closed = _time(raw.get("creationDate")), _time(raw.get("closedDate"))
    number = str(raw["pullRequestId"])
    web = repo_web_url or (raw.get("repository") or {}).get("remoteUrl")
    return PullRequest(
        external_id=number,
        title=str(raw.get("title") or ""),
        state=_PR_STATES.get(str(raw.get("status")), PullRequestState.OPEN),
        source_branch=_short(raw.get("sourceRefName")),
        target_branch=_short(raw.get("targetRefName")),
        url=f"{web}/pullrequest/{number}" if web else str(raw.get("url") or ""),
        updated_at=closed or created or datetime.now(UTC),
        description=str(raw.get("description") or ""),
        author=(raw.get("createdBy") or {}).get("displayName"),
        created_at=created,
    )


class AzureDevOpsHost:
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
        self._oauth = (oauth_client_id, oauth_client_secret)
        self._token_url = f"{entra_authority.rstrip('/')}/{_seg(entra_tenant)}/oauth2/v2.0"
        self._scopes = scopes
        self._http = self._client(credentials)

    @classmethod
    def services(cls, organization: str, credentials: Credentials, **kw: Any) -> AzureDevOpsHost:
        return cls(f"{SERVICES_URL}/{_seg(organization)}", credentials, **kw)

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
        project = f"{_seg(repo.namespace)}/" if repo.namespace else ""
        return f"{project}_apis/git/repositories/{_seg(repo.external_id)}{suffix}"

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
        prefix = f"{_seg(namespace)}/" if namespace else ""
        for raw in _values(self._call("GET", f"{prefix}_apis/git/repositories")):
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
            self._repo_path(repo, "/refs"), params=params, strategy=_REFS_PAGING, extractor=_values
        ):
            yield RemoteBranch(name=_short(raw.get("name")), head_sha=raw.get("objectId"))

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
                extractor=_values,
            ):
                pr = parse_pull_request(raw, repo.web_url)
                if pr.external_id in seen or (updated_since and pr.updated_at < updated_since):
                    continue
                seen.add(pr.external_id)
                yield pr

    def _resolve_sha(self, repo: RemoteRepository, ref: str) -> str:
        if _SHA.match(ref):
            return ref.lower()
        full = _full(ref)
        refs = _values(self._call("GET", self._repo_path(repo, "/refs"), params={"filter": full[5:]}))
        for raw in refs:  # the filter is a prefix match: heads/main also finds heads/main-old
            if raw.get("name") == full and raw.get("objectId"):
                return str(raw["objectId"])
        raise HostNotFound(f"{repo.name} has no branch {_short(ref)!r}")

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        sha = self._resolve_sha(repo, from_ref)
        update = {"name": _full(name), "oldObjectId": ZERO_SHA, "newObjectId": sha}
        results = _values(self._call("POST", self._repo_path(repo, "/refs"), json=[update]))
        result = results[0] if results else {}
        if result.get("success") is not True:
            raise _ref_update_error(repo, _short(name), result)
        return RemoteBranch(name=_short(name), head_sha=result.get("newObjectId") or sha)

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        payload = {"sourceRefName": _full(source), "targetRefName": _full(target), "title": title, "description": body}
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
        granted = Permission.READ
        for bit, level in ((GENERIC_CONTRIBUTE, Permission.WRITE), (MANAGE_PERMISSIONS, Permission.ADMIN)):
            try:
                path = f"_apis/permissions/{GIT_NAMESPACE}/{bit}"
                answer = self._call("GET", path, http=http, params={"tokens": token, "alwaysAllow": "false"})
            except RateLimited:
                raise
            except HostError:  # the token may lack the scope, or the server the API
                return granted
            if not all(v is True for v in _values(answer) or [False]):
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
                body = {
                    "publisherId": "tfs",
                    "eventType": event,
                    "resourceVersion": "1.0",
                    "consumerId": "webHooks",
                    "consumerActionId": "httpRequest",
                    "publisherInputs": {"projectId": project_id, "repository": repo.external_id},
                    "consumerInputs": {"url": url, "basicAuthUsername": HOOK_USERNAME, "basicAuthPassword": secret},
                }
                created.append(str(self._call("POST", "_apis/hooks/subscriptions", json=body)["id"]))
        except Exception:
            with contextlib.suppress(AppError):  # no half-registered hooks; the first error is the one to report
                self.delete_webhook(repo, ",".join(created))
            raise
        return WebhookRegistration(id=",".join(created), url=url)

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        for subscription in filter(None, webhook_id.split(",")):
            try:
                self._call("DELETE", f"_apis/hooks/subscriptions/{_seg(subscription)}")
            except HostNotFound:
                continue  # already gone

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise AuthError("the Azure DevOps delivery has no basic-auth credentials")
        try:
            password = base64.b64decode(encoded.strip(), validate=True).partition(b":")[2]
        except (binascii.Error, ValueError) as e:
            raise AuthError("the Azure DevOps delivery has malformed basic-auth credentials") from e
        if not hmac.compare_digest(password, secret.encode()):
            raise AuthError("the Azure DevOps delivery has the wrong webhook secret")

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        try:
            payload = json.loads(raw_body)
        except ValueError as e:
            raise BadRequest("the Azure DevOps delivery is not JSON") from e
        if not isinstance(payload, dict):
            raise BadRequest("the Azure DevOps delivery is not a JSON object")
        event_type = str(payload.get("eventType") or "")
        resource = payload.get("resource") or {}
        repository = resource.get("repository") or {}
        delivery = payload.get("id") or payload.get("notificationId")
        common: dict[str, Any] = {
            "repository_external_id": repository.get("id"),
            "delivery_id": None if delivery is None else str(delivery),
            "repository_name": repository.get("name"),
        }
        if event_type == "git.push":
            refs = tuple(
                RefUpdate(u.get("name", ""), u.get("oldObjectId"), _sha_or_none(u.get("newObjectId")))
                for u in resource.get("refUpdates") or []
            )
            commits = tuple(str(c["commitId"]) for c in resource.get("commits") or [] if c.get("commitId"))
            return [WebhookEvent(WebhookEventType.PUSH, refs=refs, commit_ids=commits, **common)]
        if event_type.startswith("git.pullrequest.") and "pullRequestId" in resource:
            pr = parse_pull_request(resource, repository.get("webUrl") or repository.get("remoteUrl"))
            action = _PR_ACTIONS.get(str(resource.get("status")))
            if action is None:
                action = PullRequestAction.OPENED if event_type.endswith(".created") else PullRequestAction.UPDATED
            event = WebhookEvent(WebhookEventType.PULL_REQUEST, pull_request=pr, pull_request_action=action, **common)
            return [event]
        return []

    def rate_budget(self) -> RateBudget | None:
        return self._http.budget()

    # --- OAuthFlow (Microsoft Entra ID, v2.0 endpoints) ----------------------------------

    def _oauth_client(self) -> tuple[str, str]:
        client_id, secret = self._oauth
        if self.info.id is ProviderId.AZURE_DEVOPS_SERVER or not client_id or not secret:
            raise Unsupported("OAuth is not configured for this Azure DevOps connection")
        return client_id, secret

    def authorize_url(self, *, state: str, redirect_uri: str) -> str:
        client_id, _ = self._oauth_client()
        query = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "response_mode": "query",
            "scope": " ".join(self._scopes),
            "state": state,
        }
        return f"{self._token_url}/authorize?{urllib.parse.urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str) -> OAuthTokens:
        return self._token_request({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    def refresh(self, refresh_token: str) -> OAuthTokens:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token_request(self, fields: dict[str, str]) -> OAuthTokens:
        # A form post: HostHttpClient only sends JSON bodies, so this one request uses the
        # same SSRF-guarded session directly, with a timeout and our own error mapping.
        client_id, secret = self._oauth_client()
        allow_private = bool(self._client_kw.get("allow_private", False))
        url = f"{self._token_url}/token"
        check_url(url, allow_private=allow_private, resolve=False)
        form = {**fields, "client_id": client_id, "client_secret": secret, "scope": " ".join(self._scopes)}
        with guarded_session(allow_private=allow_private) as session:
            try:
                resp = session.post(url, data=form, timeout=DEFAULT_TIMEOUT, allow_redirects=False)
            except requests.RequestException as e:
                raise HostUnavailable("Microsoft Entra ID could not be reached") from e
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code >= 500:
            raise HostUnavailable(f"Microsoft Entra ID failed with {resp.status_code}")
        if resp.status_code != 200 or not isinstance(data, dict) or not data.get("access_token"):
            error = data.get("error") if isinstance(data, dict) else None
            raise HostAuthError(f"Microsoft Entra ID refused the grant ({resp.status_code}: {error or 'no token'})")
        expires_in = data.get("expires_in")
        return OAuthTokens(
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token"),
            expires_at=datetime.now(UTC) + timedelta(seconds=int(expires_in)) if expires_in else None,
        )


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
