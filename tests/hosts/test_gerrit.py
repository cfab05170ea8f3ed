"""Gerrit provider against a loopback stub answering with the example responses of
Gerrit's REST documentation (tests/fixtures/gerrit), XSSI prefix included."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connect_app.errors import AppError, HostAuthError, HostError, HostNotFound, HostUnavailable
from connect_app.hosts.base import (
    AuthType,
    Capability,
    Credentials,
    GitHost,
    Permission,
    PullRequestState,
    RemoteRepository,
)
from connect_app.hosts.gerrit import GerritHost, parse_timestamp, state_of, strip_xssi
from tests.hosts.doc_stub import Answer, Call, DocStub, fixture_bytes, serve_stub

PASSWORD = "Gerr1tHttpPassw0rd"
USER_PASSWORD = "an0ther-Passw0rd"


@pytest.fixture(scope="module")
def server() -> Iterator[DocStub]:
    with serve_stub() as s:
        yield s


@pytest.fixture
def stub(server: DocStub) -> DocStub:
    server.reset()
    return server


def gerrit(stub: DocStub) -> GerritHost:
    creds = Credentials(AuthType.PASSWORD, username="john", password=PASSWORD)
    return GerritHost(creds, base_url=stub.url, allow_private=True, sleep=lambda _s: None)


def doc(name: str) -> Answer:
    return Answer(body=fixture_bytes("gerrit", name))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def repo(name: str = "work/my-project") -> RemoteRepository:
    return RemoteRepository(external_id=name, name=name, clone_url="")


def test_capabilities_say_what_gerrit_cannot_do(stub: DocStub) -> None:
    host = gerrit(stub)
    assert isinstance(host, GitHost)
    assert Capability.CREATE_PULL_REQUEST not in host.info.capabilities
    assert Capability.WEBHOOKS not in host.info.capabilities
    with pytest.raises(AppError) as e:
        host.create_pull_request(repo(), source="a", target="master", title="t", body="b")
    assert e.value.code == "unsupported" and "refs/for/master" in e.value.message
    with pytest.raises(AppError, match="webhooks"):
        host.register_webhook(repo(), "https://app.test/hook", "s")


def test_xssi_prefix_is_stripped_by_the_shared_clients_hook(stub: DocStub) -> None:
    assert strip_xssi(b")]}'\n[1]") == b"\n[1]"
    assert strip_xssi(b'{"a": 1}') == b'{"a": 1}'  # tolerated without the prefix too
    stub.on("GET", "/a/accounts/self", Answer(body=b'{"username": "plain"}'))
    assert gerrit(stub).validate_credentials() == "plain"
    stub.on("GET", "/a/accounts/self", Answer(body=b")]}'\n{not json"))
    with pytest.raises(HostError, match="valid JSON"):
        gerrit(stub).validate_credentials()


def test_validate_credentials_uses_basic_auth_under_a(stub: DocStub) -> None:
    stub.on("GET", "/a/accounts/self", doc("account_self.txt"))
    assert gerrit(stub).validate_credentials() == "john"
    assert stub.calls[0].headers["authorization"] == basic("john", PASSWORD)


def test_wrong_password_is_an_auth_error_without_it(stub: DocStub) -> None:
    stub.on("GET", "/a/accounts/self", Answer(401, f"Unauthorized {PASSWORD}", {"Content-Type": "text/plain"}))
    with pytest.raises(HostAuthError) as e:
        gerrit(stub).validate_credentials()
    assert PASSWORD not in str(e.value)


def test_list_projects_pages_with_n_and_s(stub: DocStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connect_app.hosts.gerrit.PAGE_SIZE", 4)

    def projects(call: Call) -> Answer:
        return doc("projects.txt") if call.arg("S") == "0" else doc("projects_skip.txt")

    stub.on("GET", "/a/projects/", projects)
    repos = list(gerrit(stub).list_repositories())
    assert [r.name for r in repos] == [
        "external/bison",
        "external/gcc",
        "external/openssl",
        "test",
        "some-other-project",
    ]
    assert [(c.arg("n"), c.arg("S")) for c in stub.calls] == [("4", "0"), ("4", "4")]
    assert "d" in stub.calls[0].args and stub.calls[0].arg("type") == "CODE"
    assert repos[0].namespace == "external" and repos[0].clone_url == f"{stub.url}/a/external/bison"


def test_a_server_ignoring_skip_is_not_paged_forever(stub: DocStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connect_app.hosts.gerrit.PAGE_SIZE", 2)
    stub.on("GET", "/a/projects/work%2Fmy-project/branches/", doc("branches.txt"))  # the same full page
    with pytest.raises(HostError, match="same page twice"):
        list(gerrit(stub).list_branches(repo()))
    assert [c.arg("S") for c in stub.calls] == ["0", "4"]


def test_branches_skip_non_branch_refs_and_encode_names(stub: DocStub) -> None:
    stub.on("GET", "/a/projects/work%2Fmy-project/branches/", doc("branches.txt"))
    branches = list(gerrit(stub).list_branches(repo()))
    assert [(b.name, b.head_sha) for b in branches] == [
        ("master", "67ebf73496383c6777035e374d2d664009e2aa5c"),
        ("stable", "64ca533bd0eb5252d2fee83f63da67caae9b4674"),
    ]


def test_create_branch_puts_revision(stub: DocStub) -> None:
    stub.on("PUT", "/a/projects/MyProject/branches/stable", Answer(201, fixture_bytes("gerrit", "branch_created.txt")))
    branch = gerrit(stub).create_branch(repo("MyProject"), "stable", "76016386a0d8ecc7b6be212424978bb45959d668")
    assert stub.calls[0].json() == {"revision": "76016386a0d8ecc7b6be212424978bb45959d668"}
    assert (branch.name, branch.head_sha) == ("stable", "76016386a0d8ecc7b6be212424978bb45959d668")


def test_changes_query_paging_and_mapping(stub: DocStub) -> None:
    first = fixture_bytes("gerrit", "changes_current_revision.txt")
    # Gerrit marks the last change of a page with "_more_changes": true when more match
    first = first.replace(
        b'"ref": "refs/changes/97/97/1"\n        }\n      }',
        b'"ref": "refs/changes/97/97/1"\n        }\n      },\n      "_more_changes": true',
    )
    second = b")]}'\n[" + fixture_bytes("gerrit", "change_merge_patch_set.txt")[5:] + b"]"

    def changes(call: Call) -> Answer:
        return Answer(body=first if call.arg("S") == "0" else second)

    stub.on("GET", "/a/changes/", changes)
    since = datetime(2012, 1, 1, tzinfo=UTC)
    prs = list(gerrit(stub).list_pull_requests(repo("gerrit"), updated_since=since))
    call = stub.calls[0]
    assert call.arg("q") == 'project:gerrit after:"2012-01-01 00:00:00 +0000"'
    assert call.arg("o") == "CURRENT_REVISION"
    assert [c.arg("S") for c in stub.calls] == ["0", "1"]
    change = prs[0]
    assert (change.external_id, change.state, change.source_branch, change.target_branch) == (
        "97",
        PullRequestState.OPEN,
        "refs/changes/97/97/1",
        "master",
    )
    assert change.title == "Use an EventBus to manage star icons" and change.author == "Shawn Pearce"
    assert change.url == f"{stub.url}/c/gerrit/+/97"
    assert change.updated_at == datetime(2012, 4, 25, 0, 52, 25, 586000, tzinfo=UTC)
    assert prs[1].external_id == "72" and prs[1].source_branch == "27cc4558b5a3d3387dd11ee2df7a117e7e581822"


def test_status_mapping_and_timestamps() -> None:
    assert [state_of(s) for s in ("NEW", "MERGED", "ABANDONED")] == [
        PullRequestState.OPEN,
        PullRequestState.MERGED,
        PullRequestState.DECLINED,
    ]
    assert parse_timestamp("2013-02-01 09:59:32.126000000") == datetime(2013, 2, 1, 9, 59, 32, 126000, tzinfo=UTC)


def test_permission_from_project_access_with_the_users_password(stub: DocStub) -> None:
    stub.on("GET", "/a/projects/MyProject/access", doc("project_access.txt"))
    user = Credentials(AuthType.PASSWORD, username="jane", password=USER_PASSWORD)
    assert gerrit(stub).repository_permission(repo("MyProject"), user) is Permission.ADMIN
    assert stub.calls[0].headers["authorization"] == basic("jane", USER_PASSWORD)
    assert gerrit(stub).repository_permission(repo("Secret"), user) is Permission.NONE


def test_errors_are_mapped(stub: DocStub) -> None:
    stub.on("GET", "/a/projects/broken/branches/", Answer(502, "bad gateway", {"Content-Type": "text/plain"}))
    with pytest.raises(HostNotFound):
        list(gerrit(stub).list_branches(repo("missing")))
    with pytest.raises(HostUnavailable):
        list(gerrit(stub).list_branches(repo("broken")))
