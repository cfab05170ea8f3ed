"""AWS CodeCommit through boto3 (adaptive client-side retries, explicit timeouts).

Credentials are ``AuthType.AWS``: access key id in ``username``, secret access key
in ``password``, ``extra["region"]`` and optionally ``extra["session_token"]``.
``git`` over HTTPS needs either CodeCommit "HTTPS Git credentials" (an IAM user's
generated username/password, given as ``extra["git_username"]`` /
``extra["git_password"]``) or SigV4 signing through the ``codecommit::`` remote
helper (git-remote-codecommit), which this app does not run. Webhooks are not
offered: CodeCommit emits repository events to EventBridge/SNS only, which is out
of scope; integrations poll.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from connect_app.errors import (
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
    Unsupported,
    ValidationError,
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

MAX_ATTEMPTS = 8
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
BATCH_SIZE = 25  # batch_get_repositories accepts at most 25 names
_SHA = re.compile(r"^[0-9a-f]{40}$")
_BRANCH_PREFIX = "refs/heads/"

CODECOMMIT_INFO = ProviderInfo(
    id=ProviderId.AWS_CODECOMMIT,
    name="AWS CodeCommit",
    auth_types=(AuthType.AWS,),
    self_hosted=False,
    capabilities=frozenset(
        {
            Capability.LIST_REPOSITORIES,
            Capability.PULL_REQUESTS,
            Capability.CREATE_BRANCH,
            Capability.CREATE_PULL_REQUEST,
            Capability.USER_PERMISSIONS,
        }
    ),
)

_AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "EncryptionKeyAccessDeniedException"})
_THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"})
_NOT_FOUND_CODES = frozenset(
    {
        "RepositoryDoesNotExistException",
        "BranchDoesNotExistException",
        "PullRequestDoesNotExistException",
        "CommitDoesNotExistException",
        "ReferenceDoesNotExistException",
    }
)
_CONFLICT_CODES = frozenset({"BranchNameExistsException", "PullRequestAlreadyExistsException"})
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)

T = TypeVar("T")


def client_config(max_attempts: int = MAX_ATTEMPTS) -> Config:
    return Config(
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )


def map_error(
    error: Exception, operation: str, secrets: tuple[str, ...] = ()
) -> HostError | HostAuthError | HostPermissionDenied:
    """One of our errors for a botocore failure; the message names the AWS error code,
    never the credentials."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", "Unknown"))
        detail = str(error.response.get("Error", {}).get("Message", ""))
        for secret in secrets:
            detail = detail.replace(secret, "[redacted]")
        said = f"AWS CodeCommit {operation} failed: {code}" + (f": {detail[:200]}" if detail else "")
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _AUTH_CODES:
            return HostAuthError(said)
        if code in _DENIED_CODES:
            return HostPermissionDenied(said)
        if code in _NOT_FOUND_CODES:
            return HostNotFound(said)
        if code in _THROTTLE_CODES:
            return RateLimited(said)
        if code in _CONFLICT_CODES:
            return HostError(said, code="host_rejected", status=409)
        if status >= 500 or code in ("ServiceUnavailable", "InternalFailure", "InternalServerError"):
            return HostUnavailable(said)
        return HostError(said)
    if isinstance(error, _UNREACHABLE):
        return HostUnavailable(f"could not reach AWS CodeCommit for {operation} ({type(error).__name__})")
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return HostAuthError("AWS credentials are missing or incomplete")
    return HostError(f"AWS CodeCommit {operation} failed ({type(error).__name__})")


def pull_request_state(status: str, is_merged: bool) -> PullRequestState:
    if status == "OPEN":
        return PullRequestState.OPEN
    return PullRequestState.MERGED if is_merged else PullRequestState.DECLINED


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _branch_name(ref: str) -> str:
    return ref[len(_BRANCH_PREFIX) :] if ref.startswith(_BRANCH_PREFIX) else ref


