"""connect_app.indexing.git (GitRunner) against real repositories served by git http-backend on loopback."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from werkzeug.serving import make_server

from connect_app.errors import (
    BadRequest,
    Conflict,
    HostAuthError,
    HostError,
    HostNotFound,
    HostUnavailable,
    UnsafeInput,
    ValidationError,
)
from connect_app.hosts.base import GitAuth
from connect_app.indexing.git import GitRunner
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import (
    CommitSpec,
    GitHttpServer,
    QuietHandler,
    make_bulk_repo,
    make_repo,
    run_git,
)


def source_shas(bare: Path, *args: str) -> set[str]:
    return set(run_git("rev-list", *(args or ("--all",)), cwd=bare).split())


def test_server_handles_gzip_and_chunked_request_bodies(
    runner: GitRunner, open_git_server: GitHttpServer, git_repo_name: str, tmp_path: Path
) -> None:
    specs = [CommitSpec(f"ABC-{i} branch {i}", branch=f"topic/ABC-{i}") for i in range(60)]
    path = open_git_server.add_repo(git_repo_name, lambda p: make_repo(p, [CommitSpec("ABC-0 root"), *specs]))
    open_git_server.reset_requests()
    runner.clone_mirror(open_git_server.url_for(git_repo_name), tmp_path / "m.git")  # 60 wants: gzipped
    assert any(r.gzip for r in open_git_server.requests)
    assert {c.sha for c in runner.log(tmp_path / "m.git", [], all_refs=True)} == source_shas(path)

    work = tmp_path / "work"
    run_git("clone", "--quiet", open_git_server.url_for(git_repo_name), str(work))
    (work / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # over http.postBuffer: chunked push
    run_git("add", "big.bin", cwd=work)
    run_git("commit", "--quiet", "-m", "ABC-99 big file", cwd=work)
    run_git("push", "--quiet", "origin", "HEAD:refs/heads/big", cwd=work)
    assert any(r.chunked and "receive-pack" in r.path for r in open_git_server.requests)
    assert run_git("rev-parse", "big", cwd=path).strip() == run_git("rev-parse", "HEAD", cwd=work).strip()


# --------------------------------------------------------------------------- remote calls


def test_closed_port_is_host_unavailable(runner: GitRunner, closed_port: int) -> None:
    with pytest.raises(HostUnavailable):
        runner.ls_remote(f"http://127.0.0.1:{closed_port}/x.git")


def test_ls_remote_with_the_right_password(runner: GitRunner, git_repo: ServedRepo) -> None:
    refs = runner.ls_remote(git_repo.url, git_repo.server.auth)
    expected = run_git("show-ref", "-d", cwd=git_repo.path)
    assert refs == {ref: sha for sha, ref in (line.split(" ", 1) for line in expected.splitlines())}
    run_git("update-ref", "refs/pull/1/head", "main", cwd=git_repo.path)  # like GitHub's PR refs
    assert "refs/pull/1/head" not in runner.ls_remote(git_repo.url, git_repo.server.auth)
    every = runner.ls_remote(git_repo.url, git_repo.server.auth, all_refs=True)
    assert every["HEAD"] == every["refs/pull/1/head"] == refs["refs/heads/main"]
    assert runner.remote_default_branch(git_repo.url, git_repo.server.auth) == "main"


def test_wrong_password_is_a_host_auth_error_without_the_password(runner: GitRunner, git_repo: ServedRepo) -> None:
    bad = GitAuth(username="alice", password="not-the-Password-123")
    with pytest.raises(HostAuthError) as e:
        runner.ls_remote(git_repo.url, bad)
    assert "refused the username/password or token" in e.value.message
    assert git_repo.server.password
    assert "not-the-Password-123" not in str(e.value) and git_repo.server.password not in str(e.value)
    with pytest.raises(HostAuthError):
        runner.ls_remote(git_repo.url)  # no credentials at all: no prompt, a clear error


def test_http_header_auth(runner: GitRunner, git_repo: ServedRepo, spawned: list[Any]) -> None:
    import base64

    token = base64.b64encode(f"alice:{git_repo.server.password}".encode()).decode()
    refs = runner.ls_remote(git_repo.url, GitAuth(http_header=f"Authorization: Basic {token}"))
    assert "refs/heads/main" in refs
    argv, env = spawned[-1]
    assert not any(token in a for a in argv)
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader" and token in env["GIT_CONFIG_VALUE_0"]
    with pytest.raises(ValidationError):
        runner.ls_remote(git_repo.url, GitAuth(http_header="Authorization: x\r\nX-Evil: 1"))


def test_missing_repository_is_host_not_found(runner: GitRunner, git_server: GitHttpServer) -> None:
    with pytest.raises(HostNotFound):
        runner.ls_remote(git_server.url_for("does-not-exist"), git_server.auth)


def test_redirects_are_not_followed(runner: GitRunner, git_repo: ServedRepo) -> None:
    def redirect(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("301 Moved Permanently", [("Location", git_repo.url + "/info/refs?service=git-upload-pack")])
        return [b""]

    server = make_server("127.0.0.1", 0, redirect, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(HostError, match="redirected"):
            runner.ls_remote(f"http://127.0.0.1:{server.server_port}/moved.git", git_repo.server.auth)
    finally:
        server.shutdown()
        server.server_close()


def test_output_is_bounded(git_repo: ServedRepo) -> None:
    with pytest.raises(HostError, match="larger than 100 bytes"):
        GitRunner(allow_private=True, max_output=100).ls_remote(git_repo.url, git_repo.server.auth)


def test_secrets_never_in_argv_urls_or_errors(
    runner: GitRunner, git_repo: ServedRepo, spawned: list[Any], tmp_path: Path
) -> None:
    auth = git_repo.server.auth
    assert auth.password
    mirror = tmp_path / "m.git"
    runner.ls_remote(git_repo.url, auth)
    runner.clone_mirror(git_repo.url, mirror, auth)
    runner.fetch(mirror, auth)
    head = runner.list_refs(mirror)[0][1]
    runner.create_branch_remote(git_repo.url, auth, "feature/ABC-5-secret-check", head)
    assert len(spawned) >= 5
    for argv, env in spawned:
        assert not any(auth.password in a for a in argv), argv
        assert not any("@127.0.0.1" in a for a in argv), argv
        if "GCJ_GIT_PASSWORD" in env:
            assert [k for k, v in env.items() if auth.password in v] == ["GCJ_GIT_PASSWORD"]
            assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_ALLOW_PROTOCOL"] == "https:http:ssh"
            assert "credential.helper=" in argv and "core.hooksPath=/dev/null" in argv
    assert auth.password not in (mirror / "config").read_text()


# --------------------------------------------------------------------------- mirror + log


def test_blobless_mirror_log_equals_git_log_all(runner: GitRunner, git_repo: ServedRepo, tmp_path: Path) -> None:
    server = git_repo.server
    mirror = tmp_path / "mirrors" / "demo.git"
    server.reset_requests()
    runner.clone_mirror(git_repo.url, mirror, server.auth)
    assert server.filter_requested
    assert not list(tmp_path.joinpath("mirrors").glob(".*partial*"))

    server.reset_requests()
    commits = list(runner.log(mirror, [], all_refs=True))
    assert server.request_count == 0  # log is offline: no lazy blob fetches
    assert {c.sha for c in commits} == source_shas(git_repo.path)
    assert len(commits) == len({c.sha for c in commits})
    objects = run_git("cat-file", "--batch-all-objects", "--batch-check=%(objecttype)", cwd=mirror).split()
    assert "blob" not in objects and "commit" in objects

    by_sha = {c.sha: c for c in commits}
    for sha in source_shas(git_repo.path):
        want = run_git("show", "-s", "--format=%an%x00%ae%x00%at%x00%B", sha, cwd=git_repo.path)
        name, email, at, message = want.split("\0")
        files = run_git(
            "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", "--no-renames", sha, cwd=git_repo.path
        ).split()
        got = by_sha[sha]
        assert (got.author_name, got.author_email, int(got.authored_at.timestamp())) == (name, email, int(at))
        assert got.message == message.rstrip("\n")
        assert list(got.files) == ([] if len(got.parents) > 1 else files)
    assert any("\u00e9" in c.message for c in commits) and any(len(c.parents) == 2 for c in commits)

    assert dict(runner.list_refs(mirror)) == {
        r: s
        for r, s in runner.ls_remote(git_repo.url, server.auth).items()
        if r.startswith(("refs/heads/", "refs/tags/")) and not r.endswith("^{}")
    }
    peeled = dict(runner.list_refs(mirror, peel=True))
    assert peeled["refs/tags/v1.0"] == run_git("rev-parse", "v1.0^{commit}", cwd=git_repo.path).strip()


def test_full_clone_when_the_server_refuses_filters(runner: GitRunner, git_server_factory: Any, tmp_path: Path) -> None:
    server = git_server_factory(allow_filter=False)
    path = server.add_repo("nofilter", make_repo)
    runner.clone_mirror(server.url_for("nofilter"), tmp_path / "m.git")
    assert {c.sha for c in runner.log(tmp_path / "m.git", [], all_refs=True)} == source_shas(path)


def test_set_origin_moves_a_mirror_to_a_new_url(runner: GitRunner, git_repo: ServedRepo, tmp_path: Path) -> None:
    mirror = tmp_path / "m.git"
    runner.clone_mirror(git_repo.url, mirror, git_repo.server.auth)
    moved = git_repo.server.add_repo(
        git_repo.name + "-moved", lambda p: run_git("clone", "--quiet", "--bare", str(git_repo.path), str(p))
    )
    git_repo.builder.commit("ABC-50 only in the old place")
    git_repo.builder.publish()
    runner.set_origin(mirror, git_repo.server.url_for(git_repo.name + "-moved"))
    runner.fetch(mirror, git_repo.server.auth)
    show_ref = (line.split(" ") for line in run_git("show-ref", cwd=moved).splitlines())
    assert dict(runner.list_refs(mirror)) == {ref: sha for sha, ref in show_ref}
    with pytest.raises(UnsafeInput):
        runner.set_origin(mirror, "ext::sh -c x")


def test_fetch_picks_up_only_new_commits(runner: GitRunner, git_repo: ServedRepo, tmp_path: Path) -> None:
    auth, mirror = git_repo.server.auth, tmp_path / "m.git"
    runner.clone_mirror(git_repo.url, mirror, auth)
    before = dict(runner.list_refs(mirror, peel=True))

    b = git_repo.builder
    new = {
        b.commit("ABC-40 more on main", branch="main"),
        b.commit("ABC-41 again", branch="main"),
        b.commit("ABC-42 brand new branch", branch="feature/ABC-42-new"),
    }
    b.tag("v2.0", "release 2")
    b.publish()
    run_git("branch", "-D", "release/1.x", cwd=git_repo.path)

    runner.fetch(mirror, auth)
    after = dict(runner.list_refs(mirror, peel=True))
    assert "refs/heads/release/1.x" not in after  # pruned
    assert after["refs/heads/feature/ABC-42-new"] in new and "refs/tags/v2.0" in after
    fresh = list(runner.log(mirror, sorted(set(after.values())), sorted(set(before.values()))))
    assert {c.sha for c in fresh} == new
    assert list(runner.log(mirror, sorted(set(after.values())), sorted(set(after.values())))) == []


def test_log_streams_large_histories_and_stops_early(
    runner: GitRunner, git_server: GitHttpServer, git_repo_name: str, tmp_path: Path, spawned: list[Any]
) -> None:
    path = git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, 3000, branches=3))
    mirror = tmp_path / "bulk.git"
    runner.clone_mirror(git_server.url_for(git_repo_name), mirror, git_server.auth)
    commits = runner.log(mirror, [], all_refs=True)
    assert sum(1 for c in commits if c.files_changed == 1) == 3000 == len(source_shas(path))

    stream = runner.log(mirror, ["refs/heads/main"])
    first = [next(stream) for _ in range(5)]
    assert len({c.sha for c in first}) == 5
    stream.close()  # the git process is killed, not left writing into a full pipe
    children = psutil.Process().children(recursive=True)
    assert not [c for c in children if c.name() == "git" and "--stdin" in c.cmdline()]
    assert spawned[-1][0][-1].startswith("--format") and spawned[-1][1]["GIT_ALLOW_PROTOCOL"] == "none"


@pytest.mark.parametrize("rev", ["-x", "--all", "--output=/tmp/x", "a\nb"])
def test_log_refuses_option_like_revisions(runner: GitRunner, rev: str, spawned: list[Any], tmp_path: Path) -> None:
    with pytest.raises(UnsafeInput):
        list(runner.log(tmp_path, [rev]))
    with pytest.raises(UnsafeInput):
        list(runner.log(tmp_path, ["main"], [rev]))
    assert spawned == []


def test_clone_refuses_an_existing_mirror(runner: GitRunner, git_repo: ServedRepo, tmp_path: Path) -> None:
    (tmp_path / "m.git").mkdir()
    (tmp_path / "m.git" / "HEAD").write_text("x")
    with pytest.raises(Conflict):
        runner.clone_mirror(git_repo.url, tmp_path / "m.git", git_repo.server.auth)


# --------------------------------------------------------------------------- branches


def test_create_branch_remote_pushes_a_branch(runner: GitRunner, git_repo: ServedRepo) -> None:
    auth = git_repo.server.auth
    main = run_git("rev-parse", "main", cwd=git_repo.path).strip()
    assert (
        runner.create_branch_remote(git_repo.url, auth, "feature/ABC-77-new", main) == "refs/heads/feature/ABC-77-new"
    )
    assert run_git("rev-parse", "feature/ABC-77-new", cwd=git_repo.path).strip() == main
    assert git_repo.server.requests[-1].user == "alice"

    with pytest.raises(Conflict):  # never moves an existing branch
        runner.create_branch_remote(git_repo.url, auth, "feature/ABC-77-new", main)
    old = run_git("rev-parse", "main~2", cwd=git_repo.path).strip()  # main~1 is tag v0.1
    with pytest.raises(ValidationError, match="tip of a branch or tag"):
        runner.create_branch_remote(git_repo.url, auth, "feature/ABC-78", old)
    tag_commit = run_git("rev-parse", "v1.0^{commit}", cwd=git_repo.path).strip()
    runner.create_branch_remote(git_repo.url, auth, "from-tag", tag_commit)
    with pytest.raises(HostAuthError):
        runner.create_branch_remote(git_repo.url, GitAuth("alice", "wrong"), "nope", main)


@pytest.mark.parametrize("name", ["-x", "a..b", "x.lock", "@{u}", "HEAD", "a b"])
def test_create_branch_remote_refuses_bad_names_before_any_network(
    runner: GitRunner, name: str, spawned: list[Any]
) -> None:
    with pytest.raises(BadRequest):
        runner.create_branch_remote("http://127.0.0.1:9/x.git", None, name, "a" * 40)
    assert spawned == []
