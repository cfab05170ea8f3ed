"""GitLab.com and GitLab self-managed (REST API v4), with OAuth.

Tokens: a personal/project/group access token goes in ``PRIVATE-TOKEN`` (or as a
Bearer token when ``extra["header"] == "bearer"``); OAuth access tokens always as
Bearer. Webhooks are authenticated by the ``X-Gitlab-Token`` secret and, where the
instance signs deliveries (``webhook-signature``, Standard Webhooks format), also
by that signature, which carries a timestamp and so defeats replays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from connect_app.errors import (
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
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
from connect_app.hosts.gitlab_events import (
    branch,
    enc,
    merge_request,
    parse_delivery,
    signing_token_for,
    verify_delivery,
)
from connect_app.hosts.http import HostHttpClient
from connect_app.hosts.http_errors import HostStatusError
from connect_app.hosts.oauth import OAuthCodeFlow, OAuthCodeFlowHost
from connect_app.hosts.pagination import GITLAB_NEXT_PAGE, LINK_HEADER, PageRequest, Params

GITLAB_COM_API = "https://gitlab.com/api/v4"
PAGE_SIZE = 100
KEYSET_REFUSED = frozenset({400, 405})  # see GitLabHost._keyset_or_offset

log = logging.getLogger(__name__)

# Which token scopes each kind of work needs; any one scope of a set is enough.
INDEX_SCOPES = ({"api", "read_api"}, {"api", "read_repository", "write_repository"})
WRITE_SCOPES = ({"api"}, {"api", "write_repository"})

_CAPABILITIES = frozenset(Capability)
GITLAB_INFO = ProviderInfo(
    id=ProviderId.GITLAB,
    name="GitLab.com",
    auth_types=(AuthType.PAT, AuthType.OAUTH),
    self_hosted=False,
    capabilities=_CAPABILITIES,
    default_base_url=GITLAB_COM_API,
)
GITLAB_SELF_MANAGED_INFO = ProviderInfo(
    id=ProviderId.GITLAB_SELF_MANAGED,
    name="GitLab self-managed",
    auth_types=(AuthType.PAT, AuthType.OAUTH),
    self_hosted=True,
    capabilities=_CAPABILITIES,
)


class LinkOrNextPage:
    """GitLab sends ``Link`` (offset and keyset pagination); some proxies strip it,
    and then ``X-Next-Page`` still says where the next offset page is."""

    items_key: str | None = None

    def first(self, path: str, params: Params | None) -> PageRequest:
        return PageRequest(path, params)

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        by_link = LINK_HEADER.next_page(current, headers, body, item_count)
        if by_link is not None or (current.params or {}).get("pagination") == "keyset":
            return by_link
        return GITLAB_NEXT_PAGE.next_page(current, headers, body, item_count)


GITLAB_PAGES = LinkOrNextPage()


def api_base_for(server_url: str) -> str:
    """``https://git.example.com`` -> ``https://git.example.com/api/v4``."""
    base = server_url.rstrip("/")
    return base if base.endswith("/api/v4") else f"{base}/api/v4"


def auth_headers(credentials: Credentials) -> dict[str, str]:
    if not credentials.token:
        raise HostAuthError("GitLab needs an access token")
    bearer = credentials.auth_type is AuthType.OAUTH or credentials.extra.get("header") == "bearer"
    return {"Authorization": f"Bearer {credentials.token}"} if bearer else {"PRIVATE-TOKEN": credentials.token}


def access_to_permission(level: int) -> Permission:
    if level >= 40:
        return Permission.ADMIN
    if level >= 30:
        return Permission.WRITE
    return Permission.READ if level >= 10 else Permission.NONE


def _missing(scopes: set[str], needs: tuple[set[str], ...]) -> list[str]:
    return [" or ".join(sorted(need)) for need in needs if not scopes & need]