class CodeCommitHost:
    """One AWS account/region with one set of access keys."""

    info: ProviderInfo = CODECOMMIT_INFO

    def __init__(
        self,
        credentials: Credentials,
        *,
        endpoint_url: str | None = None,
        sts_endpoint_url: str | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        client_factory: Callable[[str, Credentials], Any] | None = None,
    ) -> None:
        region = credentials.extra.get("region")
        if not region:
            raise ValidationError("AWS CodeCommit needs a region")
        self.region = region
        self._credentials = credentials
        self._endpoints = {"codecommit": endpoint_url, "sts": sts_endpoint_url}
        self._config = client_config(max_attempts)
        self._factory = client_factory or self._boto_client
        self._clients: dict[str, Any] = {}

    def _boto_client(self, service: str, credentials: Credentials) -> Any:
        if credentials.auth_type is not AuthType.AWS or not credentials.username or not credentials.password:
            raise HostAuthError("AWS CodeCommit needs an access key id and a secret access key")
        session = boto3.session.Session(
            aws_access_key_id=credentials.username,
            aws_secret_access_key=credentials.password,
            aws_session_token=credentials.extra.get("session_token") or None,
            region_name=credentials.extra.get("region") or self.region,
        )
        return session.client(service, config=self._config, endpoint_url=self._endpoints.get(service))

    def client(self, service: str = "codecommit") -> Any:
        if service not in self._clients:
            self._clients[service] = self._factory(service, self._credentials)
        return self._clients[service]

    def _secrets(self, credentials: Credentials | None = None) -> tuple[str, ...]:
        c = credentials or self._credentials
        return tuple(s for s in (c.username, c.password, c.extra.get("session_token")) if s)

    def _call(self, operation: str, fn: Callable[..., T], /, **params: Any) -> T:
        try:
            return fn(**params)
        except (ClientError, BotoCoreError) as e:
            raise map_error(e, operation, self._secrets()) from e

    # --- account -------------------------------------------------------------------------

    def validate_credentials(self) -> str:
        identity = self._call("GetCallerIdentity", self.client("sts").get_caller_identity)
        return str(identity["Arn"])

    # --- repositories --------------------------------------------------------------------

    def _paged(self, operation: str, fn: Callable[..., Any], key: str, **params: Any) -> Iterator[Any]:
        token: str | None = None
        while True:
            page = self._call(operation, fn, **params, **({"nextToken": token} if token else {}))
            yield from page.get(key, [])
            token = page.get("nextToken")
            if not token:
                return

    def list_repositories(self, *, namespace: str | None = None) -> Iterator[RemoteRepository]:
        cc = self.client()
        names = [r["repositoryName"] for r in self._paged("ListRepositories", cc.list_repositories, "repositories")]
        if namespace:
            names = [n for n in names if n.startswith(namespace)]
        for start in range(0, len(names), BATCH_SIZE):
            batch = self._call(
                "BatchGetRepositories", cc.batch_get_repositories, repositoryNames=names[start : start + BATCH_SIZE]
            )
            for meta in batch.get("repositories", []):
                yield self._repository(meta)

    def _repository(self, meta: Mapping[str, Any]) -> RemoteRepository:
        name = str(meta["repositoryName"])
        return RemoteRepository(
            external_id=str(meta.get("repositoryId") or name),
            name=name,
            clone_url=str(
                meta.get("cloneUrlHttp") or f"https://git-codecommit.{self.region}.amazonaws.com/v1/repos/{name}"
            ),
            web_url=self._console(f"repositories/{name}/browse"),
            default_branch=meta.get("defaultBranch"),
            namespace=str(meta["accountId"]) if meta.get("accountId") else None,
        )

    def _console(self, path: str) -> str:
        return f"https://{self.region}.console.aws.amazon.com/codesuite/codecommit/{path}?region={self.region}"

    def clone_url(self, repo: RemoteRepository) -> str:
        return repo.clone_url

    def git_auth(self) -> GitAuth:
        user, password = self._credentials.extra.get("git_username"), self._credentials.extra.get("git_password")
        if user and password:
            return GitAuth(username=user, password=password)
        raise Unsupported(
            "git cannot use AWS access keys directly: add CodeCommit HTTPS Git credentials (IAM > Security "
            "credentials > HTTPS Git credentials for AWS CodeCommit) to this integration; SigV4 through the "
            "codecommit:: remote helper is not supported"
        )

    def list_branches(self, repo: RemoteRepository) -> Iterator[RemoteBranch]:
        cc = self.client()
        for name in self._paged("ListBranches", cc.list_branches, "branches", repositoryName=repo.name):
            branch = self._call("GetBranch", cc.get_branch, repositoryName=repo.name, branchName=name)["branch"]
            yield RemoteBranch(name=str(branch.get("branchName", name)), head_sha=branch.get("commitId"))

    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]:
        cc = self.client()
        for pr_id in self._paged("ListPullRequests", cc.list_pull_requests, "pullRequestIds", repositoryName=repo.name):
            pr = self._call("GetPullRequest", cc.get_pull_request, pullRequestId=pr_id)["pullRequest"]
            mapped = self._pull_request(pr, repo.name)
            if updated_since is None or mapped.updated_at >= updated_since:
                yield mapped

    def _pull_request(self, pr: Mapping[str, Any], repository: str) -> PullRequest:
        targets = [t for t in pr.get("pullRequestTargets", []) if t.get("repositoryName", repository) == repository]
        target = targets[0] if targets else {}
        merged = bool(target.get("mergeMetadata", {}).get("isMerged"))
        updated = _aware(pr.get("lastActivityDate")) or _aware(pr.get("creationDate")) or datetime.now(UTC)
        author = str(pr.get("authorArn") or "") or None
        pr_id = str(pr["pullRequestId"])
        return PullRequest(
            external_id=pr_id,
            title=str(pr.get("title") or ""),
            state=pull_request_state(str(pr.get("pullRequestStatus")), merged),
            source_branch=_branch_name(str(target.get("sourceReference", ""))),
            target_branch=_branch_name(str(target.get("destinationReference", ""))),
            url=self._console(f"repositories/{repository}/pull-requests/{pr_id}/details"),
            updated_at=updated,
            description=str(pr.get("description") or ""),
            author=author.rsplit("/", 1)[-1] if author else None,
            created_at=_aware(pr.get("creationDate")),
        )

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        cc = self.client()
        commit = from_ref
        if not _SHA.match(from_ref):
            source = _branch_name(from_ref)
            commit = self._call("GetBranch", cc.get_branch, repositoryName=repo.name, branchName=source)["branch"][
                "commitId"
            ]
        self._call("CreateBranch", cc.create_branch, repositoryName=repo.name, branchName=name, commitId=commit)
        return RemoteBranch(name=name, head_sha=commit)

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        response = self._call(
            "CreatePullRequest",
            self.client().create_pull_request,
            title=title,
            description=body,
            targets=[{"repositoryName": repo.name, "sourceReference": source, "destinationReference": target}],
            clientRequestToken=str(uuid.uuid4()),
        )
        return self._pull_request(response["pullRequest"], repo.name)

    def repository_permission(self, repo: RemoteRepository, user: Credentials) -> Permission:
        """READ when the user's keys may call GetRepository, else NONE. Write access is
        not probed: IAM offers no side-effect-free check short of policy simulation."""
        try:
            self._factory("codecommit", user).get_repository(repositoryName=repo.name)
        except ClientError as e:
            mapped = map_error(e, "GetRepository", self._secrets(user))
            if isinstance(mapped, HostPermissionDenied | HostNotFound):
                return Permission.NONE
            raise mapped from e
        except BotoCoreError as e:
            raise map_error(e, "GetRepository", self._secrets(user)) from e
        return Permission.READ

    # --- webhooks (not offered) --------------------------------------------------------

    def register_webhook(self, repo: RemoteRepository, url: str, secret: str) -> WebhookRegistration:
        raise Unsupported("CodeCommit sends events only to EventBridge/SNS, which this app does not consume")

    def delete_webhook(self, repo: RemoteRepository, webhook_id: str) -> None:
        raise Unsupported("CodeCommit webhooks are not supported")

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
        raise Unsupported("CodeCommit webhooks are not supported")

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[WebhookEvent]:
        raise Unsupported("CodeCommit webhooks are not supported")

    def rate_budget(self) -> RateBudget | None:
        return None  # boto3's adaptive retry mode paces calls itself; AWS publishes no budget headers
