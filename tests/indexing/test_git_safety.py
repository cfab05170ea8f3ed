"""connect_app.indexing.git_safety: ref names, clone URLs, and the addresses git may connect to."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connect_app.errors import UnsafeInput, ValidationError
from connect_app.indexing.git import GitRunner, validate_clone_url, validate_ref_name
from connect_app.indexing.git_safety import Target, resolve_target
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import git_env

BAD_URLS = {
    "ext::sh -c touch% /tmp/gcj-pwned": "remote-helper",
    "file:///etc": "only https://",
    "-oProxyCommand=touch /tmp/gcj-pwned": "must not start with '-'",
    "--upload-pack=touch /tmp/gcj-pwned": "must not start with '-'",
    "http://169.254.169.254/": "link-local or cloud metadata",
    "/etc/passwd": "local paths are not allowed",
    "./repo": "local paths are not allowed",
    "ssh://-oProxyCommand=x/repo": "must not start with '-'",
    "ssh://-oProxyCommand=x@127.0.0.1/repo": "user name in the clone URL must not start with '-'",
    "ssh://git@127.0.0.1/-oProxyCommand=x": "path must not start with '-'",
    "git@-oProxyCommand=x:repo": "must not start with '-'",
    "-oProxyCommand=x@127.0.0.1:repo": "must not start with '-'",
    "git://example.com/repo.git": "only https://",
    "https://alice:hunter2@example.com/repo.git": "must not contain a user name or password",
}


# --------------------------------------------------------------------------- ref names


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("-x", "start with '-'"),
        ("a..b", "'..'"),
        ("x.lock", ".lock"),
        ("feature/x.lock/y", ".lock"),
        ("@{u}", "'@{'"),
        ("@", "'@' alone"),
        ("a b", "spaces"),
        ("a\tb", "control"),
        ("a~1", "~"),
        ("a^", "^"),
        ("a:b", ":"),
        ("a?", "?"),
        ("a*", "*"),
        ("a[b", "["),
        ("a\\b", "\\"),
        ("/a", "'/'"),
        ("a/", "'/'"),
        ("a.", "end with '.'"),
        (".a", "start with '.'"),
        ("a/.b", "start with '.'"),
        ("a//b", "'//'"),
        ("", "empty"),
        ("a\x7fb", "control"),
    ],
)
def test_validate_ref_name_refuses_with_reason(name: str, reason: str) -> None:
    with pytest.raises(ValidationError) as e:
        validate_ref_name(name)
    assert reason in e.value.message


@pytest.mark.parametrize("name", ["main", "feature/ABC-12-fix", "release/1.x", "v1.0", "caf\u00e9", "a@b", "HEAD"])
def test_validate_ref_name_accepts_ordinary_names(name: str) -> None:
    assert validate_ref_name(name) == name


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab./-@{}~^:?*[\\ .lock\x01", min_size=1, max_size=12))
def test_validate_ref_name_agrees_with_git_check_ref_format(name: str) -> None:
    git_ok = (
        subprocess.run(
            ["git", "check-ref-format", "--allow-onelevel", name], env=git_env(), capture_output=True, check=False
        ).returncode
        == 0
    )
    try:
        validate_ref_name(name)
        ours = True
    except ValidationError:
        ours = False
    # We additionally refuse a leading '-' (git accepts it for non-branch refs).
    assert ours == (git_ok and not name.startswith("-"))


# --------------------------------------------------------------------------- clone URLs


@pytest.mark.parametrize(("url", "fragment"), BAD_URLS.items())
def test_bad_clone_urls_are_refused_with_a_clear_message(url: str, fragment: str) -> None:
    with pytest.raises(UnsafeInput) as e:
        validate_clone_url(url, allow_private=True)
    assert fragment in e.value.message


def test_clone_url_forms_that_are_accepted(git_repo: ServedRepo) -> None:
    assert validate_clone_url(git_repo.url, allow_private=True) == git_repo.url
    for url in (
        "git@github.com:acme/widgets.git",
        "ssh://git@github.com/acme/widgets.git",
        "https://github.com/acme/widgets.git",
    ):
        assert validate_clone_url(url, allow_private=False, resolve=False) == url


def test_loopback_is_refused_without_allow_private(git_repo: ServedRepo) -> None:
    with pytest.raises(UnsafeInput, match="ALLOW_PRIVATE_HOSTS"):
        validate_clone_url(git_repo.url, allow_private=False)
    with pytest.raises(UnsafeInput):
        GitRunner(allow_private=False).ls_remote(git_repo.url, git_repo.server.auth)


@pytest.mark.parametrize("url", list(BAD_URLS))
def test_bad_urls_never_reach_git(url: str, runner: GitRunner, spawned: list[Any], tmp_path: Path) -> None:
    with pytest.raises(UnsafeInput):
        runner.ls_remote(url)
    with pytest.raises(UnsafeInput):
        runner.clone_mirror(url, tmp_path / "m.git")
    assert spawned == []
    assert not Path("/tmp/gcj-pwned").exists()


# --------------------------------------------------------------------------- address pinning


def test_targets_pin_the_checked_address(fake_dns: dict[str, str]) -> None:
    fake_dns["git.pinned.test"] = "127.0.0.1"
    assert resolve_target("https://git.pinned.test/a.git", allow_private=True) == Target(
        "https://git.pinned.test/a.git", "https", config=("http.curloptResolve=git.pinned.test:443:127.0.0.1",)
    )
    ssh = resolve_target("git@git.pinned.test:team/a.git", allow_private=True)
    assert (ssh.scheme, ssh.config, ssh.ssh_options) == (
        "ssh",
        (),
        ("HostName=127.0.0.1", "HostKeyAlias=git.pinned.test"),
    )
    assert resolve_target("ssh://git@127.0.0.1:2222/a.git", allow_private=True) == Target(
        "ssh://git@127.0.0.1:2222/a.git", "ssh"
    )  # a literal address was judged by the URL check; nothing to pin
    with pytest.raises(UnsafeInput, match="ALLOW_PRIVATE_HOSTS"):
        resolve_target("https://git.pinned.test/a.git", allow_private=False)


def test_git_connects_only_to_the_checked_address(
    runner: GitRunner, git_repo: ServedRepo, fake_dns: dict[str, str], spawned: list[Any]
) -> None:
    fake_dns["git.pinned.test"] = "127.0.0.1"
    url = git_repo.url.replace("127.0.0.1", "git.pinned.test")
    assert "refs/heads/main" in runner.ls_remote(url, git_repo.server.auth)  # .test never resolves for git
    assert any(a.startswith("http.curloptResolve=git.pinned.test:") for a in spawned[-1][0])
    fake_dns["git.pinned.test"] = "169.254.169.254"  # the name now points at the metadata service
    with pytest.raises(UnsafeInput, match="link-local or cloud metadata"):
        runner.ls_remote(url, git_repo.server.auth)
