"""CodeCommit provider contract-tested against AWS's published service model:
``botocore.stub.Stubber`` rejects any request whose parameters the CodeCommit/STS
model does not allow, and any stubbed response that does not fit the model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import ANY, Stubber

from connect_app.errors import (
    AppError,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
)
from connect_app.hosts.base import (
    AuthType,
    Capability,
    Credentials,
    GitHost,
    Permission,
    PullRequestState,
    RemoteRepository,
)
from connect_app.hosts.codecommit import CodeCommitHost, map_error, pull_request_state

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"
CREDS = Credentials(AuthType.AWS, username=KEY_ID, password=SECRET, extra={"region": REGION})
REPO = RemoteRepository(external_id="f7579e13-b83e-4027-aaef-650c0EXAMPLE", name="MyDemoRepo", clone_url="")
SHA = "317f8570EXAMPLE".ljust(40, "0").lower()
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def host() -> CodeCommitHost:
    return CodeCommitHost(CREDS)


@pytest.fixture
def cc(host: CodeCommitHost) -> Iterator[Stubber]:
    with Stubber(host.client()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def repo_meta(name: str, repo_id: str) -> dict[str, Any]:
    return {
        "accountId": "111111111111",
        "repositoryId": repo_id,
        "repositoryName": name,
        "defaultBranch": "main",
        "lastModifiedDate": WHEN,
        "creationDate": WHEN,
        "cloneUrlHttp": f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/{name}",
        "cloneUrlSsh": f"ssh://git-codecommit.{REGION}.amazonaws.com/v1/repos/{name}",
        "Arn": f"arn:aws:codecommit:{REGION}:111111111111:{name}",
    }


def pr_body(pr_id: str, status: str, merged: bool) -> dict[str, Any]:
    return {
        "pullRequestId": pr_id,
        "title": "ABC-1 Pronunciation difficulty analyzer",
        "description": "A code review of the new feature",
        "lastActivityDate": WHEN,
        "creationDate": WHEN,
        "pullRequestStatus": status,
        "authorArn": "arn:aws:iam::111111111111:user/Jane_Doe",
        "pullRequestTargets": [
            {
                "repositoryName": "MyDemoRepo",
                "sourceReference": "refs/heads/jane-branch",
                "destinationReference": "refs/heads/main",
                "destinationCommit": SHA,
                "sourceCommit": SHA,
                "mergeMetadata": {"isMerged": merged},
            }
        ],
        "clientRequestToken": "123Example",
    }


def test_client_uses_adaptive_retries_and_timeouts(host: CodeCommitHost) -> None:
    config = host.client().meta.config
    # botocore counts the first try too: max_attempts=8 retries -> 9 attempts in all
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 9}
    assert (config.connect_timeout, config.read_timeout) == (5.0, 30.0)
    assert host.client().meta.region_name == REGION
    assert isinstance(host, GitHost)
    assert Capability.WEBHOOKS not in host.info.capabilities


def test_validate_credentials_returns_the_caller_arn(host: CodeCommitHost) -> None:
    with Stubber(host.client("sts")) as sts:
        arn = "arn:aws:iam::111111111111:user/integration"
        sts.add_response("get_caller_identity", {"UserId": "AIDAEXAMPLE", "Account": "111111111111", "Arn": arn}, {})
        assert host.validate_credentials() == arn


def test_list_repositories_pages_and_batches(host: CodeCommitHost, cc: Stubber) -> None:
    cc.add_response(
        "list_repositories",
        {"repositories": [{"repositoryName": "MyDemoRepo", "repositoryId": "id-1"}], "nextToken": "page2"},
        {},
    )
    cc.add_response(
        "list_repositories",
        {"repositories": [{"repositoryName": "Other", "repositoryId": "id-2"}]},
        {"nextToken": "page2"},
    )
    cc.add_response(
        "batch_get_repositories",
        {"repositories": [repo_meta("MyDemoRepo", "id-1"), repo_meta("Other", "id-2")], "repositoriesNotFound": []},
        {"repositoryNames": ["MyDemoRepo", "Other"]},
    )
    repos = list(host.list_repositories())
    assert [(r.external_id, r.name, r.default_branch) for r in repos] == [
        ("id-1", "MyDemoRepo", "main"),
        ("id-2", "Other", "main"),
    ]
    assert repos[0].clone_url == f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/MyDemoRepo"


def test_branches_list_then_get(host: CodeCommitHost, cc: Stubber) -> None:
    cc.add_response("list_branches", {"branches": ["main"]}, {"repositoryName": "MyDemoRepo"})
    cc.add_response(
        "get_branch",
        {"branch": {"branchName": "main", "commitId": SHA}},
        {"repositoryName": "MyDemoRepo", "branchName": "main"},
    )
    [branch] = list(host.list_branches(REPO))
    assert (branch.name, branch.head_sha) == ("main", SHA)


def test_pull_requests_map_states(host: CodeCommitHost, cc: Stubber) -> None:
    cc.add_response("list_pull_requests", {"pullRequestIds": ["1", "2", "3"]}, {"repositoryName": "MyDemoRepo"})
    for pr_id, status, merged in [("1", "OPEN", False), ("2", "CLOSED", True), ("3", "CLOSED", False)]:
        cc.add_response("get_pull_request", {"pullRequest": pr_body(pr_id, status, merged)}, {"pullRequestId": pr_id})
    prs = list(host.list_pull_requests(REPO))
    assert [p.state for p in prs] == [PullRequestState.OPEN, PullRequestState.MERGED, PullRequestState.DECLINED]
    assert (prs[0].source_branch, prs[0].target_branch, prs[0].author) == ("jane-branch", "main", "Jane_Doe")
    assert prs[0].updated_at == WHEN and "pull-requests/1" in prs[0].url
    assert pull_request_state("OPEN", True) is PullRequestState.OPEN


def test_create_branch_from_branch_name_resolves_commit(host: CodeCommitHost, cc: Stubber) -> None:
    cc.add_response(
        "get_branch",
        {"branch": {"branchName": "main", "commitId": SHA}},
        {"repositoryName": "MyDemoRepo", "branchName": "main"},
    )
    cc.add_response("create_branch", {}, {"repositoryName": "MyDemoRepo", "branchName": "ABC-1-fix", "commitId": SHA})
    branch = host.create_branch(REPO, "ABC-1-fix", "main")
    assert (branch.name, branch.head_sha) == ("ABC-1-fix", SHA)


def test_create_pull_request_targets(host: CodeCommitHost, cc: Stubber) -> None:
    cc.add_response(
        "create_pull_request",
        {"pullRequest": pr_body("42", "OPEN", False)},
        {
            "title": "ABC-1 Pronunciation difficulty analyzer",
            "description": "A code review of the new feature",
            "targets": [
                {"repositoryName": "MyDemoRepo", "sourceReference": "jane-branch", "destinationReference": "main"}
            ],
            "clientRequestToken": ANY,
        },
    )
    pr = host.create_pull_request(
        REPO,
        source="jane-branch",
        target="main",
        title="ABC-1 Pronunciation difficulty analyzer",
        body="A code review of the new feature",
    )
    assert (pr.external_id, pr.state) == ("42", PullRequestState.OPEN)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDeniedException", 400, HostPermissionDenied),
        ("UnrecognizedClientException", 400, HostAuthError),
        ("RepositoryDoesNotExistException", 400, HostNotFound),
        ("ThrottlingException", 400, RateLimited),
        ("ServiceUnavailableException", 503, HostUnavailable),
        ("BranchNameExistsException", 400, HostError),
    ],
)
def test_client_errors_are_mapped_without_secrets(
    host: CodeCommitHost, cc: Stubber, code: str, status: int, expected: type[AppError]
) -> None:
    cc.add_client_error(
        "list_branches",
        service_error_code=code,
        service_message=f"key {KEY_ID} secret {SECRET}",
        http_status_code=status,
        expected_params={"repositoryName": "MyDemoRepo"},
    )
    with pytest.raises(expected) as e:
        list(host.list_branches(REPO))
    assert code in e.value.message
    assert SECRET not in str(e.value) and KEY_ID not in str(e.value)


def test_permission_is_read_or_none_for_the_users_keys() -> None:
    clients: list[Any] = []
    host = CodeCommitHost(CREDS)

    def factory(service: str, creds: Credentials) -> Any:
        client = host._boto_client(service, creds)
        stubber = Stubber(client)
        if creds.username == "AKIAUSERALLOWED00000":
            stubber.add_response(
                "get_repository",
                {"repositoryMetadata": repo_meta("MyDemoRepo", "id-1")},
                {"repositoryName": "MyDemoRepo"},
            )
        else:
            stubber.add_client_error("get_repository", service_error_code="AccessDeniedException", http_status_code=400)
        stubber.activate()
        clients.append(stubber)
        return client

    host = CodeCommitHost(CREDS, client_factory=factory)
    allowed = Credentials(AuthType.AWS, username="AKIAUSERALLOWED00000", password="x" * 40, extra={"region": REGION})
    denied = Credentials(AuthType.AWS, username="AKIAUSERDENIED000000", password="y" * 40, extra={"region": REGION})
    assert host.repository_permission(REPO, allowed) is Permission.READ
    assert host.repository_permission(REPO, denied) is Permission.NONE


def test_unreachable_endpoint_is_host_unavailable() -> None:
    host = CodeCommitHost(CREDS, endpoint_url="http://127.0.0.1:9", max_attempts=1)
    with pytest.raises(HostUnavailable):
        list(host.list_branches(REPO))
    assert isinstance(map_error(EndpointConnectionError(endpoint_url="https://x"), "op"), HostUnavailable)


def test_git_auth_needs_https_git_credentials() -> None:
    with pytest.raises(AppError) as e:
        CodeCommitHost(CREDS).git_auth()
    assert e.value.code == "unsupported" and "HTTPS Git credentials" in e.value.message
    extra = {"region": REGION, "git_username": "jane-at-111111111111", "git_password": "gitpw"}
    auth = CodeCommitHost(Credentials(AuthType.AWS, username=KEY_ID, password=SECRET, extra=extra)).git_auth()
    assert (auth.username, auth.password) == ("jane-at-111111111111", "gitpw")


def test_webhooks_are_unsupported(host: CodeCommitHost) -> None:
    with pytest.raises(AppError, match="EventBridge"):
        host.register_webhook(REPO, "https://app.test/hook", "s")
