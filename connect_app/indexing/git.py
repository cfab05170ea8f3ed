"""The one place the app runs the ``git`` CLI.

User text never becomes a git option: URLs and ref names are validated here
(:func:`validate_clone_url`, :func:`validate_ref_name`), passed after ``--`` or on
stdin, and every call runs with a fixed environment: no user or system config,
no credential helpers, no hooks, no terminal prompts, only the https/http/ssh
transports, the host's address pinned to the one we checked (no DNS rebinding),
no redirects, and a timeout. Credentials reach git only through the environment
(``GIT_ASKPASS`` reading ``GCJ_GIT_*`` variables, or ``http.extraHeader`` set with
``GIT_CONFIG_*``), never the URL or argv, and are scrubbed from error text.
"""

from __future__ import annotations

import atexit
import io
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

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
from connect_app.hosts.netguard import DEFAULT_PORTS, check_url, forbidden_reason

__all__ = ["CommitRecord", "GitRunner", "validate_clone_url", "validate_ref_name"]

NETWORK_SCHEMES = ("https", "http", "ssh")
MIRROR_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
# Passed as ``-c`` on every call; nothing here is secret. Redirects are off because a
# redirect would lead git to a host we have not checked.
_SAFE_CONFIG = (
    "protocol.file.allow=never protocol.ext.allow=never core.hooksPath=/dev/null credential.helper= "
    "http.followRedirects=false http.lowSpeedLimit=1000 http.lowSpeedTime=60 gc.autoDetach=false"
).split(" ")
_LOG_ARGS = (
    "log --stdin --ignore-missing -z --no-renames --no-mailmap --no-color --no-show-signature --name-only "
    "--format=%x00%H%x00%P%x00%an%x00%ae%x00%at%x00%ct%x00%B"
).split(" ")
_CLONE_ARGS = ["clone", "--bare", "--quiet", "--template=", "--no-recurse-submodules"]
_PASSTHROUGH_ENV = ("PATH", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR")
_ASKPASS = """#!/bin/sh
case "$1" in
  [Uu]sername*) printf '%s\\n' "$GCJ_GIT_USERNAME" ;;
  *) printf '%s\\n' "$GCJ_GIT_PASSWORD" ;;
esac
"""
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_HELPER_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCP_URL = re.compile(r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/:\s\[\]]+):(?P<path>.+)$")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_STDERR_TAIL = 64 * 1024


# --------------------------------------------------------------------------- validation


def validate_ref_name(name: str) -> str:
    """Refuse what ``git check-ref-format`` refuses (one-level names allowed), and a leading ``-``."""
    reason = _ref_name_problem(name)
    if reason:
        raise ValidationError(f"invalid git ref name {name!r}: {reason}")
    return name


def _ref_name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if len(name.encode()) > 1024:
        return "it is longer than 1024 bytes"
    if name.startswith("-"):
        return "it must not start with '-'"
    if name == "@":
        return "it must not be '@' alone"
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == " " for c in name):
        return "it must not contain spaces or control characters"
    bad = sorted({c for c in name if c in "~^:?*[\\"})
    if bad:
        return f"it must not contain {' '.join(bad)}"
    for seq, why in (("..", "'..'"), ("@{", "'@{'"), ("//", "'//'")):
        if seq in name:
            return f"it must not contain {why}"
    if name.startswith("/") or name.endswith("/"):
        return "it must not start or end with '/'"
    if name.endswith("."):
        return "it must not end with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return "no part of it may start with '.'"
        if part.endswith(".lock"):
            return "no part of it may end with '.lock'"
    return None


def validate_clone_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """Return ``url`` if git may fetch from it: https/http/ssh URLs or scp-like
    ``user@host:path`` whose host passes the SSRF guard; never options, remote
    helpers (``ext::``), ``file://`` or local paths. Raises ``UnsafeInput``."""
    _network_form(url, allow_private=allow_private, resolve=resolve)
    return url


