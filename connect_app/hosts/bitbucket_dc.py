"""Bitbucket Data Center / Server (REST 1.0 under ``<server>/rest``).

Auth: HTTP access tokens (personal, project or repository) as Bearer (``AuthType.PAT``),
or username and password as basic auth (``AuthType.PASSWORD``). Repositories are
addressed as ``PROJECTKEY/slug`` (personal projects are ``~USER/slug``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from connect_app.errors import HostAuthError, HostNotFound, HostPermissionDenied, ValidationError
from connect_app.hosts import bitbucket_common as bb
from connect_app.hosts.base import (
    AuthType,
    Capability,
    Credentials,
    GitAuth,
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

NAME = "Bitbucket Data Center"
API = "rest/api/1.0"
BRANCH_UTILS = "rest/branch-utils/1.0"
PAGE_LIMIT = 100
WEBHOOK_EVENTS = (
    "repo:refs_changed",
    "pr:opened",
    "pr:merged",
    "pr:declined",
    "pr:modified",
    "pr:from_ref_updated",
)
_PR_STATES = {"OPEN": PullRequestState.OPEN, "MERGED": PullRequestState.MERGED}
_PR_ACTIONS = {
    "pr:opened": PullRequestAction.OPENED,
    "pr:modified": PullRequestAction.UPDATED,
    "pr:from_ref_updated": PullRequestAction.UPDATED,
    "pr:to_ref_updated": PullRequestAction.UPDATED,
    "pr:merged": PullRequestAction.MERGED,
    "pr:declined": PullRequestAction.DECLINED,
}
PING_EVENT = "diagnostics:ping"


class BitbucketDataCenter:
    info = ProviderInfo(
        id=ProviderId.BITBUCKET_DATACENTER,
        name=NAME,
        auth_types=(AuthType.PAT, AuthType.PASSWORD),
        self_hosted=True,
        capabilities=frozenset(Capability) - {Capability.OAUTH},
    )

    def __init__(self, server_url: str, credentials: Credentials, **client_options: Any) -> None:
        """``server_url`` is what users browse to (``https://git.example.com`` or with a context
        path); ``client_options`` go to ``HostHttpClient``."""
        self.server_url = server_url.rstrip("/")
        self.credentials = credentials
        self._client_options = client_options
        self.http = bb.client_for(self.server_url, credentials, client_options)

    # --- account and repositories -----------------------------------------------

    def validate_credentials(self) -> str:
        # Every authenticated response names the user in X-AUSERNAME; an anonymous one does not.
        response = self.http.request("GET", f"{API}/repos", params={"limit": 1})
        username = (bb.header(response.headers, "X-AUSERNAME") or "").strip()
        if username:
            return username
        if self.credentials.auth_type is AuthType.PASSWORD and self.credentials.username:
            return self.credentials.username  # an older server that does not send the header
        raise HostAuthError(f"{NAME} answered anonymously: the token was not accepted (no X-AUSERNAME in the response)")

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]:
        path = f"{API}/projects/{bb.segment(namespace)}/repos" if namespace else f"{API}/repos"
        for raw in self.http.paginate(path, params={"limit": PAGE_LIMIT}, strategy=bb.DC_PAGES):
            yield self._repository(raw)

    def _repository(self, raw: Any) -> RemoteRepository:
        key = bb.require(bb.text(bb.dig(raw, "project", "key")), "a project key", NAME)
        slug = bb.require(bb.text(bb.dig(raw, "slug")), "a repository slug", NAME)
        clone = bb.link_by_name(bb.dig(raw, "links", "clone"), ("https", "http"))
        repo_id = bb.dig(raw, "id")
        return RemoteRepository(
            external_id=str(repo_id) if isinstance(repo_id, int) else f"{key}/{slug}",
            name=f"{key}/{slug}",
            clone_url=clone or f"{self.server_url}/scm/{key.lower()}/{slug}.git",
            web_url=bb.text(bb.dig(raw, "links", "self", 0, "href")),
            default_branch=bb.text(bb.dig(raw, "defaultBranch")),
            namespace=key,
            private=bb.dig(raw, "public") is not True,
        )

    def clone_url(self, repo: RemoteRepository) -> str:
        return repo.clone_url

    def git_auth(self) -> GitAuth:
        return bb.git_auth_for(self.credentials, token_username=None)

    def _repo_path(self, repo: RemoteRepository, api: str = API) -> str:
        key, slug = bb.split_full_name(repo.name)
        return f"{api}/projects/{bb.segment(key)}/repos/{bb.segment(slug)}"

    # --- branches and pull requests ---------------------------------------------

    def list_branches(self, repo: RemoteRepository) -> Iterator[RemoteBranch]:
        path = f"{self._repo_path(repo)}/branches"
        for raw in self.http.paginate(path, params={"limit": PAGE_LIMIT}, strategy=bb.DC_PAGES):
            yield self._branch(raw)

    def _branch(self, raw: Any) -> RemoteBranch:
        name = bb.text(bb.dig(raw, "displayId")) or bb.branch_name(bb.text(bb.dig(raw, "id")) or "")
        return RemoteBranch(
            name=bb.require(name, "a branch name", NAME),
            head_sha=bb.text(bb.dig(raw, "latestCommit")) or bb.text(bb.dig(raw, "latestChangeset")),
        )

    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]:
        # NEWEST lists the most recently updated first, so an incremental sync stops early.
        params = {"state": "ALL", "order": "NEWEST", "limit": 50}
        pages = self.http.paginate(f"{self._repo_path(repo)}/pull-requests", params=params, strategy=bb.DC_PAGES)
        yield from bb.updated_since(map(self._pull_request, pages), updated_since, bb.pull_request_updated)

    def _pull_request(self, raw: Any) -> PullRequest:
        number = bb.require(bb.dig(raw, "id"), "a pull request id", NAME)
        updated = bb.parse_time(bb.dig(raw, "updatedDate"))
        created = bb.parse_time(bb.dig(raw, "createdDate"))
        user = bb.dig(raw, "author", "user")
        return PullRequest(
            external_id=str(number),
            title=bb.text(bb.dig(raw, "title")) or "",
            state=_PR_STATES.get(str(bb.dig(raw, "state")), PullRequestState.DECLINED),
            source_branch=_ref_name(bb.dig(raw, "fromRef")),
            target_branch=_ref_name(bb.dig(raw, "toRef")),
            url=bb.text(bb.dig(raw, "links", "self", 0, "href")) or "",
            updated_at=bb.require(updated or created, "an update time", NAME),
            description=bb.text(bb.dig(raw, "description")) or "",
            author=bb.text(bb.dig(user, "displayName")) or bb.text(bb.dig(user, "name")),
            created_at=created,
        )

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        body = {"name": bb.branch_name(name), "startPoint": from_ref}
        raw = self.http.post_json(f"{self._repo_path(repo, BRANCH_UTILS)}/branches", body)
        return self._branch(raw)

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        key, slug = bb.split_full_name(repo.name)
        repository = {"slug": slug, "project": {"key": key}}
        payload = {
            "title": title,
            "description": body,
            "fromRef": {"id": _full_ref(source), "repository": repository},
            "toRef": {"id": _full_ref(target), "repository": repository},
        }
        return self._pull_request(self.http.post_json(f"{self._repo_path(repo)}/pull-requests", payload))

    # --- permissions ------------------------------------------------------------

    def repository_permission(self, repo: RemoteRepository, user: Credentials) -> Permission:
        key, slug = bb.split_full_name(repo.name)
        client = bb.user_client(self.server_url, user, self._client_options)
        try:
            try:
                raw = client.get_json(self._repo_path(repo))
            except (HostNotFound, HostPermissionDenied):
                return Permission.NONE
            # The repos filter matches the display name, so ask with it and compare slugs.
            name = bb.text(bb.dig(raw, "name")) or slug
            for permission, level in (("REPO_ADMIN", Permission.ADMIN), ("REPO_WRITE", Permission.WRITE)):
                params = {"projectkey": key, "name": name, "permission": permission, "limit": PAGE_LIMIT}
                for found in client.paginate(f"{API}/repos", params=params, strategy=bb.DC_PAGES, max_pages=1):
                    if bb.dig(found, "slug") == slug and bb.dig(found, "project", "key") == key:
                        return level
            return Permission.READ
        finally:
            client.close()

    # --- webhooks ---------------------------------------------------------------

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        body = {
            "name": "Git Connect for Jira",
            "url": url,
            "active": True,
            "events": list(WEBHOOK_EVENTS),
            "configuration": {"secret": secret},
        }
        raw = self.http.post_json(f"{self._repo_path(repo)}/webhooks", body)
        hook_id = bb.dig(raw, "id")
        if not isinstance(hook_id, int | str) or isinstance(hook_id, bool) or hook_id == "":
            hook_id = bb.require(None, "a webhook id", NAME)
        return WebhookRegistration(id=str(hook_id), url=url)

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        if not webhook_id.isdigit():
            raise ValidationError(f"{NAME} webhook ids are numbers, got {webhook_id!r}")
        self.http.delete(f"{self._repo_path(repo)}/webhooks/{webhook_id}")

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        bb.verify_hub_signature(headers, raw_body, secret, host_name=NAME)

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        event_key = (bb.header(headers, "X-Event-Key") or "").strip()
        delivery = bb.header(headers, "X-Request-Id")
        if event_key == PING_EVENT:
            return [WebhookEvent(type=WebhookEventType.PING, repository_external_id=None, delivery_id=delivery)]
        if event_key != "repo:refs_changed" and event_key not in _PR_ACTIONS:
            return []
        body = bb.webhook_json(raw_body, host_name=NAME)
        if event_key == "repo:refs_changed":
            repository = bb.dig(body, "repository")
            refs, commits = _ref_changes(bb.dig(body, "changes"))
            return [
                WebhookEvent(
                    type=WebhookEventType.PUSH,
                    repository_external_id=_repo_id(repository),
                    delivery_id=delivery,
                    refs=refs,
                    commit_ids=commits,
                    repository_name=_repo_name(repository),
                )
            ]
        pull = bb.dig(body, "pullRequest")
        repository = bb.dig(pull, "toRef", "repository")
        return [
            WebhookEvent(
                type=WebhookEventType.PULL_REQUEST,
                repository_external_id=_repo_id(repository),
                delivery_id=delivery,
                pull_request=self._pull_request(pull),
                pull_request_action=_PR_ACTIONS[event_key],
                repository_name=_repo_name(repository),
            )
        ]

    def rate_budget(self) -> RateBudget | None:
        return self.http.budget()


def _full_ref(ref: str) -> str:
    return ref if ref.startswith("refs/") else f"refs/heads/{ref}"


def _ref_name(ref: Any) -> str:
    return bb.text(bb.dig(ref, "displayId")) or bb.branch_name(bb.text(bb.dig(ref, "id")) or "")


def _repo_id(repository: Any) -> str | None:
    repo_id = bb.dig(repository, "id")
    return str(repo_id) if isinstance(repo_id, int) and not isinstance(repo_id, bool) else None


def _repo_name(repository: Any) -> str | None:
    key, slug = bb.text(bb.dig(repository, "project", "key")), bb.text(bb.dig(repository, "slug"))
    return f"{key}/{slug}" if key and slug else None


def _sha(value: Any) -> str | None:
    sha = bb.text(value)
    return None if sha is None or sha == bb.NULL_SHA else sha


def _ref_changes(changes: Any) -> tuple[tuple[RefUpdate, ...], tuple[str, ...]]:
    refs: list[RefUpdate] = []
    commits: list[str] = []
    for change in changes if isinstance(changes, list) else []:
        ref = bb.text(bb.dig(change, "refId")) or bb.text(bb.dig(change, "ref", "id"))
        if ref is None:
            continue
        kind = str(bb.dig(change, "type"))
        before = None if kind == "ADD" else _sha(bb.dig(change, "fromHash"))
        after = None if kind == "DELETE" else _sha(bb.dig(change, "toHash"))
        refs.append(RefUpdate(ref, before, after))
        if after and after not in commits:
            commits.append(after)
    return tuple(refs), tuple(commits)
