"""connect_app.indexing.git_process: sandbox, environment, deadline, and error mapping/scrubbing."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from connect_app.errors import (
    AppError,
    Conflict,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    UnsafeInput,
    ValidationError,
)
from connect_app.hosts.base import GitAuth
from connect_app.indexing.git import GitRunner
from connect_app.indexing.git_process import GitProcess, git_environment, git_error, sandbox, scrub
from connect_app.indexing.git_safety import Target

KEY_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
SSH_KEY = (
    f"-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_BODY}\nQyNTUxOQAAACDfakefakefake\n-----END OPENSSH PRIVATE KEY-----\n"
)


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/gcj-pwned-env", "file:///etc", "fd::3"])
def test_git_environment_itself_blocks_dangerous_transports(url: str, runner: GitRunner) -> None:
    # Defence in depth: even if validation were bypassed, GIT_ALLOW_PROTOCOL stops these.
    with pytest.raises(UnsafeInput, match="transport is not allowed"):
        runner._run("ls-remote", "--", url, target=Target(url, "ext"), timeout=10)
    assert not Path("/tmp/gcj-pwned-env").exists()


def test_timeout_kills_git_and_is_host_unavailable(silent_port: int, spawned: list[Any]) -> None:
    url = f"http://127.0.0.1:{silent_port}/slow.git"
    with pytest.raises(HostUnavailable, match="did not answer within 1s"):
        GitRunner(allow_private=True, network_timeout=1).ls_remote(url)
    leftovers = subprocess.run(["pgrep", "-f", url], capture_output=True, text=True, check=False)
    assert leftovers.stdout.strip() == ""


def test_environment_is_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    monkeypatch.setenv("GIT_SSH_COMMAND", "evil")
    env = git_environment(GitAuth("u", "p"), "ssh -F /dev/null", offline=False)
    assert not {"SSH_AUTH_SOCK", "GIT_DIR"} & env.keys()
    assert env["GIT_SSH_COMMAND"] == "ssh -F /dev/null" and env["HOME"] == str(sandbox() / "home")
    assert env["GIT_ALLOW_PROTOCOL"] == "https:http:ssh" and env["GCJ_GIT_PASSWORD"] == "p"
    offline = git_environment(None, "ssh", offline=True, git_dir=Path("/m.git"))
    assert (offline["GIT_ALLOW_PROTOCOL"], offline["GIT_NO_LAZY_FETCH"], offline["GIT_DIR"]) == ("none", "1", "/m.git")
    assert "GIT_ASKPASS" not in offline
    with pytest.raises(ValidationError):
        git_environment(GitAuth(http_header="Authorization: x\r\nX-Evil: 1"), "ssh")
    with pytest.raises(ValidationError):
        git_environment(GitAuth(http_header="no colon"), "ssh")


def test_sandbox_is_private() -> None:
    box = sandbox()
    assert box.stat().st_mode & 0o777 == 0o700
    assert (box / "home").stat().st_mode & 0o777 == 0o700
    assert os.access(box / "askpass.sh", os.X_OK)


@pytest.mark.parametrize(
    ("stderr", "cls", "fragment"),
    [
        ("fatal: transport 'ext' not allowed", UnsafeInput, "transport is not allowed"),
        ("fatal: Authentication failed for 'https://h/r.git/'", HostAuthError, "username/password or token"),
        (
            "git@h: Permission denied (publickey).\r\nfatal: Could not read from remote repository.",
            HostAuthError,
            "refused the SSH key",
        ),
        ("git@h: Permission denied (password,keyboard-interactive).", HostAuthError, "username/password"),
        (
            'Load key "/tmp/x/id": invalid format\r\ngit@h: Permission denied (publickey).',
            HostAuthError,
            "could not be read",
        ),
        ("Host key verification failed.\r\nfatal: Could not read from remote repository.", HostError, "host key"),
        ("remote: Permission to a/b.git denied to bob.\nfatal: error: 403", HostPermissionDenied, "lack access"),
        ("! [rejected] x -> x (stale info)", Conflict, "already exists"),
        ("fatal: repository 'https://h/x.git/' not found", HostNotFound, "not found"),
        ("ssh: connect to host 127.0.0.1 port 9: Connection refused", HostUnavailable, "could not be reached"),
        ("something odd", HostError, "failed (something odd)"),
    ],
)
def test_stderr_maps_to_one_error(stderr: str, cls: type[AppError], fragment: str) -> None:
    error = git_error("fetch", stderr, None)
    assert type(error) is cls and fragment in error.message


def test_ssh_reason_is_the_detail_not_git_generic_line() -> None:
    error = git_error("fetch", "Host key verification failed.\r\nfatal: Could not read from remote repository.\n", None)
    assert error.message.endswith("(Host key verification failed.)")


def test_scrub_removes_every_secret() -> None:
    auth = GitAuth("alice", "s3cret-Password", "Authorization: Bearer tok-123", ssh_private_key=SSH_KEY)
    text = (
        f"fatal: unable to access 'https://u:s3cret-Password@h/'\nerror: s3cret-Password tok-123\n{SSH_KEY}\n{KEY_BODY}"
    )
    scrubbed = scrub(text, auth)
    for secret in ("s3cret-Password", "tok-123", KEY_BODY, "QyNTUxOQAAACDfakefakefake"):
        assert secret not in scrubbed
    assert "***@h/" in scrubbed
    assert "s3cret-Password" not in git_error("fetch", text, auth).message
    assert "s3cret" not in repr(auth) and KEY_BODY not in repr(auth) and KEY_BODY not in str(auth)


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are a Linux feature")
def test_git_output_gets_a_pipe_wide_enough_to_run_ahead(tmp_path: Path) -> None:
    """``git log`` keeps producing while the indexer writes a batch instead of stalling at 64 KiB."""
    env = git_environment(None, "ssh", offline=True)
    proc = GitProcess(["git", "version"], env, tmp_path, 30, None)
    try:
        size = fcntl.fcntl(proc.stdout.fileno(), fcntl.F_GETPIPE_SZ)
        assert proc.stdout.read().startswith(b"git version")
    finally:
        assert proc.finish() == 0
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    assert size >= min(1024 * 1024, limit)
