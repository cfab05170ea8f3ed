"""Bitbucket Data Center / Server (REST 1.0 under ``<server>/rest``).

Auth: HTTP access tokens (personal, project or repository) as Bearer (``AuthType.PAT``),
or username and password as basic auth (``AuthType.PASSWORD``). Repositories are
addressed as ``PROJECTKEY/slug`` (personal projects are ``~USER/slug``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from connect_app.errors import HostAuthError, HostError, HostNotFound, HostPermissionDenied, ValidationError
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
PR_PAGE_LIMIT = 50  # an incremental walk of all pull requests usually stops on its first page
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

log = logging.getLogger(__name__)
_ORDER_REPORTED: set[str] = set()  # servers whose NEWEST order was already logged by this process


class BitbucketDataCenter:
    info = ProviderInfo(
        id=ProviderId.BITBUCKET_DATACENTER,
        name=NAME,
        auth_types=(AuthType.PAT, AuthType.PASSWORD),
        self_hosted=True,
        capabilities=frozenset(Capability) - {Capability.OAUTH},
    )

    # How far before ``updated_since`` an incremental listing still walks by creation date when
    # NEWEST might sort by creation (see ``list_pull_requests``).
    created_lookback: timedelta = timedelta(days=7)

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
        """Pull requests updated at or after ``updated_since`` (all of them without it).

        ``order=NEWEST`` is documented only as "newer first": Atlassian does not say whether it
        sorts by ``createdDate`` or ``updatedDate``. This listing does not depend on it:

        1. ``state=ALL``, NEWEST, page by page; every PR updated since is yielded. The walk
           stops after a page on which no PR was updated since and none was created within
           ``created_lookback`` before ``updated_since``. Whichever date NEWEST sorts by, that
           reaches every PR *created* since ``updated_since - created_lookback``; if it sorts
           by update date, it reaches every PR updated since.
        2. ``state=OPEN``, read to its end: every open PR updated since, however old.

        What neither reaches when NEWEST sorts by creation: a PR created before the lookback
        that was merged or declined since (webhooks report those; so does a full scan, which
        is ``updated_since=None``). No listing of this endpoint can reach such a PR without
        reading every older one.

        When the pages themselves show that NEWEST sorts by update date (within a page, some PR
        was created later than the one listed before it, and none was updated later), step 1
        stops at the first PR not updated since and step 2 is skipped: the ALL walk is then
        exact. That inference assumes NEWEST sorts by one of the two dates.

        A PR is yielded once per listing, unless it was seen again with a newer update time (it
        changed between pages or between the two steps); then the newer copy follows.
        """
        path = f"{self._repo_path(repo)}/pull-requests"
        listed = _Listed()
        if updated_since is None:
            for page in self._pull_request_pages(path, "ALL", PAGE_LIMIT):
                yield from listed.fresh(page)
            return
        since, horizon = updated_since, updated_since - self.created_lookback
        order = _NewestOrder()
        for page in self._pull_request_pages(path, "ALL", PR_PAGE_LIMIT):
            order.observe(page)
            yield from listed.fresh(pr for pr in page if pr.updated_at >= since)
            if order.by_updated and (not page or page[-1].updated_at < since):
                break  # sorted by update date: everything after this page is older
            if not any(pr.updated_at >= since or (pr.created_at or pr.updated_at) >= horizon for pr in page):
                break
        if not order.by_updated:
            for page in self._pull_request_pages(path, "OPEN", PAGE_LIMIT):
                order.observe(page)
                yield from listed.fresh(pr for pr in page if pr.updated_at >= since)
        self._report_order(order)

    def _pull_request_pages(self, path: str, state: str, limit: int) -> Iterator[list[PullRequest]]:
        """One list per page (the stop rules look at whole pages); pages are fetched lazily."""
        params = {"state": state, "order": "NEWEST", "limit": limit}
        for values in self.http.paginate(path, params=params, strategy=bb.DC_PAGES, extractor=_page_values):
            yield [self._pull_request(raw) for raw in values]

    def _report_order(self, order: _NewestOrder) -> None:
        verdict = "updatedDate" if order.by_updated else "createdDate" if order.by_created else None
        if verdict is not None and self.server_url not in _ORDER_REPORTED:
            _ORDER_REPORTED.add(self.server_url)
            log.info("%s at %s lists pull requests with order=NEWEST by %s", NAME, self.server_url, verdict)

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


def _page_values(body: Any) -> list[list[Any]]:
    """A whole page as one item, so ``paginate`` yields pages (``StartLimitPagination`` reads
    ``nextPageStart`` from the body, not the item count)."""
    values = bb.dig(body, "values")
    if not isinstance(values, list):
        raise HostError(f"{NAME} answered with an unexpected page shape", code="host_bad_response")
    return [values]


@dataclass
class _Listed:
    """The update time of every PR already yielded by one listing."""

    updated: dict[str, datetime] = field(default_factory=dict)

    def fresh(self, prs: Iterable[PullRequest]) -> Iterator[PullRequest]:
        for pr in prs:
            previous = self.updated.get(pr.external_id)
            if previous is None or pr.updated_at > previous:
                self.updated[pr.external_id] = pr.updated_at
                yield pr


@dataclass
class _NewestOrder:
    """What neighbours within one page show about the date ``order=NEWEST`` sorts by.

    A PR listed right after one created (updated) earlier than itself proves the order is not
    by creation (update) date. Pages are compared only within themselves: between two
    requests, PRs can be created or updated and shift the offsets.
    """

    not_by_created: bool = False
    not_by_updated: bool = False

    def observe(self, page: list[PullRequest]) -> None:
        for before, after in pairwise(page):
            if before.created_at and after.created_at and after.created_at > before.created_at:
                self.not_by_created = True
            if after.updated_at > before.updated_at:
                self.not_by_updated = True

    @property
    def by_updated(self) -> bool:
        return self.not_by_created and not self.not_by_updated

    @property
    def by_created(self) -> bool:
        return self.not_by_updated and not self.not_by_created


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
