"""Plain Git over HTTP(S) or SSH: one repository, no API, only the ``git`` CLI.

Everything goes through :class:`connect_app.indexing.git.GitRunner`; the only
write this provider can do is creating a branch (``git push <sha>:refs/heads/<name>``).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import datetime

from connect_app.errors import HostNotFound, Unsupported, ValidationError
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
from connect_app.indexing.git import GitRunner, validate_clone_url, validate_ref_name
from connect_app.indexing.git_safety import network_form

INFO = ProviderInfo(
    id=ProviderId.GIT,
    name="Git (any server)",
    auth_types=(AuthType.NONE, AuthType.PASSWORD, AuthType.PAT, AuthType.SSH_KEY),
    self_hosted=True,
    capabilities=frozenset({Capability.CREATE_BRANCH}),
)
# Most servers accept any user name with a token as the password (GitHub, GitLab, Azure DevOps).
PAT_DEFAULT_USERNAME = "git"
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SCP = re.compile(r"^(?:[^@/:]+@)?(?P<host>\[[^\]]+\]|[^@/:]+):(?P<path>.+)$")
_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22}


def repository_key(url: str) -> tuple[str, str]:
    """(stable id, display name) of a clone URL: ``host[:port]/path`` without scheme,
    user, trailing slash or ``.git``; ``https://git.example.com/team/app.git`` and
    ``git@git.example.com:team/app`` give ``git.example.com/team/app`` and ``team/app``."""
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.port and parts.port != _DEFAULT_PORTS.get(parts.scheme.lower()):
            host = f"{host}:{parts.port}"
        path = parts.path
    else:
        m = _SCP.match(url)
        host, path = (m["host"].lower(), m["path"]) if m else ("", url)
    path = path.strip("/").removesuffix(".git").strip("/")
    return f"{host}/{path}", path or host


class PlainGitHost:
    """The ``git`` provider: a single repository at ``clone_url``."""

    info = INFO

    def __init__(
        self, clone_url: str, credentials: Credentials, *, allow_private: bool, runner: GitRunner | None = None
    ) -> None:
        if credentials.auth_type not in INFO.auth_types:
            raise ValidationError(f"plain git does not support {credentials.auth_type.value} credentials")
        # Spelling only: no DNS at construction. Every git call re-checks and pins the address.
        self._url = validate_clone_url(clone_url, allow_private=allow_private, resolve=False)
        if credentials.auth_type is AuthType.SSH_KEY:
            scheme = network_form(self._url, allow_private=allow_private, resolve=False)[0]
            if scheme != "ssh" or not credentials.token:
                raise ValidationError(
                    "an SSH key needs an ssh:// (or user@host:path) clone URL and the private key",
                    code="ssh_key_mismatch",
                )
        self._credentials = credentials
        self._runner = runner or GitRunner(allow_private=allow_private)

    # -- what this provider does
    def validate_credentials(self) -> str:
        self._runner.ls_remote(self._url, self.git_auth())
        if self._credentials.auth_type is AuthType.NONE:
            return "anonymous"
        return self._credentials.username or PAT_DEFAULT_USERNAME

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]:
        external_id, name = repository_key(self._url)
        ns = name.rpartition("/")[0] or None
        if namespace is not None and namespace != ns:
            return
        yield RemoteRepository(
            external_id=external_id,
            name=name,
            clone_url=self._url,
            default_branch=self._runner.remote_default_branch(self._url, self.git_auth()),
            namespace=ns,
            private=self._credentials.auth_type is not AuthType.NONE,
        )

    def clone_url(self, repo: RemoteRepository) -> str:
        return self._url

    def git_auth(self) -> GitAuth:
        c = self._credentials
        if c.auth_type is AuthType.PASSWORD:
            return GitAuth(username=c.username, password=c.password)
        if c.auth_type is AuthType.PAT:
            return GitAuth(username=c.username or PAT_DEFAULT_USERNAME, password=c.token)
        if c.auth_type is AuthType.SSH_KEY:
            return GitAuth(ssh_private_key=c.token, ssh_known_host_key=c.extra.get("known_host_key"))
        return GitAuth()

    def list_branches(self, repo: RemoteRepository) -> Iterator[RemoteBranch]:
        refs = self._runner.ls_remote(self._url, self.git_auth())
        for ref, sha in sorted(refs.items()):
            if ref.startswith("refs/heads/"):
                yield RemoteBranch(name=ref.removeprefix("refs/heads/"), head_sha=sha)

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        """``from_ref``: a branch or tag name, a full ref, or the full sha of a branch or tag tip."""
        validate_ref_name(name)
        sha = self._resolve(from_ref)
        self._runner.create_branch_remote(self._url, self.git_auth(), name, sha)
        return RemoteBranch(name=name, head_sha=sha)

    def rate_budget(self) -> RateBudget | None:
        return None

    def _resolve(self, from_ref: str) -> str:
        if _SHA.match(from_ref):
            return from_ref
        validate_ref_name(from_ref)
        refs = self._runner.ls_remote(self._url, self.git_auth())
        for candidate in (
            f"refs/heads/{from_ref}",
            f"refs/tags/{from_ref}^{{}}",
            f"refs/tags/{from_ref}",
            f"{from_ref}^{{}}",
            from_ref,
        ):
            if candidate in refs:
                return refs[candidate]
        raise HostNotFound(f"no branch or tag named {from_ref!r} in this repository")

    # -- what plain git cannot do (``info.capabilities`` says so up front)
    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]:
        raise Unsupported("plain git repositories have no pull requests")

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        raise Unsupported("plain git repositories have no pull requests")

    def repository_permission(self, repo: RemoteRepository, user: Credentials) -> Permission:
        raise Unsupported("plain git cannot tell what a user may access")

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        raise Unsupported("plain git has no webhooks; the repository is indexed on a schedule")

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        raise Unsupported("plain git has no webhooks")

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        raise Unsupported("plain git has no webhooks")

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        raise Unsupported("plain git has no webhooks")
