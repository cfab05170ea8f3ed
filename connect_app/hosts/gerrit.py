"""Gerrit Code Review over its REST API.

Authenticated calls go to ``/a/...`` with the account's HTTP password (or token)
as basic auth. Every JSON body starts with the XSSI guard ``)]}'``, which the shared
client strips (its ``decode_body`` hook) before parsing, pages included. Changes
stand in for pull requests (NEW -> OPEN, MERGED, ABANDONED -> DECLINED). Gerrit
creates a review when someone pushes to ``refs/for/<branch>``, so there is no
"create pull request" call, and webhooks exist only through the optional
``webhooks`` plugin, which this provider does not manage (an integration polls
instead).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from requests.auth import HTTPBasicAuth

from connect_app.errors import (
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    Unsupported,
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
    PullRequestState,
    RateBudget,
    RemoteBranch,
    RemoteRepository,
    WebhookEvent,
    WebhookRegistration,
)
from connect_app.hosts.http import HostHttpClient
from connect_app.hosts.pagination import TopSkipPagination

XSSI_PREFIX = b")]}'"
PAGE_SIZE = 100
BRANCH_PREFIX = "refs/heads/"

GERRIT_INFO = ProviderInfo(
    id=ProviderId.GERRIT,
    name="Gerrit Code Review",
    auth_types=(AuthType.PASSWORD,),
    self_hosted=True,
    capabilities=frozenset(
        {
            Capability.LIST_REPOSITORIES,
            Capability.PULL_REQUESTS,
            Capability.CREATE_BRANCH,
            Capability.USER_PERMISSIONS,
        }
    ),
)

_STATES = {
    "NEW": PullRequestState.OPEN,
    "MERGED": PullRequestState.MERGED,
    "ABANDONED": PullRequestState.DECLINED,
}
_NO_WEBHOOKS = (
    "Gerrit has no built-in webhooks: the optional 'webhooks' plugin must be installed and configured "
    "by a Gerrit administrator; this integration polls Gerrit instead."
)


def strip_xssi(body: bytes) -> bytes:
    text = body.lstrip()
    return text[len(XSSI_PREFIX) :] if text.startswith(XSSI_PREFIX) else text


def gerrit_pages(page_size: int = PAGE_SIZE) -> TopSkipPagination:
    """Gerrit's ``n`` (limit) / ``S`` (skip) paging: the last page is a short one, and
    change queries also mark more results with ``_more_changes`` on the last item."""
    return TopSkipPagination(page_size, items_key=None, top_param="n", skip_param="S", more_flag="_more_changes")


def _dict_items(body: Any) -> list[Any]:
    """``/projects/`` answers a map of name to ProjectInfo: its (name, info) pairs."""
    if not isinstance(body, dict):
        raise HostError("Gerrit answered with an unexpected page shape", code="host_bad_response")
    return list(body.items())


def parse_timestamp(value: Any) -> datetime | None:
    """Gerrit timestamps are UTC, ``2012-04-25 00:52:25.580000000`` (nanoseconds)."""
    if not isinstance(value, str) or len(value) < 19:
        return None
    try:
        return datetime.strptime(
            value[:26], "%Y-%m-%d %H:%M:%S.%f" if len(value) > 19 else "%Y-%m-%d %H:%M:%S"
        ).replace(tzinfo=UTC)
    except ValueError:
        return None


def state_of(status: str) -> PullRequestState:
    return _STATES.get(status, PullRequestState.OPEN)


def _enc(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class GerritHost:
    """One Gerrit server with one account (username + HTTP password/token)."""

    info: ProviderInfo = GERRIT_INFO

    def __init__(self, credentials: Credentials, *, base_url: str, **http_options: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._http_options = http_options
        self._http = self._client(credentials)

    def _client(self, credentials: Credentials) -> HostHttpClient:
        return HostHttpClient(self.base_url, auth=_basic(credentials), decode_body=strip_xssi, **self._http_options)

    def _pages(self, path: str, params: Mapping[str, Any], *, dict_body: bool = False) -> Iterator[Any]:
        extractor = _dict_items if dict_body else None
        return self._http.paginate(path, params=params, strategy=gerrit_pages(PAGE_SIZE), extractor=extractor)

    # --- account ----------------------------------------------------------------------

    def validate_credentials(self) -> str:
        account = self._http.get_json("/a/accounts/self")
        if not isinstance(account, dict):
            raise HostError("Gerrit did not describe the account", code="host_bad_response")
        for key in ("username", "email", "name"):
            if isinstance(account.get(key), str) and account[key]:
                return str(account[key])
        return str(account.get("_account_id", ""))

    # --- repositories --------------------------------------------------------------------

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]:
        params: dict[str, Any] = {"type": "CODE"}
        if namespace:
            params["p"] = namespace.rstrip("/") + "/"
        for name, _info in self._pages("/a/projects/?d", params, dict_body=True):
            yield self._repository(str(name))

    def _repository(self, name: str) -> RemoteRepository:
        return RemoteRepository(
            external_id=name,
            name=name,
            clone_url=f"{self.base_url}/a/{name}",
            web_url=f"{self.base_url}/admin/repos/{_enc(name)}",
            namespace=name.rpartition("/")[0] or None,
        )

    def clone_url(self, repo: RemoteRepository) -> str:
        return repo.clone_url

    def git_auth(self) -> GitAuth:
        return GitAuth(username=self._credentials.username, password=self._credentials.password)

    def list_branches(self, repo: RemoteRepository) -> Iterator[RemoteBranch]:
        for item in self._pages(f"/a/projects/{_enc(repo.external_id)}/branches/", {}):
            branch = _branch(item)
            if branch is not None:
                yield branch

    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]:
        project = repo.external_id
        query = f'project:"{project}"' if any(c.isspace() or c == '"' for c in project) else f"project:{project}"
        if updated_since is not None:
            query += f' after:"{updated_since.astimezone(UTC):%Y-%m-%d %H:%M:%S} +0000"'
        for item in self._pages("/a/changes/", {"q": query, "o": "CURRENT_REVISION"}):
            yield self._change(item)

    def _change(self, item: Mapping[str, Any]) -> PullRequest:
        number = str(item["_number"])
        current = item.get("current_revision")
        revisions = item.get("revisions")
        revision = revisions.get(current) if isinstance(revisions, dict) and current else None
        source = revision.get("ref") if isinstance(revision, dict) else None
        owner = item.get("owner")
        author = None
        if isinstance(owner, dict):
            author = next((str(owner[k]) for k in ("username", "name", "email") if owner.get(k)), None)
        updated = parse_timestamp(item.get("updated")) or parse_timestamp(item.get("created"))
        if updated is None:
            raise HostError("Gerrit sent a change without dates", code="host_bad_response")
        return PullRequest(
            external_id=number,
            title=str(item.get("subject") or ""),
            state=state_of(str(item.get("status"))),
            source_branch=str(source or current or ""),
            target_branch=str(item.get("branch") or ""),
            url=f"{self.base_url}/c/{item.get('project')}/+/{number}",
            updated_at=updated,
            author=author,
            created_at=parse_timestamp(item.get("created")),
        )

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        path = f"/a/projects/{_enc(repo.external_id)}/branches/{_enc(name)}"
        branch = _branch(self._http.put_json(path, {"revision": from_ref}))
        if branch is None:
            raise HostError("Gerrit did not describe the new branch", code="host_bad_response")
        return branch

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        raise Unsupported(f"Gerrit creates a review when commits are pushed to refs/for/{target}; it has no API for it")

    def repository_permission(self, repo: RemoteRepository, user: Credentials) -> Permission:
        client = self._client(user)
        try:
            access = client.get_json(f"/a/projects/{_enc(repo.external_id)}/access")
        except (HostNotFound, HostPermissionDenied):
            return Permission.NONE
        finally:
            client.close()
        if not isinstance(access, dict):
            return Permission.READ
        if access.get("is_owner") is True:
            return Permission.ADMIN
        return Permission.WRITE if access.get("can_upload") is True else Permission.READ

    # --- webhooks (not offered) ---------------------------------------------------------

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        raise Unsupported(_NO_WEBHOOKS)

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        raise Unsupported(_NO_WEBHOOKS)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        raise Unsupported(_NO_WEBHOOKS)

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        raise Unsupported(_NO_WEBHOOKS)

    def rate_budget(self) -> RateBudget | None:
        return self._http.budget()


def _basic(credentials: Credentials) -> HTTPBasicAuth:
    secret = credentials.password or credentials.token
    if not credentials.username or not secret:
        raise HostAuthError("Gerrit needs a username and an HTTP password or token")
    return HTTPBasicAuth(credentials.username, secret)


def _branch(item: Any) -> RemoteBranch | None:
    ref = item.get("ref") if isinstance(item, dict) else None
    if not isinstance(ref, str) or not ref.startswith(BRANCH_PREFIX):
        return None  # HEAD, refs/meta/config and other non-branch refs
    return RemoteBranch(name=ref[len(BRANCH_PREFIX) :], head_sha=item.get("revision"))
