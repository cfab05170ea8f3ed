"""Real git repositories served over SSH on 127.0.0.1, for tests (there is no sshd here).

:class:`SshGitServer` is an asyncssh server on its own event-loop thread, bound to
``127.0.0.1:<random port>``. It authenticates by public key only (one generated
client key, :attr:`SshGitServer.client_private_key`; any user name) and runs only
``git-upload-pack '<repo>'`` / ``git-receive-pack '<repo>'`` for bare repositories
under its root: any other command, a shell, a path outside the root (``..``, ``~``,
absolute paths elsewhere, symlinks out) is refused with exit status 128. stdin,
stdout, stderr and the exit status are piped between the ssh channel and git.
Everything it saw is recorded (:attr:`commands`, :attr:`offered_keys`) so tests can
assert what the client did.
"""

from __future__ import annotations

import asyncio
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import asyncssh

from tests.support.git_server import git_env, run_git

GIT_SERVICES = ("git-upload-pack", "git-receive-pack")
_SERVER_CONFIG = {
    "uploadpack.allowFilter": "true",
    "uploadpack.allowAnySHA1InWant": "true",
    "receive.denyDeletes": "false",
}


@dataclass(frozen=True)
class ExecRecord:
    user: str
    command: str | None
    accepted: bool
    exit_status: int | None
    protocol: str | None = None  # GIT_PROTOCOL the client sent (SendEnv), e.g. "version=2"


def public_key_line(key: asyncssh.SSHKey) -> str:
    """``"<type> <base64>"``, as in authorized_keys / known_hosts (no comment)."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


class SshGitServer:
    """``ssh://git@127.0.0.1:<port>/<name>.git``, public-key auth only."""

    def __init__(self, root: Path, *, client_key: asyncssh.SSHKey | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._home = root / ".home"  # empty HOME for git on the server side
        self._home.mkdir(exist_ok=True)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = client_key or asyncssh.generate_private_key("ssh-ed25519")
        self._client_private_key: str | None = None
        self._lock = threading.Lock()
        self._commands: list[ExecRecord] = []
        self._offered: list[str] = []
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self.port = 0

    # -- lifecycle
    def start(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ssh-git", daemon=True)
        self._thread.start()
        self._acceptor = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=30)
        self.port = self._acceptor.get_port()
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = self._acceptor = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients use
    @property
    def client_private_key(self) -> str:
        """The accepted client key as OpenSSH private key text (what an admin would paste).
        Exported once: OpenSSH's format has a random check word, so exports differ."""
        if self._client_private_key is None:
            self._client_private_key = self.client_key.export_private_key("openssh").decode()
        return self._client_private_key

    @property
    def host_key_line(self) -> str:
        return public_key_line(self.host_key)

    def url_for(self, name: str, user: str = "git") -> str:
        return f"ssh://{user}@127.0.0.1:{self.port}/{name}.git"

    def path_for(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def add_repo(self, name: str, builder: Callable[[Path], object] | None = None) -> Path:
        """Create ``<root>/<name>.git``; ``builder(path)`` fills it (a bare repo)."""
        path = self.path_for(name)
        if builder is None:
            run_git("init", "--quiet", "--bare", "-b", "main", str(path))
        else:
            builder(path)
        return path

    # -- what clients did
    @property
    def commands(self) -> list[ExecRecord]:
        with self._lock:
            return list(self._commands)

    @property
    def offered_keys(self) -> list[str]:
        """Every public key a client offered (accepted or not), as ``"<type> <base64>"``."""
        with self._lock:
            return list(self._offered)

    def reset(self) -> None:
        with self._lock:
            self._commands.clear()
            self._offered.clear()

    # -- policy
    def resolve(self, command: str | None) -> tuple[str, Path] | None:
        """(service, repository) if ``command`` may run, else None."""
        try:
            words = shlex.split(command or "")
        except ValueError:
            return None
        if len(words) != 2 or words[0] not in GIT_SERVICES:
            return None
        relative = words[1].lstrip("/")
        if not relative or relative.startswith(("~", "-")):
            return None
        root = self.root.resolve()
        repo = (root / relative).resolve()
        if repo == root or not repo.is_relative_to(root) or repo.is_relative_to(self._home.resolve()):
            return None
        if not (repo / "HEAD").is_file() or not (repo / "objects").is_dir():
            return None
        return words[0], repo

    # -- asyncssh side (event-loop thread)
    async def _listen(self) -> asyncssh.SSHAcceptor:
        return await asyncssh.create_server(
            lambda: _KeyOnlyServer(self),
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            process_factory=self._handle,
            encoding=None,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            gss_host=None,
        )

    async def _close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        for conn in list(self._connections):
            conn.close()

    def _record(self, record: ExecRecord) -> None:
        with self._lock:
            self._commands.append(record)

    def _offer(self, key: asyncssh.SSHKey) -> None:
        with self._lock:
            self._offered.append(public_key_line(key))

    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        user = str(process.get_extra_info("username"))
        resolved = self.resolve(process.command)
        if resolved is None:
            process.stderr.write(b"fatal: this server only serves git-upload-pack/git-receive-pack in its root\n")
            self._record(ExecRecord(user, process.command, False, 128))
            process.exit(128)
            return
        service, repo = resolved
        extra = {f"GIT_CONFIG_KEY_{i}": k for i, k in enumerate(_SERVER_CONFIG)}
        extra |= {f"GIT_CONFIG_VALUE_{i}": v for i, v in enumerate(_SERVER_CONFIG.values())}
        protocol = _text(process.env.get("GIT_PROTOCOL"))
        if protocol:
            extra["GIT_PROTOCOL"] = protocol  # the client's SendEnv: protocol v2 as over real sshd
        env = git_env(self._home, GIT_CONFIG_COUNT=str(len(_SERVER_CONFIG)), **extra)
        proc = await asyncio.create_subprocess_exec(
            "git",
            service.removeprefix("git-"),
            str(repo),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.root,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        feeder = asyncio.create_task(_feed(process, proc.stdin))
        status: int | None = None
        try:
            await asyncio.gather(_copy(proc.stdout, process.stdout), _copy(proc.stderr, process.stderr))
            status = await proc.wait()
        except (OSError, asyncssh.Error):
            status = None  # the client went away
        finally:
            feeder.cancel()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            self._record(ExecRecord(user, process.command, True, status, protocol))
        try:
            process.exit(255 if status is None else status)
        except (OSError, asyncssh.Error):
            pass


class _KeyOnlyServer(asyncssh.SSHServer):
    def __init__(self, server: SshGitServer) -> None:
        self._server = server
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._server._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._server._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self._server._offer(key)
        return public_key_line(key) == public_key_line(self._server.client_key)


async def _feed(process: asyncssh.SSHServerProcess[bytes], stdin: asyncio.StreamWriter) -> None:
    try:
        while data := await process.stdin.read(65536):
            stdin.write(data)
            await stdin.drain()
    except (OSError, asyncssh.Error):
        pass
    finally:
        stdin.close()


async def _copy(source: asyncio.StreamReader, sink: Any) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None