class GitLabHost(OAuthCodeFlowHost):
    """One GitLab instance with one credential. See the module docstring."""

    info: ProviderInfo = GITLAB_INFO

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str = GITLAB_COM_API,
        client_id: str | None = None,
        client_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        **http_options: Any,
    ) -> None:
        self.base_url = api_base_for(base_url)
        self.instance_url = self.base_url.removesuffix("/api/v4")
        self._credentials = credentials
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._http_options: dict[str, Any] = {"clock": clock, **http_options}
        self._http = HostHttpClient(self.base_url, auth=auth_headers(credentials), **self._http_options)
        self.scope_warnings: list[str] = []

    # --- account ----------------------------------------------------------------

    def validate_credentials(self) -> str:
        user = self._http.get_json("/user")
        username = user.get("username") if isinstance(user, dict) else None
        if not isinstance(username, str):
            raise HostError("GitLab did not say which user the token belongs to", code="host_bad_response")
        scopes = self.token_scopes()
        self.scope_warnings = []
        if scopes is not None:
            missing = _missing(scopes, INDEX_SCOPES)
            if missing:
                raise HostPermissionDenied(
                    f"The GitLab token of {username} cannot index repositories: it needs scope "
                    + " and ".join(missing)
                    + f" (it has: {', '.join(sorted(scopes)) or 'none'})."
                )
            for need in _missing(scopes, WRITE_SCOPES):
                self.scope_warnings.append(f"Creating branches, merge requests and webhooks needs scope {need}.")
        return username

    def token_scopes(self) -> set[str] | None:
        """The scopes of a personal access token, or None when GitLab cannot say
        (OAuth tokens, instances older than 15.5)."""
        try:
            info = self._http.get_json("/personal_access_tokens/self")
        except (HostNotFound, HostAuthError, HostPermissionDenied):
            return None
        scopes = info.get("scopes") if isinstance(info, dict) else None
        return {str(s) for s in scopes} if isinstance(scopes, list) else None

    # --- repositories -------------------------------------------------------------

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]:
        params: dict[str, Any] = {"simple": "true", "per_page": PAGE_SIZE, "order_by": "id", "sort": "asc"}
        if namespace:
            params["include_subgroups"] = "true"
            items = self._http.paginate(f"/groups/{enc(namespace)}/projects", params=params, strategy=GITLAB_PAGES)
        else:
            params["membership"] = "true"
            items = self._keyset_or_offset("/projects", params)
        for item in items:
            yield self._repository(item)

    def _keyset_or_offset(self, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """Keyset pages where GitLab offers them for this request, else offset pages.

        GitLab answers ``405 {"error": "Keyset pagination is not yet available for this
        type of request"}`` when a resource or ordering has no keyset support (REST API
        docs, "Supported resources"; ``lib/api/helpers/pagination_strategies.rb``); a 400
        means something in front of it, or an older version, rejects the parameter. Either
        way the first page is asked again by offset; a refusal after items were yielded is
        an error, since restarting would repeat them.
        """
        yielded = False
        try:
            for item in self._http.paginate(path, params={**params, "pagination": "keyset"}, strategy=GITLAB_PAGES):
                yielded = True
                yield item
            return
        except HostStatusError as e:
            if yielded or e.host_status not in KEYSET_REFUSED:
                raise
            refused = e.host_status
        log.info("%s refused keyset pagination for %s (%s); paging by offset", self._http.host, path, refused)
        yield from self._http.paginate(path, params=params, strategy=GITLAB_PAGES)

    def _repository(self, item: Mapping[str, Any]) -> RemoteRepository:
        full_name = str(item["path_with_namespace"])
        namespace = item.get("namespace")
        return RemoteRepository(
            external_id=str(item["id"]),
            name=full_name,
            clone_url=str(item.get("http_url_to_repo") or f"{self.instance_url}/{full_name}.git"),
            web_url=item.get("web_url"),
            default_branch=item.get("default_branch"),
            namespace=namespace.get("full_path") if isinstance(namespace, dict) else full_name.rpartition("/")[0],
            private=item.get("visibility", "private") != "public",
        )

    def clone_url(self, repo: RemoteRepository) -> str:
        return repo.clone_url

    def git_auth(self) -> GitAuth:
        # GitLab accepts any user name with a token as the password; "oauth2" is what it documents.
        return GitAuth(username="oauth2", password=self._credentials.token)

    def list_branches(self, repo: RemoteRepository) -> Iterator[RemoteBranch]:
        path = f"/projects/{enc(repo.external_id)}/repository/branches"
        for item in self._http.paginate(path, params={"per_page": PAGE_SIZE}, strategy=GITLAB_PAGES):
            yield branch(item)

    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]:
        params: dict[str, Any] = {"state": "all", "order_by": "updated_at", "sort": "desc", "per_page": PAGE_SIZE}
        if updated_since is not None:
            params["updated_after"] = updated_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = f"/projects/{enc(repo.external_id)}/merge_requests"
        for item in self._http.paginate(path, params=params, strategy=GITLAB_PAGES):
            yield merge_request(item)

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        path = f"/projects/{enc(repo.external_id)}/repository/branches"
        return branch(self._http.request("POST", path, params={"branch": name, "ref": from_ref}).json())

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        payload = {"source_branch": source, "target_branch": target, "title": title, "description": body}
        return merge_request(self._http.post_json(f"/projects/{enc(repo.external_id)}/merge_requests", payload))

    def repository_permission(self, repo: RemoteRepository, user: Credentials) -> Permission:
        client = HostHttpClient(self.base_url, auth=auth_headers(user), **self._http_options)
        try:
            project = client.get_json(f"/projects/{enc(repo.external_id)}")
        except (HostNotFound, HostPermissionDenied):
            return Permission.NONE
        finally:
            client.close()
        permissions = project.get("permissions") if isinstance(project, dict) else None
        levels = [0]
        for key in ("project_access", "group_access"):
            access = permissions.get(key) if isinstance(permissions, dict) else None
            if isinstance(access, dict) and isinstance(access.get("access_level"), int):
                levels.append(access["access_level"])
        # a project the token can read without membership (public/internal) is still readable
        return max(access_to_permission(max(levels)), Permission.READ)

    # --- webhooks -----------------------------------------------------------------

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        payload = {
            "url": url,
            "token": secret,
            "push_events": True,
            "tag_push_events": True,
            "merge_requests_events": True,
            "enable_ssl_verification": True,
            # ignored by instances without signed webhooks; then X-Gitlab-Token alone is checked
            "signing_token": signing_token_for(secret),
        }
        hook = self._http.post_json(f"/projects/{enc(repo.external_id)}/hooks", payload)
        return WebhookRegistration(id=str(hook["id"]), url=str(hook.get("url", url)))

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        self._http.delete(f"/projects/{enc(repo.external_id)}/hooks/{enc(webhook_id)}")

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        verify_delivery(headers, raw_body, secret, now=self._clock())

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        return parse_delivery(headers, raw_body)

    def rate_budget(self) -> RateBudget | None:
        return self._http.budget()

    # --- OAuth ----------------------------------------------------------------------

    def oauth_flow(self) -> OAuthCodeFlow:
        """GitLab's documented authorization code flow (docs.gitlab.com/api/oauth2/): the
        application id and secret in the form body, space-separated scopes, and
        ``expires_in`` counted from the response's ``created_at``; its refresh example
        repeats the original ``redirect_uri`` (``refresh(..., redirect_uri=)``)."""
        return OAuthCodeFlow(
            name="GitLab",
            authorize_endpoint=f"{self.instance_url}/oauth/authorize",
            token_endpoint=f"{self.instance_url}/oauth/token",
            client_id=self._client_id,
            client_secret=self._client_secret,
            scopes=("api",),
            issued_at_field="created_at",
            client_label="application id and secret",
            http_options=self._http_options,
            clock=self._clock,
        )


class GitLabSelfManagedHost(GitLabHost):
    info = GITLAB_SELF_MANAGED_INFO

    def __init__(self, credentials: Credentials, *, base_url: str, **kw: Any) -> None:
        super().__init__(credentials, base_url=base_url, **kw)