def _network_form(url: str, *, allow_private: bool, resolve: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of a validated clone URL."""
    if not isinstance(url, str) or not url:
        raise UnsafeInput("a clone URL is required")
    if url.startswith("-"):
        raise UnsafeInput("the clone URL must not start with '-' (git would read it as an option)")
    if _HELPER_URL.match(url):
        raise UnsafeInput("git remote-helper URLs such as 'ext::' are not allowed; use https://, http:// or ssh://")
    candidate = url
    if "://" not in url:
        m = _SCP_URL.match(url)
        if not m or url.startswith(("/", ".", "~")):
            raise UnsafeInput("local paths are not allowed; use an https://, http:// or ssh:// URL")
        if m["path"].startswith("-") or (m["user"] or "").startswith("-"):
            raise UnsafeInput("the clone URL must not contain parts starting with '-'")
        user = f"{m['user']}@" if m["user"] else ""
        candidate = f"ssh://{user}{m['host']}/{m['path'].lstrip('/')}"
    parts = check_url(candidate, allow_private=allow_private, schemes=NETWORK_SCHEMES, resolve=resolve)
    if parts.path.lstrip("/").startswith("-"):
        raise UnsafeInput("the repository path must not start with '-'")
    return parts.scheme.lower(), parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme.lower()]


def _checked_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Resolve once and refuse any forbidden address; git then connects to these only."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise HostUnavailable(f"the host name {host!r} could not be resolved") from e
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = forbidden_reason(address, allow_private=allow_private)
        if reason:
            raise UnsafeInput(f"refusing to connect to {host} (resolves to {address}): the address {reason}")
    if not addresses:
        raise HostUnavailable(f"the host name {host!r} has no addresses")
    return addresses


def _refuse_option(value: str, what: str) -> str:
    if value.startswith("-"):
        raise UnsafeInput(f"{what} must not start with '-'")
    return value


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class CommitRecord:
    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    authored_at: datetime
    committed_at: datetime
    message: str
    files: tuple[str, ...]  # paths changed vs the first parent; empty for merges

    @property
    def files_changed(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class _Target:
    """A validated remote: the URL plus what pins git to the addresses we checked."""

    url: str
    config: tuple[str, ...] = ()
    ssh_options: tuple[str, ...] = ()


# --------------------------------------------------------------------------- processes


_sandbox_dir: Path | None = None
_sandbox_lock = threading.Lock()


def _sandbox() -> Path:
    """A private directory: an empty HOME and the askpass script (no secrets in it).
    Recreated if a tmp cleaner removed it; removed at exit by the process that made it
    (not by forked RQ work horses, which share it)."""
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


class _Process:
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


# --------------------------------------------------------------------------- errors

# stderr (LC_ALL=C) -> error; first match wins, so auth beats the generic "not found".
_ERRORS: tuple[tuple[re.Pattern[str], type[AppError], str], ...] = tuple(
    (re.compile(pattern), cls, message)
    for pattern, cls, message in (
        (r"(transport|protocol) '?\S+'? not allowed", UnsafeInput, "this URL's transport is not allowed"),
        (
            r"authentication failed|could not read (username|password)|terminal prompts disabled|"
            r"invalid username or password|http basic: access denied|permission denied \(publickey|error: 401",
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


def _scrub(text: str, auth: GitAuth | None) -> str:
    text = _URL_CREDENTIALS.sub("***@", text)
    if auth is not None:
        header_value = (auth.http_header or "").partition(":")[2].strip()
        secrets = {auth.password, auth.http_header, header_value, *header_value.split()[1:]}
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, "***")
    return text


def _detail(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    key = [ln for ln in lines if ln.lower().startswith(("fatal:", "error:", "!", "remote:", "ssh:"))] or lines
    return key[0][:300] if key else "no error output"  # the first says why; later ones repeat "failed"


def _git_error(op: str, stderr: str, auth: GitAuth | None) -> AppError:
    low, detail = stderr.lower(), _scrub(_detail(stderr), auth)
    for pattern, cls, message in _ERRORS:
        if pattern.search(low):
            return cls(f"git {op}: {message} ({detail})")
    return HostError(f"git {op} failed ({detail})")


# --------------------------------------------------------------------------- runner


@dataclass
class GitRunner:
    """Runs git safely. ``allow_private`` follows ``ALLOW_PRIVATE_HOSTS``; ``known_hosts``
    is the ssh known-hosts file (trust on first use; default: the service user's)."""

    allow_private: bool = False
    git: str = "git"
    network_timeout: float = 120.0  # ls-remote, push
    transfer_timeout: float = 3600.0  # clone, fetch, log
    max_output: int = 64 * 1024 * 1024  # buffered (non-streaming) calls only
    known_hosts: Path | None = None

    # -- remote operations
    def ls_remote(
        self, url: str, auth: GitAuth | None = None, *, timeout: float | None = None, all_refs: bool = False
    ) -> dict[str, str]:
        """ref -> sha for ``refs/heads/*`` and ``refs/tags/*`` (annotated tags also as ``<tag>^{}`` ->
        commit). ``all_refs`` adds ``HEAD`` and everything else, such as GitHub's ``refs/pull/*``."""
        scope = () if all_refs else ("--heads", "--tags")  # protocol v2: the server filters
        out = self._run("ls-remote", *scope, "--", url, target=self._target(url), auth=auth, timeout=timeout)
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if _SHA.match(sha) and ref:
                refs[ref] = sha
        return refs

    def remote_default_branch(self, url: str, auth: GitAuth | None = None) -> str | None:
        """The branch the server's ``HEAD`` points at (``main``), or None."""
        out = self._run("ls-remote", "--symref", "--", url, "HEAD", target=self._target(url), auth=auth)
        for line in out.splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                return line[len("ref: refs/heads/") : -len("\tHEAD")]
        return None

    def clone_mirror(self, url: str, dest: Path, auth: GitAuth | None = None, *, timeout: float | None = None) -> None:
        """A bare blobless clone of heads and tags at ``dest`` (full clone if the server refuses
        filters). Cloned next to ``dest`` and renamed, so a killed clone leaves no half mirror."""
        target = self._target(url)
        dest = Path(dest).absolute()
        if dest.exists() and any(dest.iterdir()):
            raise Conflict(f"the mirror directory {dest.name!r} already exists")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
        timeout = timeout or self.transfer_timeout
        try:
            try:
                self._run(
                    *_CLONE_ARGS, "--filter=blob:none", "--", url, str(tmp), target=target, auth=auth, timeout=timeout
                )
            except HostError as e:
                # Most servers without filter support just send everything; some refuse instead.
                if "filter" not in e.message.lower() or isinstance(e, HostUnavailable | HostNotFound):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
                self._run(*_CLONE_ARGS, "--", url, str(tmp), target=target, auth=auth, timeout=timeout)
            self._local(tmp, "config", "--replace-all", "remote.origin.fetch", MIRROR_REFSPECS[0])
            for spec in MIRROR_REFSPECS[1:]:
                self._local(tmp, "config", "--add", "remote.origin.fetch", spec)
            if dest.exists():
                dest.rmdir()
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def set_origin(self, dest: Path, url: str) -> None:
        """Point an existing mirror at a new URL (the admin edited it); the next fetch uses it."""
        validate_clone_url(url, allow_private=self.allow_private, resolve=False)
        self._local(Path(dest), "config", "remote.origin.url", url)

    def fetch(self, dest: Path, auth: GitAuth | None = None, *, timeout: float | None = None) -> None:
        """``git fetch --prune`` of heads and tags into the mirror (forced: rewritten branches follow)."""
        dest = Path(dest).absolute()
        target = self._target(self._local(dest, "config", "--get", "remote.origin.url").strip())
        args = ("fetch", "--prune", "--force", "--quiet", "--no-write-fetch-head", "--", "origin")
        self._run(*args, target=target, auth=auth, timeout=timeout or self.transfer_timeout, git_dir=dest)

    def create_branch_remote(self, url: str, auth: GitAuth | None, name: str, from_sha: str) -> str:
        """Create branch ``name`` at ``from_sha`` (a branch or tag tip on the server) with
        ``git push``; refuses to move an existing branch. Returns the full ref name."""
        validate_ref_name(name)
        ref = f"refs/heads/{name}"
        validate_ref_name(ref)
        if name == "HEAD" or not _SHA.match(from_sha):
            raise ValidationError("a branch needs a valid name and a full commit sha to start from")
        remote = self.ls_remote(url, auth)
        if ref in remote:
            raise Conflict(f"the branch {name!r} already exists")
        tips = [r for r, s in sorted(remote.items()) if s == from_sha and r.startswith(("refs/heads/", "refs/tags/"))]
        source = tips[0] if tips else None
        if source is None:
            raise ValidationError("plain git can only start a branch from the tip of a branch or tag")
        short = source.removeprefix("refs/heads/").removeprefix("refs/tags/").removesuffix("^{}")
        target = self._target(url)
        with tempfile.TemporaryDirectory(prefix="gcj-push-") as tmp:
            work = Path(tmp) / "repo.git"
            # Only the start commit is needed locally: the server already has it, so the pack is empty.
            clone = [*_CLONE_ARGS, "--depth=1", "--filter=tree:0", "--single-branch", "--no-tags"]
            self._run(*clone, f"--branch={short}", "--", url, str(work), target=target, auth=auth)
            # An empty lease: the push fails if the branch appeared meanwhile, instead of moving it.
            push = ("push", "--quiet", "--no-verify", f"--force-with-lease={ref}:", "--", url, f"{from_sha}:{ref}")
            self._run(*push, target=target, auth=auth, git_dir=work)
        return ref

    # -- local operations on a mirror
    def list_refs(self, dest: Path, *, peel: bool = False) -> list[tuple[str, str]]:
        """(ref, sha) for heads and tags; ``peel`` gives an annotated tag's commit, not the tag object."""
        fmt = "%(refname)%00%(objectname)%00%(*objectname)"
        out = self._local(Path(dest), "for-each-ref", f"--format={fmt}", "refs/heads/", "refs/tags/")
        refs = []
        for line in out.splitlines():
            ref, sha, peeled = line.split("\0")
            refs.append((ref, peeled if peel and peeled else sha))
        return refs

    def log(
        self,
        dest: Path,
        revs: Sequence[str],
        exclude: Sequence[str] = (),
        *,
        all_refs: bool = False,
        timeout: float | None = None,
    ) -> Generator[CommitRecord, None, None]:
        """Commits reachable from ``revs`` (or every head and tag with ``all_refs``) and not from
        ``exclude``, newest first, streamed. Reads commits and trees only: never fetches a blob.
        Unknown ``exclude``/``revs`` entries are ignored (``--ignore-missing``)."""
        for rev in (*revs, *exclude):
            _refuse_option(rev, "a revision")
            if "\n" in rev or "\0" in rev:
                raise UnsafeInput("a revision must be a single line")
        if not revs and not all_refs:
            return
        # Revisions go on stdin: no argv length limit, and never parsed as options.
        stdin = "".join(f"{r}\n" for r in revs) + "".join(f"^{r}\n" for r in exclude)
        env = self._env(None, None, offline=True, git_dir=Path(dest).absolute())
        argv = [*_LOG_ARGS, *(["--branches", "--tags"] if all_refs else [])]
        proc = self._spawn(argv, env, timeout or self.transfer_timeout, stdin.encode())
        try:
            yield from _parse_log(iter(lambda: proc.stdout.read1(1 << 16), b""))
        except BaseException:  # includes GeneratorExit: the caller stopped reading
            proc.kill()
            proc.finish()
            raise
        code = proc.finish()
        if proc.timed_out:
            raise HostUnavailable(f"git log: gave up after {timeout or self.transfer_timeout:.0f}s")
        if code != 0:
            raise _git_error("log", proc.stderr, None)

    # -- plumbing
    def _target(self, url: str) -> _Target:
        scheme, host, port = _network_form(url, allow_private=self.allow_private, resolve=False)
        try:
            literal = bool(socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host))
        except OSError:
            literal = False
        if literal:
            return _Target(url)  # check_url already judged the literal address
        addresses = _checked_addresses(host, port, allow_private=self.allow_private)
        if scheme == "ssh":
            return _Target(url, ssh_options=(f"HostName={addresses[0]}", f"HostKeyAlias={host}"))
        pinned = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
        return _Target(url, config=(f"http.curloptResolve={host}:{port}:{pinned}",))

    def _env(
        self, auth: GitAuth | None, target: _Target | None, *, offline: bool = False, git_dir: Path | None = None
    ) -> dict[str, str]:
        sandbox = _sandbox()
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=30"]
        if self.known_hosts:
            ssh += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        for opt in target.ssh_options if target else ():
            ssh += ["-o", opt]
        env.update(LC_ALL="C", LANG="C", HOME=str(sandbox / "home"), XDG_CONFIG_HOME=str(sandbox / "home"))
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
        env.update(GIT_TERMINAL_PROMPT="0", GIT_SSH_COMMAND=shlex.join(ssh), GIT_SSH_VARIANT="ssh")
        env.update(GIT_CEILING_DIRECTORIES=str(sandbox), GIT_PROTOCOL_FROM_USER="0")
        # Offline (local) commands may not touch the network at all, not even a lazy blob fetch.
        env.update(GIT_ALLOW_PROTOCOL="none" if offline else "https:http:ssh", GIT_NO_LAZY_FETCH=str(int(offline)))
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        if git_dir is not None:
            env["GIT_DIR"] = str(git_dir)
        if auth is not None and auth.password is not None:
            env.update(GIT_ASKPASS=str(sandbox / "askpass.sh"), GCJ_GIT_PASSWORD=auth.password)
            env.update(GCJ_GIT_USERNAME=auth.username or "")
        if auth is not None and auth.http_header:
            header = auth.http_header
            if "\n" in header or "\r" in header or ":" not in header:
                raise ValidationError("the HTTP header for git must be one 'Name: value' line")
            env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader", GIT_CONFIG_VALUE_0=header)
        return env

    def _spawn(
        self,
        args: Sequence[str],
        env: dict[str, str],
        timeout: float,
        stdin: bytes | None = None,
        config: Iterable[str] = (),
    ) -> _Process:
        argv = [self.git, *(x for item in (*_SAFE_CONFIG, *config) for x in ("-c", item)), *args]
        return _Process(argv, env, _sandbox() / "home", timeout, stdin)

    def _run(
        self,
        *args: str,
        target: _Target | None = None,
        auth: GitAuth | None = None,
        timeout: float | None = None,
        git_dir: Path | None = None,
    ) -> str:
        """Run to completion, output bounded. Without a ``target`` the command is offline."""
        op, timeout = args[0], timeout or self.network_timeout
        env = self._env(auth, target, offline=target is None, git_dir=git_dir)
        proc = self._spawn(args, env, timeout, config=target.config if target else ())
        chunks, size = [], 0
        try:
            for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
                size += len(chunk)
                if size > self.max_output:
                    proc.kill()
                    raise HostError(f"git {op}: the output was larger than {self.max_output} bytes")
                chunks.append(chunk)
        finally:
            code = proc.finish()
        if proc.timed_out:
            raise HostUnavailable(f"git {op}: the server did not answer within {timeout:.0f}s")
        if code != 0:
            raise _git_error(op, proc.stderr, auth)
        return b"".join(chunks).decode("utf-8", "replace")

    def _local(self, git_dir: Path, *args: str) -> str:
        return self._run(*args, git_dir=Path(git_dir).absolute())


# --------------------------------------------------------------------------- log parsing


def _parse_log(chunks: Iterable[bytes]) -> Iterator[CommitRecord]:
    """Records are ``\\0 sha \\0 parents \\0 an \\0 ae \\0 at \\0 ct \\0 message`` then, after
    ``\\0\\n``, NUL-terminated paths; a path is never empty, so an empty token after a full
    header starts the next record."""
    header: list[bytes] | None = None
    files: list[bytes] = []
    rest = b""
    for chunk in chunks:
        tokens = (rest + chunk).split(b"\0")
        rest = tokens.pop()
        for token in tokens:
            if token == b"" and (header is None or len(header) == 7):
                if header is not None:
                    yield _record(header, files)
                header, files = [], []
            elif header is not None and len(header) < 7:
                header.append(token)
            elif header is not None:
                files.append(token[1:] if not files and token.startswith(b"\n") else token)
    if rest and header is not None:
        files.append(rest[1:] if not files and rest.startswith(b"\n") else rest)
    if header is not None and len(header) == 7:
        yield _record(header, files)


def _record(h: list[bytes], files: list[bytes]) -> CommitRecord:
    text = [f.decode("utf-8", "replace") for f in h]
    authored, committed = (datetime.fromtimestamp(int(t or 0), UTC) for t in text[4:6])
    paths = tuple(f.decode("utf-8", "replace") for f in files if f)
    return CommitRecord(
        text[0], tuple(text[1].split()), text[2], text[3], authored, committed, text[6].rstrip("\n"), paths
    )
