"""The ``git`` provider against a real repository served by git http-backend on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from connect_app.errors import (
    Conflict,
    HostAuthError,
    HostNotFound,
    UnsafeInput,
    Unsupported,
    ValidationError,
)
from connect_app.hosts.base import AuthType, Capability, Credentials, GitHost, ProviderId, RemoteRepository
from connect_app.hosts.plain_git import PAT_DEFAULT_USERNAME, PlainGitHost, repository_key
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import GitHttpServer, make_repo, run_git


def host_for(repo: ServedRepo, **creds: str | None) -> PlainGitHost:
    c = Credentials(AuthType.PASSWORD, username="alice", password=repo.server.password)
    if creds:
        c = Credentials(**creds)  # type: ignore[arg-type]
    return PlainGitHost(repo.url, c, allow_private=True)


def the_repo(host: PlainGitHost) -> RemoteRepository:
    (repo,) = host.list_repositories()
    return repo


def test_provider_info() -> None:
    info = PlainGitHost.info
    assert info.id is ProviderId.GIT and info.self_hosted
    assert info.capabilities == frozenset({Capability.CREATE_BRANCH})
    assert set(info.auth_types) == {AuthType.NONE, AuthType.PASSWORD, AuthType.PAT, AuthType.SSH_KEY}


def test_implements_the_protocol(git_repo: ServedRepo) -> None:
    assert isinstance(host_for(git_repo), GitHost)


def test_validate_credentials(git_repo: ServedRepo) -> None:
    assert host_for(git_repo).validate_credentials() == "alice"
    pat = host_for(git_repo, auth_type=AuthType.PAT, username="alice", token=git_repo.server.password)
    assert pat.validate_credentials() == "alice"
    wrong = host_for(git_repo, auth_type=AuthType.PASSWORD, username="alice", password="Wrong-Pass-42")
    with pytest.raises(HostAuthError) as e:
        wrong.validate_credentials()
    assert "Wrong-Pass-42" not in str(e.value)
    with pytest.raises(HostAuthError):
        host_for(git_repo, auth_type=AuthType.NONE).validate_credentials()


def test_anonymous_public_repository(open_git_server: GitHttpServer, git_repo_name: str) -> None:
    open_git_server.add_repo(git_repo_name, make_repo)
    host = PlainGitHost(open_git_server.url_for(git_repo_name), Credentials(AuthType.NONE), allow_private=True)
    assert host.validate_credentials() == "anonymous"
    assert the_repo(host).private is False
    assert host.git_auth().password is None and host.git_auth().http_header is None


def test_list_repositories_yields_the_single_repository(git_repo: ServedRepo) -> None:
    host = host_for(git_repo)
    repo = the_repo(host)
    port = git_repo.url.split(":")[2].split("/")[0]
    assert repo.external_id == f"127.0.0.1:{port}/{git_repo.name}"
    assert repo.name == git_repo.name and repo.namespace is None
    assert repo.default_branch == "main" and repo.private
    assert repo.clone_url == git_repo.url == host.clone_url(repo)
    assert list(host.list_repositories(namespace="someone-else")) == []


@pytest.mark.parametrize(
    ("url", "key", "name"),
    [
        ("https://Git.Example.com/team/app.git", "git.example.com/team/app", "team/app"),
        ("https://git.example.com:443/team/app/", "git.example.com/team/app", "team/app"),
        ("https://git.example.com:8443/team/app.git", "git.example.com:8443/team/app", "team/app"),
        ("ssh://git@git.example.com/team/app.git", "git.example.com/team/app", "team/app"),
        ("git@git.example.com:team/app.git", "git.example.com/team/app", "team/app"),
    ],
)
def test_repository_key_is_stable_across_spellings(url: str, key: str, name: str) -> None:
    assert repository_key(url) == (key, name)


def test_list_branches_match_the_server(git_repo: ServedRepo) -> None:
    host = host_for(git_repo)
    branches = {b.name: b.head_sha for b in host.list_branches(the_repo(host))}
    expected = run_git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads", cwd=git_repo.path)
    assert branches == dict(line.split(" ") for line in expected.splitlines())


def test_git_auth_never_puts_secrets_in_the_url(git_repo: ServedRepo) -> None:
    host = host_for(git_repo)
    auth = host.git_auth()
    assert auth.username == "alice" and auth.password == git_repo.server.password
    assert git_repo.server.password and git_repo.server.password not in repr(auth)
    assert "@" not in host.clone_url(the_repo(host))
    token_only = host_for(git_repo, auth_type=AuthType.PAT, token="tok-123").git_auth()
    assert token_only.username == "git" and token_only.password == "tok-123"


def test_create_branch(git_repo: ServedRepo) -> None:
    host = host_for(git_repo)
    repo = the_repo(host)
    branch = host.create_branch(repo, "feature/ABC-12-from-jira", "main")
    main = run_git("rev-parse", "main", cwd=git_repo.path).strip()
    assert (branch.name, branch.head_sha) == ("feature/ABC-12-from-jira", main)
    assert run_git("rev-parse", "feature/ABC-12-from-jira", cwd=git_repo.path).strip() == main
    assert host.create_branch(repo, "from-tag", "v1.0").head_sha == main
    with pytest.raises(Conflict):
        host.create_branch(repo, "feature/ABC-12-from-jira", "main")
    with pytest.raises(HostNotFound):
        host.create_branch(repo, "x", "no-such-branch")
    for bad in ("-x", "a..b", "x.lock", "@{u}"):
        with pytest.raises(ValidationError):
            host.create_branch(repo, bad, "main")


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/gcj-pwned",
        "file:///etc",
        "-oProxyCommand=touch /tmp/x",
        "--upload-pack=touch /tmp/x",
        "http://169.254.169.254/",
        "/etc/passwd",
    ],
)
def test_bad_urls_refused_at_construction(url: str) -> None:
    with pytest.raises(UnsafeInput):
        PlainGitHost(url, Credentials(AuthType.NONE), allow_private=True)


def test_unsupported_credentials_and_operations(git_repo: ServedRepo) -> None:
    with pytest.raises(ValidationError):
        PlainGitHost(git_repo.url, Credentials(AuthType.OAUTH, token="x"), allow_private=True)
    host = host_for(git_repo)
    repo = RemoteRepository(external_id="x", name="x", clone_url=git_repo.url)
    calls: list[Callable[[], object]] = [
        lambda: list(host.list_pull_requests(repo)),
        lambda: host.create_pull_request(repo, source="a", target="b", title="t", body=""),
        lambda: host.repository_permission(repo, Credentials(AuthType.NONE)),
        lambda: host.register_webhook(repo, "https://x", "s"),
        lambda: host.delete_webhook(repo, "1"),
        lambda: host.verify_webhook({}, b"", "s"),
        lambda: host.parse_webhook({}, b""),
    ]
    for call in calls:
        with pytest.raises(Unsupported):
            call()
    assert host.rate_budget() is None


# --------------------------------------------------------------------------- ssh keys


@pytest.mark.skipif(shutil.which("ssh") is None, reason="the OpenSSH client ('ssh') is not installed")
def test_ssh_key_credentials_over_a_real_ssh_server(tmp_path: Path) -> None:
    from tests.support.ssh_git_server import SshGitServer

    with SshGitServer(tmp_path / "repos") as server:
        server.add_repo("app", make_repo)
        url = server.url_for("app")
        creds = Credentials(
            AuthType.SSH_KEY,
            token=server.client_private_key,
            extra={"known_host_key": server.host_key_line},
        )
        host = PlainGitHost(url, creds, allow_private=True)
        assert host.validate_credentials() == PAT_DEFAULT_USERNAME
        [repo] = host.list_repositories()
        assert {b.name for b in host.list_branches(repo)} >= {"main", "feature/ABC-12-fix"}
        assert server.client_private_key not in repr(host.git_auth())


def test_ssh_key_needs_an_ssh_url() -> None:
    with pytest.raises(ValidationError) as err:
        PlainGitHost("https://git.example.com/a.git", Credentials(AuthType.SSH_KEY, token="k"), allow_private=False)
    assert err.value.code == "ssh_key_mismatch"
