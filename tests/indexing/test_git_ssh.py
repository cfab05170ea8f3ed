"""git over ssh: the ssh command and its per-call key / host-key files (connect_app.indexing.git_ssh),
and the runner against a real ssh server on loopback (tests/support/ssh_git_server.py, asyncssh)."""

from __future__ import annotations

import logging
import shlex
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from connect_app.errors import Conflict, HostAuthError, HostError, HostUnavailable, UnsafeInput, ValidationError
from connect_app.hosts.base import GitAuth
from connect_app.indexing.git import GitRunner
from connect_app.indexing.git_process import sandbox
from connect_app.indexing.git_safety import Target
from connect_app.indexing.git_ssh import pinned_host_keys, private_key_text, ssh_command
from tests.support.git_server import make_repo, run_git
from tests.support.ssh_git_server import SshGitServer, public_key_line

needs_ssh = pytest.mark.skipif(
    shutil.which("ssh") is None, reason="the OpenSSH client ('ssh') is not installed, so git cannot use ssh URLs here"
)
SSH_TARGET = Target("ssh://git@127.0.0.1:2222/r.git", "ssh")


def key_lines(key: str) -> list[str]:
    """The secret part of a private key, line by line (what must never leak)."""
    return [ln for ln in key.splitlines() if ln and not ln.startswith("-----")]


def call_dirs() -> list[Path]:
    return sorted(sandbox().glob("ssh-*"))


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGitServer]:
    with SshGitServer(tmp_path_factory.mktemp("ssh-git-server")) as server:
        yield server


@pytest.fixture
def ssh_repo(ssh_server: SshGitServer, request: pytest.FixtureRequest) -> tuple[str, Path]:
    name = request.node.name.replace("[", "-").replace("]", "")[:60]
    holder: dict[str, Any] = {}
    path = ssh_server.add_repo(name, lambda p: holder.setdefault("b", make_repo(p)))
    ssh_server.reset()
    return ssh_server.url_for(name), path


@pytest.fixture
def ssh_runner(tmp_path: Path) -> GitRunner:
    # Always a test-owned known_hosts: trust on first use must never write the real ~/.ssh.
    return GitRunner(allow_private=True, network_timeout=30, known_hosts=tmp_path / "known_hosts")


