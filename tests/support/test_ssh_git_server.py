"""The ssh test server serves git and nothing else: other commands, paths outside its root and
password logins are refused (checked with the real OpenSSH client)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.git_server import make_repo
from tests.support.ssh_git_server import SshGitServer

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="the OpenSSH client ('ssh') is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGitServer]:
    root = tmp_path_factory.mktemp("ssh-smoke")
    with SshGitServer(root / "repos") as srv:
        srv.add_repo("demo", make_repo)
        (root / "outside.git").mkdir()
        subprocess.run(["git", "init", "--quiet", "--bare", str(root / "outside.git")], check=True)
        (root / "repos" / "link.git").symlink_to(root / "outside.git")
        yield srv


def ssh(server: SshGitServer, tmp_path: Path, command: str, *, key: bool = True) -> subprocess.CompletedProcess[str]:
    identity = tmp_path / "id"
    if not identity.exists():
        identity.write_text(server.client_private_key)
        os.chmod(identity, 0o600)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {server.host_key_line}\n")
    argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
    argv += ["-o", f"UserKnownHostsFile={known}", "-p", str(server.port)]
    argv += ["-i", str(identity)] if key else ["-o", "IdentityFile=none"]
    return subprocess.run(
        [*argv, "git@127.0.0.1", command], input="0000", capture_output=True, text=True, timeout=30, check=False
    )


def test_serves_upload_pack_for_a_repository_in_its_root(server: SshGitServer, tmp_path: Path) -> None:
    done = ssh(server, tmp_path, "git-upload-pack '/demo.git'")
    assert done.returncode == 0, done.stderr
    assert "refs/heads/main" in done.stdout  # the v0 ref advertisement
    assert server.commands[-1].accepted and server.commands[-1].exit_status == 0


@pytest.mark.parametrize(
    "command",
    [
        "id",
        "git-upload-pack",
        "git-upload-pack '/demo.git' extra",
        "git-upload-archive '/demo.git'",
        "git-upload-pack '../outside.git'",
        "git-upload-pack '/demo.git/../../outside.git'",
        "git-upload-pack '~/demo.git'",
        "git-upload-pack '/link.git'",  # a symlink out of the root
        "git-upload-pack '/'",
        "git-upload-pack '/missing.git'",
        "git-upload-pack '--help'",
        "git-upload-pack 'unterminated",
    ],
)
def test_refuses_anything_else(server: SshGitServer, tmp_path: Path, command: str) -> None:
    done = ssh(server, tmp_path, command)
    assert done.returncode == 128
    assert "only serves git-upload-pack/git-receive-pack" in done.stderr
    assert server.commands[-1].command == command and not server.commands[-1].accepted


def test_public_key_auth_only(server: SshGitServer, tmp_path: Path) -> None:
    done = ssh(server, tmp_path, "git-upload-pack '/demo.git'", key=False)
    assert done.returncode == 255 and "Permission denied (publickey)" in done.stderr
