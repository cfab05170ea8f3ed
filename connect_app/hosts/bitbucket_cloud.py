"""Bitbucket Cloud (REST 2.0, ``https://api.bitbucket.org/2.0``).

Auth: workspace/project/repository access tokens and OAuth access tokens as Bearer
(``AuthType.PAT`` / ``OAUTH``), app passwords or Atlassian API tokens as basic auth
(``AuthType.PASSWORD``). Cross-workspace endpoints (``/repositories?role=member``,
``/user/permissions/repositories``) are deprecated in the API description, so we go
through the workspace-scoped ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from connect_app.errors import HostAuthError, HostNotFound, HostPermissionDenied
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
from connect_app.hosts.oauth import ClientAuth, OAuthCodeFlow, OAuthCodeFlowHost

API_URL = "https://api.bitbucket.org/2.0"
OAUTH_URL = "https://bitbucket.org/site/oauth2"
NAME = "Bitbucket Cloud"
TOKEN_GIT_USERNAME = "x-token-auth"  # noqa: S105 - how Bitbucket wants access tokens handed to git
PAGE_LEN = 50  # the maximum for most 2.0 collections
WEBHOOK_EVENTS = (
    "repo:push",
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
)
_PR_STATES = {"OPEN": PullRequestState.OPEN, "MERGED": PullRequestState.MERGED}
_PR_ACTIONS = {
    "pullrequest:created": PullRequestAction.OPENED,
    "pullrequest:updated": PullRequestAction.UPDATED,
    "pullrequest:fulfilled": PullRequestAction.MERGED,
    "pullrequest:rejected": PullRequestAction.DECLINED,
}
_PERMISSIONS = {"read": Permission.READ, "write": Permission.WRITE, "admin": Permission.ADMIN}
_REF_PREFIX = {"branch": "refs/heads/", "tag": "refs/tags/", "annotated_tag": "refs/tags/"}


class BitbucketCloud(OAuthCodeFlowHost):
    info = ProviderInfo(
        id=ProviderId.BITBUCKET_CLOUD,
        name=NAME,
        auth_types=(AuthType.PAT, AuthType.OAUTH, AuthType.PASSWORD),
        self_hosted=False,
        capabilities=frozenset(Capability),
        default_base_url=API_URL,
    )

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str = API_URL,
        workspace: str | None = None,
        oauth_client_id: str | None = None,
        oauth_client_secret: str | None = None,
        oauth_url: str = OAUTH_URL,
        **client_options: Any,
    ) -> None:
        """``client_options`` go to ``HostHttpClient`` (budget store, ETag cache, allow_private...)."""
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.workspace = workspace
        self._client_options = client_options
        self.http = bb.client_for(self.base_url, credentials, client_options)
        self._oauth_client_id = oauth_client_id
        self._oauth_client_secret = oauth_client_secret
        self._oauth_url = oauth_url.rstrip("/")

    # --- account and repositories -----------------------------------------------

    def validate_credentials(self) -> str:
        try:
            user = self.http.get_json("user")
        except (HostAuthError, HostPermissionDenied) as e:
            # Workspace and repository access tokens are not a user and cannot read /user.
            if self.credentials.auth_type is AuthType.PASSWORD or not self.workspace:
                raise HostAuthError(
                    f"{e.message} Access tokens cannot read /user: set the workspace to check them against."
                ) from e
            self.http.get_json(f"repositories/{bb.segment(self.workspace)}", params={"pagelen": 1})
            return f"access token for {self.workspace}"
        name = bb.text(bb.dig(user, "display_name")) or bb.text(bb.dig(user, "username"))
        return bb.require(name or bb.text(bb.dig(user, "uuid")), "the account name", NAME)

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]:
        workspace = namespace or self.workspace
        if workspace is not None:
            yield from self._workspace_repositories(workspace, member_only=False)
            return
        workspaces = self.http.paginate("user/workspaces", params={"pagelen": 100}, strategy=bb.CLOUD_PAGES)
        for access in workspaces:
            slug = bb.text(bb.dig(access, "workspace", "slug"))
            if slug:
                yield from self._workspace_repositories(slug, member_only=True)

    def _workspace_repositories(self, workspace: str, *, member_only: bool) -> Iterator[RemoteRepository]:
        params: dict[str, Any] = {"pagelen": 100}
        if member_only:
            params["role"] = "member"
        for raw in self.http.paginate(f"repositories/{bb.segment(workspace)}", params=params, strategy=bb.CLOUD_PAGES):
            yield self._repository(raw, workspace)

    def _repository(self, raw: Any, workspace: str | None = None) -> RemoteRepository:
        ws = bb.text(bb.dig(raw, "workspace", "slug")) or workspace
        slug = bb.text(bb.dig(raw, "slug"))
        full_name = bb.text(bb.dig(raw, "full_name"))
        if full_name is None or "/" not in full_name:
            full_name = f"{ws}/{slug}" if ws and slug else full_name
        full_name = bb.require(full_name, "a repository name", NAME)
        clone = bb.link_by_name(bb.dig(raw, "links", "clone"), ("https", "http"))
        return RemoteRepository(
            external_id=bb.text(bb.dig(raw, "uuid")) or full_name,
            name=full_name,
            clone_url=clone or f"https://bitbucket.org/{full_name}.git",
            web_url=bb.text(bb.dig(raw, "links", "html", "href")),
            default_branch=bb.text(bb.dig(raw, "mainbranch", "name")),
            namespace=ws,
            private=raw.get("is_private") is not False if isinstance(raw, dict) else True,
        )

    def clone_url(self, repo: RemoteRepository) -> str:
        return repo.clone_url

    def git_auth(self) -> GitAuth:
        return bb.git_auth_for(self.credentials, token_username=TOKEN_GIT_USERNAME)

    def _repo_path(self, repo: RemoteRepository) -> str:
        workspace, slug = bb.split_full_name(repo.name)
        return f"repositories/{bb.segment(workspace)}/{bb.segment(slug)}"

    # --- branches and pull requests ---------------------------------------------

    def list_branches(self, repo: RemoteRepository) -> Iterator[RemoteBranch]:
        path = f"{self._repo_path(repo)}/refs/branches"
        for raw in self.http.paginate(path, params={"pagelen": 100}, strategy=bb.CLOUD_PAGES):
            yield self._branch(raw)

    def _branch(self, raw: Any) -> RemoteBranch:
        return RemoteBranch(
            name=bb.require(bb.text(bb.dig(raw, "name")), "a branch name", NAME),
            head_sha=bb.text(bb.dig(raw, "target", "hash")),
            url=bb.text(bb.dig(raw, "links", "html", "href")),
        )

    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]:
        params = {
            "state": ["OPEN", "MERGED", "DECLINED", "SUPERSEDED"],
            "sort": "-updated_on",
            "pagelen": PAGE_LEN,
        }
        pages = self.http.paginate(f"{self._repo_path(repo)}/pullrequests", params=params, strategy=bb.CLOUD_PAGES)
        yield from bb.updated_since(map(self._pull_request, pages), updated_since, bb.pull_request_updated)

    def _pull_request(self, raw: Any) -> PullRequest:
        number = bb.require(bb.dig(raw, "id"), "a pull request id", NAME)
        updated = bb.parse_time(bb.dig(raw, "updated_on"))
        created = bb.parse_time(bb.dig(raw, "created_on"))
        author = bb.dig(raw, "author")
        return PullRequest(
            external_id=str(number),
            title=bb.text(bb.dig(raw, "title")) or "",
            state=_PR_STATES.get(str(bb.dig(raw, "state")), PullRequestState.DECLINED),  # SUPERSEDED too
            source_branch=bb.text(bb.dig(raw, "source", "branch", "name")) or "",
            target_branch=bb.text(bb.dig(raw, "destination", "branch", "name")) or "",
            url=bb.text(bb.dig(raw, "links", "html", "href")) or "",
            updated_at=bb.require(updated or created, "an update time", NAME),
            description=bb.text(bb.dig(raw, "description")) or "",
            author=bb.text(bb.dig(author, "display_name")) or bb.text(bb.dig(author, "nickname")),
            created_at=created,
        )

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        target = from_ref if bb.looks_like_sha(from_ref) else self._branch_head(repo, bb.branch_name(from_ref))
        body = {"name": bb.branch_name(name), "target": {"hash": target}}
        return self._branch(self.http.post_json(f"{self._repo_path(repo)}/refs/branches", body))

    def _branch_head(self, repo: RemoteRepository, branch: str) -> str:
        raw = self.http.get_json(f"{self._repo_path(repo)}/refs/branches/{bb.segment(branch)}")
        return str(bb.require(bb.text(bb.dig(raw, "target", "hash")), f"the head of {branch}", NAME))

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        payload = {
            "type": "pullrequest",
            "title": title,
            "description": body,
            "source": {"branch": {"name": bb.branch_name(source)}},
            "destination": {"branch": {"name": bb.branch_name(target)}},
        }
        return self._pull_request(self.http.post_json(f"{self._repo_path(repo)}/pullrequests", payload))

    # --- permissions ------------------------------------------------------------

    def repository_permission(self, repo: RemoteRepository, user: Credentials) -> Permission:
        workspace, _slug = bb.split_full_name(repo.name)
        client = bb.user_client(self.base_url, user, self._client_options)
        try:
            query = f'repository.full_name="{repo.name}"'
            path = f"user/workspaces/{bb.segment(workspace)}/permissions/repositories"
            found = [
                _PERMISSIONS.get(str(bb.dig(p, "permission")), Permission.NONE)
                for p in client.paginate(path, params={"q": query}, strategy=bb.CLOUD_PAGES, max_pages=1)
            ]
            if found:
                return max(found)
            # No explicit grant: public repositories are still readable.
            try:
                client.get_json(self._repo_path(repo))
            except (HostNotFound, HostPermissionDenied):
                return Permission.NONE
            return Permission.READ
        finally:
            client.close()

    # --- webhooks ---------------------------------------------------------------

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        body = {
            "description": "Git Connect for Jira",
            "url": url,
            "active": True,
            "events": list(WEBHOOK_EVENTS),
            "secret": secret,
        }
        raw = self.http.post_json(f"{self._repo_path(repo)}/hooks", body)
        uid = bb.require(bb.text(bb.dig(raw, "uuid")), "a webhook id", NAME)
        return WebhookRegistration(id=uid, url=url)

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        self.http.delete(f"{self._repo_path(repo)}/hooks/{bb.segment(webhook_id)}")

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        bb.verify_hub_signature(headers, raw_body, secret, host_name=NAME)

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        event_key = (bb.header(headers, "X-Event-Key") or "").strip()
        # X-Hook-UUID names the subscription, not the delivery: retries share X-Request-UUID.
        delivery = bb.header(headers, "X-Request-UUID")
        if event_key != "repo:push" and event_key not in _PR_ACTIONS:
            return []
        body = bb.webhook_json(raw_body, host_name=NAME)
        repo_id = bb.text(bb.dig(body, "repository", "uuid"))
        repo_name = bb.text(bb.dig(body, "repository", "full_name"))
        if event_key == "repo:push":
            refs, commits = _push_changes(bb.dig(body, "push", "changes"))
            return [
                WebhookEvent(
                    type=WebhookEventType.PUSH,
                    repository_external_id=repo_id,
                    delivery_id=delivery,
                    refs=refs,
                    commit_ids=commits,
                    repository_name=repo_name,
                )
            ]
        return [
            WebhookEvent(
                type=WebhookEventType.PULL_REQUEST,
                repository_external_id=repo_id,
                delivery_id=delivery,
                pull_request=self._pull_request(bb.dig(body, "pullrequest")),
                pull_request_action=_PR_ACTIONS[event_key],
                repository_name=repo_name,
            )
        ]

    def rate_budget(self) -> RateBudget | None:
        return self.http.budget()

    # --- OAuth 2 (authorization code grant) ------------------------------------

    def oauth_flow(self) -> OAuthCodeFlow:
        """Bitbucket Cloud's flow: the consumer key and secret as HTTP basic auth on a
        form-encoded token request; scopes are set on the consumer, so none is sent."""
        return OAuthCodeFlow(
            name=NAME,
            authorize_endpoint=f"{self._oauth_url}/authorize",
            token_endpoint=f"{self._oauth_url}/access_token",
            client_id=self._oauth_client_id,
            client_secret=self._oauth_client_secret,
            client_auth=ClientAuth.BASIC,
            client_label="consumer key and secret",
            http_options=self._client_options,
        )


def _push_changes(changes: Any) -> tuple[tuple[RefUpdate, ...], tuple[str, ...]]:
    refs: list[RefUpdate] = []
    commits: list[str] = []
    for change in changes if isinstance(changes, list) else []:
        new, old = bb.dig(change, "new"), bb.dig(change, "old")
        side = new or old
        name = bb.text(bb.dig(side, "name"))
        if name is None:
            continue
        prefix = _REF_PREFIX.get(str(bb.dig(side, "type")), "refs/heads/")
        refs.append(
            RefUpdate(prefix + name, bb.text(bb.dig(old, "target", "hash")), bb.text(bb.dig(new, "target", "hash")))
        )
        for commit in bb.dig(change, "commits") or []:
            sha = bb.text(bb.dig(commit, "hash"))
            if sha and sha not in commits:
                commits.append(sha)
    return tuple(refs), tuple(commits)