@pytest.fixture
def key_auth(ssh_server: SshGitServer) -> GitAuth:
    return GitAuth(ssh_private_key=ssh_server.client_private_key)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each git the runner starts: argv, env, the ssh words, and the key file as it was at that moment."""
    calls: list[dict[str, Any]] = []
    real = subprocess.Popen

    def recording(argv: list[str], *a: Any, **kw: Any) -> Any:
        env = dict(kw.get("env") or {})
        if "GIT_ALLOW_PROTOCOL" in env:
            words = shlex.split(env["GIT_SSH_COMMAND"])
            call: dict[str, Any] = {"argv": list(argv), "env": env, "ssh": words, "key": None}
            if "-i" in words:
                key = Path(words[words.index("-i") + 1])
                call.update(
                    key=key,
                    key_mode=stat.S_IMODE(key.stat().st_mode),
                    dir_mode=stat.S_IMODE(key.parent.stat().st_mode),
                    key_text=key.read_text(),
                )
            calls.append(call)
        return real(argv, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", recording)
    return calls


def effective_ssh_config(words: list[str]) -> dict[str, list[str]]:
    """What ssh itself makes of the command line (``ssh -G``), option -> values."""
    out = subprocess.run([*words, "-G", "-p", "2222", "git@127.0.0.1"], capture_output=True, text=True, check=True)
    config: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        name, _, value = line.partition(" ")
        config.setdefault(name, []).append(value)
    return config


# --------------------------------------------------------------------------- key and host-key text


def test_private_key_text_normalises_and_refuses_what_ssh_cannot_use() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
    assert private_key_text(key.replace("\n", "\r\n") + "\r\n\r\n") == key
    ecdsa = asyncssh.generate_private_key("ecdsa-sha2-nistp256")
    for fmt in ("pkcs1-pem", "pkcs8-pem"):
        pem = ecdsa.export_private_key(fmt).decode()
        assert private_key_text(pem) == pem
    public = public_key_line(ecdsa)
    for bad in ("", "hunter2", public, key.replace("OPENSSH PRIVATE", "SOMETHING"), key[:-40]):
        with pytest.raises(ValidationError, match="whole text of an unencrypted") as e:
            private_key_text(bad)
        assert not any(line in e.value.message for line in key_lines(key))
    for encrypted in (
        ecdsa.export_private_key("pkcs8-pem", passphrase="pw").decode(),  # ENCRYPTED PRIVATE KEY
        ecdsa.export_private_key("pkcs1-pem", passphrase="pw").decode(),  # Proc-Type: 4,ENCRYPTED
    ):
        with pytest.raises(ValidationError, match="passphrase"):
            private_key_text(encrypted)


def test_private_key_text_refuses_an_encrypted_openssh_key(tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", str(tmp_path / "k")], check=True)
    with pytest.raises(ValidationError, match="passphrase"):
        private_key_text((tmp_path / "k").read_text())
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k2")], check=True)
    assert private_key_text((tmp_path / "k2").read_text()).startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")


def test_pinned_host_keys_accept_bare_keys_keyscan_and_known_hosts_lines() -> None:
    ed = public_key_line(asyncssh.generate_private_key("ssh-ed25519"))
    ec = public_key_line(asyncssh.generate_private_key("ecdsa-sha2-nistp256"))
    text = f"# git.example.com:22 SSH-2.0-OpenSSH\r\n{ed} a comment\n\n[git.example.com]:2222,10.0.0.1 {ec}\n"
    assert pinned_host_keys(text) == [ed, ec]
    ed_type, ed_b64 = ed.split()
    for bad in (
        "",
        "# only a comment",
        "ssh-ed25519",
        f"ssh-rsa {ed_b64}",
        f"{ed_type} not-base64!",
        f"@revoked * {ed}",
    ):
        with pytest.raises(ValidationError):
            pinned_host_keys(bad)


@needs_ssh
def test_ssh_command_without_a_key_uses_no_identity_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/not-an-agent")
    with ssh_command(None, SSH_TARGET, known_hosts=Path("/tmp/kh")) as command:
        config = effective_ssh_config(shlex.split(command))
        assert call_dirs() == []  # nothing to write
    # Not the service user's ~/.ssh/id_* keys, not an agent, not ~/.ssh/config: a tenant
    # without a key must never borrow the service's (or another tenant's) identity.
    assert config["identityfile"] == ["none"] and config["identitiesonly"] == ["yes"]
    assert config["identityagent"] == ["none"] and config["batchmode"] == ["yes"]
    assert config["stricthostkeychecking"] == ["accept-new"] and config["userknownhostsfile"] == ["/tmp/kh"]
    assert "-F" in shlex.split(command) and "/dev/null" in shlex.split(command)


@needs_ssh
def test_ssh_command_with_a_key_and_a_pinned_host_key(ssh_server: SshGitServer) -> None:
    auth = GitAuth(ssh_private_key=ssh_server.client_private_key, ssh_known_host_key=ssh_server.host_key_line)
    with ssh_command(auth, SSH_TARGET, known_hosts=Path("/tmp/kh")) as command:
        words = shlex.split(command)
        config = effective_ssh_config(words)
        (call_dir,) = call_dirs()
        key, pinned = call_dir / "id", call_dir / "known_hosts"
        assert stat.S_IMODE(call_dir.stat().st_mode) == 0o700 and stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_text() == ssh_server.client_private_key
        assert pinned.read_text() == f"* {ssh_server.host_key_line}\n"
    assert not call_dir.exists()
    assert config["identityfile"] == [str(key)] and config["identitiesonly"] == ["yes"]
    assert config["stricthostkeychecking"] == ["true"]  # "yes"
    assert config["userknownhostsfile"] == [str(pinned)] and config["globalknownhostsfile"] == ["/dev/null"]
    assert not any(line in command for line in key_lines(ssh_server.client_private_key))


def test_ssh_files_only_for_ssh_targets(ssh_server: SshGitServer) -> None:
    auth = GitAuth(ssh_private_key=ssh_server.client_private_key, ssh_known_host_key=ssh_server.host_key_line)
    for target in (None, Target("https://h/r.git", "https")):
        with ssh_command(auth, target, known_hosts=None) as command:
            assert "-i" not in shlex.split(command) and call_dirs() == []


def test_ssh_files_are_removed_when_the_call_fails(ssh_server: SshGitServer) -> None:
    auth = GitAuth(ssh_private_key=ssh_server.client_private_key)
    with pytest.raises(RuntimeError), ssh_command(auth, SSH_TARGET, known_hosts=None):
        assert len(call_dirs()) == 1
        raise RuntimeError("git blew up")
    assert call_dirs() == []


# --------------------------------------------------------------------------- against a real ssh server


@needs_ssh
def test_ssh_is_batch_mode_and_pinned(
    runner: GitRunner, fake_dns: dict[str, str], spawned: list[Any], closed_port: int
) -> None:
    fake_dns["git.pinned.test"] = "127.0.0.1"
    with pytest.raises(HostUnavailable, match=f"127.0.0.1 port {closed_port}"):
        runner.ls_remote(f"ssh://git@git.pinned.test:{closed_port}/team/repo.git")
    ssh = spawned[-1][1]["GIT_SSH_COMMAND"]
    for opt in (
        "BatchMode=yes",
        "StrictHostKeyChecking=accept-new",
        "HostName=127.0.0.1",
        "HostKeyAlias=git.pinned.test",
    ):
        assert opt in ssh


@needs_ssh
def test_clone_fetch_and_log_over_ssh_with_a_key(
    ssh_runner: GitRunner,
    ssh_server: SshGitServer,
    ssh_repo: tuple[str, Path],
    key_auth: GitAuth,
    seen: list[dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url, path = ssh_repo
    mirror = tmp_path / "m.git"
    ssh_runner.clone_mirror(url, mirror, key_auth)
    assert {c.sha for c in ssh_runner.log(mirror, [], all_refs=True)} == set(
        run_git("rev-list", "--all", cwd=path).split()
    )
    objects = run_git("cat-file", "--batch-all-objects", "--batch-check=%(objecttype)", cwd=mirror).split()
    assert "blob" not in objects  # blobless over ssh too
    assert ssh_server.commands[0].protocol == "version=2"
    # trust on first use: the host key was recorded in the runner's known_hosts, and only there
    assert ssh_server.host_key_line.split()[1] in (tmp_path / "known_hosts").read_text()

    before = {c.sha for c in ssh_runner.log(mirror, [], all_refs=True)}
    work = tmp_path / "work"
    run_git("clone", "--quiet", str(path), str(work))
    run_git("commit", "--quiet", "--allow-empty", "-m", "ABC-31 over ssh", cwd=work)
    run_git("push", "--quiet", "origin", "HEAD:refs/heads/ssh-new", cwd=work)
    ssh_runner.fetch(mirror, key_auth)
    fresh = list(ssh_runner.log(mirror, ["refs/heads/ssh-new"], sorted(before)))
    assert [c.message for c in fresh] == ["ABC-31 over ssh"]
    assert dict(ssh_runner.list_refs(mirror)) == {
        r: s for r, s in ssh_runner.ls_remote(url, key_auth).items() if not r.endswith("^{}")
    }

    with_key = [c for c in seen if c["key"] is not None]
    assert len(with_key) >= 3  # clone, fetch, ls-remote
    for call in with_key:
        assert (call["key_mode"], call["dir_mode"]) == (0o600, 0o700)
        assert call["key_text"] == key_auth.ssh_private_key
        assert call["key"].parent.parent == sandbox()
        assert not call["key"].exists()  # removed after the call
    secret = key_lines(key_auth.ssh_private_key or "")
    for call in seen:
        blob = " ".join([*call["argv"], *call["env"].values()])
        assert not any(line in blob for line in secret)
    assert not any(line in caplog.text for line in secret)
    assert call_dirs() == []


@needs_ssh
@pytest.mark.parametrize("fmt", ["pkcs1-pem", "pkcs8-pem", "openssh-crlf"])
def test_pem_and_pasted_keys_work(fmt: str, tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ecdsa-sha2-nistp256")
    with SshGitServer(tmp_path / "srv", client_key=key) as server:
        server.add_repo("r", make_repo)
        text = key.export_private_key(fmt.removesuffix("-crlf")).decode()
        if fmt.endswith("-crlf"):
            text = text.replace("\n", "\r\n")
        runner = GitRunner(allow_private=True, network_timeout=30, known_hosts=tmp_path / "kh")
        assert "refs/heads/main" in runner.ls_remote(server.url_for("r"), GitAuth(ssh_private_key=text))


@needs_ssh
def test_wrong_or_missing_key_is_a_clear_auth_error_without_key_material(
    ssh_runner: GitRunner, ssh_server: SshGitServer, ssh_repo: tuple[str, Path], key_auth: GitAuth
) -> None:
    url, _ = ssh_repo
    wrong = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
    with pytest.raises(HostAuthError) as e:
        ssh_runner.ls_remote(url, GitAuth(username="git", password="pw-not-used", ssh_private_key=wrong))
    message = str(e.value)
    assert "the server refused the SSH key" in message and "Permission denied (publickey)" in message
    for secret in (*key_lines(wrong), *key_lines(key_auth.ssh_private_key or ""), "pw-not-used"):
        assert secret not in message and secret not in repr(e.value)
    assert ssh_server.offered_keys == [public_key_line(asyncssh.import_private_key(wrong))]
    assert ssh_server.commands == []
    assert call_dirs() == []

    ssh_server.reset()
    with pytest.raises(HostAuthError, match="refused the SSH key"):
        ssh_runner.ls_remote(url)  # no key: none of the service user's keys or agent is offered
    assert ssh_server.offered_keys == []


@needs_ssh
def test_invalid_key_text_is_refused_before_git_runs(
    ssh_runner: GitRunner, ssh_server: SshGitServer, seen: list[Any]
) -> None:
    url = ssh_server.url_for("any")
    with pytest.raises(ValidationError, match="private key"):
        ssh_runner.ls_remote(url, GitAuth(ssh_private_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPublicNotPrivate"))
    with pytest.raises(ValidationError, match="host key"):
        ssh_runner.ls_remote(url, GitAuth(ssh_known_host_key="hunter2"))
    assert seen == [] and call_dirs() == []


@needs_ssh
def test_pinned_host_key(
    ssh_runner: GitRunner, ssh_server: SshGitServer, ssh_repo: tuple[str, Path], key_auth: GitAuth, tmp_path: Path
) -> None:
    url, _ = ssh_repo
    pinned = GitAuth(ssh_private_key=key_auth.ssh_private_key, ssh_known_host_key=ssh_server.host_key_line)
    assert "refs/heads/main" in ssh_runner.ls_remote(url, pinned)
    assert not (tmp_path / "known_hosts").exists()  # a pin is not trust-on-first-use: nothing recorded

    other = public_key_line(asyncssh.generate_private_key("ssh-ed25519"))
    impostor = GitAuth(ssh_private_key=key_auth.ssh_private_key, ssh_known_host_key=other)
    with pytest.raises(HostError, match="host key") as e:
        ssh_runner.ls_remote(url, impostor)
    assert not isinstance(e.value, HostAuthError)
    assert ssh_server.offered_keys == [public_key_line(ssh_server.client_key)] * 2  # the refused host saw no key
    # a pin wins over a known_hosts file that trusts the server
    ssh_runner.ls_remote(url, key_auth)
    assert (tmp_path / "known_hosts").exists()
    with pytest.raises(HostError, match="host key"):
        ssh_runner.ls_remote(url, impostor)
    assert call_dirs() == []


@needs_ssh
def test_changed_host_key_is_refused_after_first_use(
    ssh_runner: GitRunner, ssh_server: SshGitServer, ssh_repo: tuple[str, Path], key_auth: GitAuth, tmp_path: Path
) -> None:
    url, _ = ssh_repo
    other = public_key_line(asyncssh.generate_private_key("ssh-ed25519"))
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{ssh_server.port} {other}\n")
    with pytest.raises(HostError, match="host key does not match"):
        ssh_runner.ls_remote(url, key_auth)


@needs_ssh
def test_create_branch_remote_over_ssh(
    ssh_runner: GitRunner, ssh_server: SshGitServer, ssh_repo: tuple[str, Path], key_auth: GitAuth
) -> None:
    url, path = ssh_repo
    main = run_git("rev-parse", "main", cwd=path).strip()
    assert ssh_runner.create_branch_remote(url, key_auth, "feature/ABC-90-ssh", main) == "refs/heads/feature/ABC-90-ssh"
    assert run_git("rev-parse", "feature/ABC-90-ssh", cwd=path).strip() == main
    assert [c.command.split()[0] for c in ssh_server.commands if c.command][-1] == "git-receive-pack"
    with pytest.raises(Conflict):
        ssh_runner.create_branch_remote(url, key_auth, "feature/ABC-90-ssh", main)
    assert call_dirs() == []


@needs_ssh
def test_key_file_is_removed_after_a_timeout(silent_port: int, key_auth: GitAuth, tmp_path: Path) -> None:
    runner = GitRunner(allow_private=True, network_timeout=1, known_hosts=tmp_path / "kh")
    url = f"ssh://git@127.0.0.1:{silent_port}/slow.git"
    with pytest.raises(HostUnavailable, match="did not answer within 1s"):
        runner.ls_remote(url, key_auth)
    assert call_dirs() == []
    leftovers = subprocess.run(["pgrep", "-f", f"-p {silent_port} "], capture_output=True, text=True, check=False)
    assert leftovers.stdout.strip() == ""


@pytest.mark.parametrize(
    "url",
    [
        "ssh://-oProxyCommand=touch%20/tmp/gcj-pwned-ssh/repo.git",
        "ssh://-oProxyCommand=x@127.0.0.1/repo.git",
        "ssh://git@127.0.0.1:2222/-oProxyCommand=touch%20/tmp/gcj-pwned-ssh",
        "ssh://git@127.0.0.1:2222/--upload-pack=touch%20/tmp/gcj-pwned-ssh",
        "git@-oProxyCommand=x:repo.git",
        "-oProxyCommand=touch /tmp/gcj-pwned-ssh",
    ],
)
def test_option_looking_ssh_urls_are_refused_before_git_runs(
    url: str, ssh_runner: GitRunner, key_auth: GitAuth, seen: list[Any], tmp_path: Path
) -> None:
    with pytest.raises(UnsafeInput, match="must not start with '-'"):
        ssh_runner.ls_remote(url, key_auth)
    with pytest.raises(UnsafeInput):
        ssh_runner.clone_mirror(url, tmp_path / "m.git", key_auth)
    with pytest.raises(UnsafeInput):
        ssh_runner.create_branch_remote(url, key_auth, "x", "a" * 40)
    assert seen == [] and call_dirs() == []
    assert not Path("/tmp/gcj-pwned-ssh").exists()
