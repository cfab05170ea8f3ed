"""How a ``git`` process runs: its sandbox, fixed environment, deadline and errors.

Every call gets an empty HOME in a private sandbox directory, no user or system
config, no credential helpers or prompts, only the https/http/ssh transports (none
at all offline), and runs in its own process group that is killed at the deadline.
Credentials reach git only through the environment (``GIT_ASKPASS`` reading
``GCJ_GIT_*`` variables, or ``http.extraHeader`` set with ``GIT_CONFIG_*``); stderr
is mapped to one of the app's errors with every secret scrubbed from it.
"""

from __future__ import annotations

import atexit
import fcntl
import io
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO, cast

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

_PASSTHROUGH_ENV = ("PATH", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR")
_ASKPASS = """#!/bin/sh
case "$1" in
  [Uu]sername*) printf '%s\\n' "$GCJ_GIT_USERNAME" ;;
  *) printf '%s\\n' "$GCJ_GIT_PASSWORD" ;;
esac
"""
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_STDERR_TAIL = 64 * 1024
_PIPE_SIZE = 1024 * 1024

# --------------------------------------------------------------------------- sandbox

_sandbox_dir: Path | None = None
_sandbox_lock = threading.Lock()


def sandbox() -> Path:
    """A private (0700) directory: an empty HOME and the askpass script (no secrets in it);
    per-call ssh files live in subdirectories. Recreated if a tmp cleaner removed it;
    removed at exit by the process that made it (not by forked RQ work horses, which share it)."""
    global _sandbox_dir
    with _sandbox_lock:
        if _sandbox_dir is None or not (_sandbox_dir / "askpass.sh").exists():
            root = Path(tempfile.mkdtemp(prefix="gcj-git-"))
            (root / "home").mkdir(mode=0o700)
            (root / "askpass.sh").write_text(_ASKPASS)
            (root / "askpass.sh").chmod(0o700)
            atexit.register(_remove_sandbox, root, os.getpid())
            _sandbox_dir = root
        return _sandbox_dir


def _remove_sandbox(root: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(root, ignore_errors=True)


def git_environment(
    auth: GitAuth | None, ssh_command: str, *, offline: bool = False, git_dir: Path | None = None
) -> dict[str, str]:
    """The whole environment of one git call (nothing else is inherited)."""
    box = sandbox()
    env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
    env.update(LC_ALL="C", LANG="C", HOME=str(box / "home"), XDG_CONFIG_HOME=str(box / "home"))
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_SSH_COMMAND=ssh_command, GIT_SSH_VARIANT="ssh")
    env.update(GIT_CEILING_DIRECTORIES=str(box), GIT_PROTOCOL_FROM_USER="0")
    # Offline (local) commands may not touch the network at all, not even a lazy blob fetch.
    env.update(GIT_ALLOW_PROTOCOL="none" if offline else "https:http:ssh", GIT_NO_LAZY_FETCH=str(int(offline)))
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    if auth is not None and auth.password is not None:
        env.update(GIT_ASKPASS=str(box / "askpass.sh"), GCJ_GIT_PASSWORD=auth.password)
        env.update(GCJ_GIT_USERNAME=auth.username or "")
    if auth is not None and auth.http_header:
        header = auth.http_header
        if "\n" in header or "\r" in header or ":" not in header:
            raise ValidationError("the HTTP header for git must be one 'Name: value' line")
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader", GIT_CONFIG_VALUE_0=header)
    return env


# --------------------------------------------------------------------------- processes


class GitProcess:
    """A git process in its own process group, killed at the deadline; stderr tail kept."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float, stdin: bytes | None) -> None:
        self.timed_out = False
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            start_new_session=True,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _widen_pipe(self.proc.stdout)
        self._stderr = bytearray()
        self._threads = [threading.Thread(target=self._drain_stderr, daemon=True)]
        if stdin is not None:
            self._threads.append(threading.Thread(target=self._feed, args=(stdin,), daemon=True))
        for t in self._threads:
            t.start()
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _feed(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def _drain_stderr(self) -> None:
        stderr = cast(io.BufferedReader, self.proc.stderr)
        for chunk in iter(lambda: stderr.read1(8192), b""):
            self._stderr += chunk
            del self._stderr[:-_STDERR_TAIL]

    def _expire(self) -> None:
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    @property
    def stdout(self) -> io.BufferedReader:
        return cast(io.BufferedReader, self.proc.stdout)

    def finish(self) -> int:
        self.stdout.close()
        code = self.proc.wait()
        self._timer.cancel()
        for t in self._threads:
            t.join(timeout=5)
        return code

    @property
    def stderr(self) -> str:
        return bytes(self._stderr).decode("utf-8", "replace")


def _widen_pipe(stream: IO[bytes] | None) -> None:
    """Give git's stdout a 1 MiB pipe (Linux; the default is 64 KiB): git then keeps producing
    ``git log`` output while the indexer writes a batch to the database, instead of stopping
    after a few hundred commits until it reads again. Best effort: an unprivileged process may
    be capped lower (``/proc/sys/fs/pipe-max-size``), and other systems have no such call."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if stream is None or set_size is None:
        return
    try:
        fcntl.fcntl(stream.fileno(), set_size, _PIPE_SIZE)
    except OSError:
        pass


# --------------------------------------------------------------------------- errors

# stderr (LC_ALL=C) -> error; first match wins, so auth beats the generic "not found".
_ERRORS: tuple[tuple[re.Pattern[str], type[AppError], str], ...] = tuple(
    (re.compile(pattern), cls, message)
    for pattern, cls, message in (
        (r"(transport|protocol) '?\S+'? not allowed", UnsafeInput, "this URL's transport is not allowed"),
        (
            r"load key .*: (invalid format|incorrect passphrase|error in libcrypto)",
            HostAuthError,
            "the SSH private key could not be read (it must be an unencrypted PEM or OpenSSH key)",
        ),
        (r"permission denied \(publickey", HostAuthError, "the server refused the SSH key (or none was given)"),
        (
            r"authentication failed|could not read (username|password)|terminal prompts disabled|"
            r"invalid username or password|http basic: access denied|permission denied \(|error: 401",
            HostAuthError,
            "the server refused the username/password or token",
        ),
        (
            r"error: 403|permission to |write access|not authorized",
            HostPermissionDenied,
            "the credentials work but lack access",
        ),
        (r"stale info|already exists", Conflict, "the branch already exists"),
        (r"error: 30\d|redirect", HostError, "the server redirected; use the final repository URL"),
        (r"host key verification failed", HostError, "the server's SSH host key does not match the known one"),
        (
            r"not found|does not appear to be a git repository|error: 404|couldn't find remote ref|does not exist",
            HostNotFound,
            "the repository or ref was not found, or the credentials cannot see it",
        ),
        (
            r"resolve|connect|refused|timed out|error: 5\d\d|unreachable|no route|hung up|early eof|reset|"
            r"empty reply|ssl|tls|certificate|too slow|could not read from remote|recv failure|send failure",
            HostUnavailable,
            "the server could not be reached",
        ),
    )
)


def scrub(text: str, auth: GitAuth | None) -> str:
    """``text`` without credentials in URLs and without any secret of ``auth``."""
    text = _URL_CREDENTIALS.sub("***@", text)
    if auth is not None:
        header_value = (auth.http_header or "").partition(":")[2].strip()
        secrets = {auth.password, auth.http_header, header_value, *header_value.split()[1:]}
        if auth.ssh_private_key:
            key_lines = auth.ssh_private_key.replace("\r", "\n").split("\n")
            secrets |= {auth.ssh_private_key, *(ln.strip() for ln in key_lines if len(ln.strip()) >= 16)}
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, "***")
    return text


def _detail(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    key = [ln for ln in lines if _is_key_line(ln.lower())] or lines
    return key[0][:300] if key else "no error output"  # the first says why; later ones repeat "failed"


def _is_key_line(low: str) -> bool:
    # ssh's own reasons come before git's generic "fatal: Could not read from remote repository".
    return low.startswith(("fatal:", "error:", "!", "remote:", "ssh:", "host key verification failed")) or (
        "permission denied (" in low
    )


def git_error(op: str, stderr: str, auth: GitAuth | None) -> AppError:
    """The app error for a failed ``git <op>`` with this stderr, secrets scrubbed."""
    low, detail = stderr.lower(), scrub(_detail(stderr), auth)
    for pattern, cls, message in _ERRORS:
        if pattern.search(low):
            return cls(f"git {op}: {message} ({detail})")
    return HostError(f"git {op} failed ({detail})")
