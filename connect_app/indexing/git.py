"""The one place the app runs the ``git`` CLI: :class:`GitRunner`.

User text never becomes a git option: URLs and ref names are validated
(:mod:`.git_safety`: :func:`validate_clone_url`, :func:`validate_ref_name`), passed
after ``--`` or on stdin, and every call runs with a fixed environment
(:mod:`.git_process`): no user or system config, no credential helpers, no hooks, no
terminal prompts, only the https/http/ssh transports, the host's address pinned to
the one we checked (no DNS rebinding), no redirects, and a timeout. Credentials
reach git only through the environment or, for an ssh key, a 0600 file that lives
for one call (:mod:`.git_ssh`); never the URL or argv, and they are scrubbed from
error text. Commits come back as :class:`CommitRecord` (:mod:`.git_log`).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from connect_app.errors import Conflict, HostError, HostNotFound, HostUnavailable, UnsafeInput, ValidationError
from connect_app.hosts.base import GitAuth
from connect_app.indexing.git_log import LOG_ARGS, CommitRecord, parse_log
from connect_app.indexing.git_process import GitProcess, git_environment, git_error, sandbox
from connect_app.indexing.git_safety import (
    SHA,
    Target,
    refuse_option,
    resolve_target,
    validate_clone_url,
    validate_ref_name,
)
from connect_app.indexing.git_ssh import ssh_command

__all__ = ["CommitRecord", "GitRunner", "validate_clone_url", "validate_ref_name"]

MIRROR_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
# Passed as ``-c`` on every call; nothing here is secret. Redirects are off because a
# redirect would lead git to a host we have not checked.
_SAFE_CONFIG = (
    "protocol.file.allow=never protocol.ext.allow=never core.hooksPath=/dev/null credential.helper= "
    "http.followRedirects=false http.lowSpeedLimit=1000 http.lowSpeedTime=60 gc.autoDetach=false"
).split(" ")
_CLONE_ARGS = ["clone", "--bare", "--quiet", "--template=", "--no-recurse-submodules"]


@dataclass
class GitRunner:
    """Runs git safely. ``allow_private`` follows ``ALLOW_PRIVATE_HOSTS``; ``known_hosts``
    is the ssh known-hosts file (trust on first use; default: the service user's), unless
    the call's ``GitAuth.ssh_known_host_key`` pins the host key (see :mod:`.git_ssh`)."""

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
            if SHA.match(sha) and ref:
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
        if name == "HEAD" or not SHA.match(from_sha):
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

    def ahead_behind(self, dest: Path, base: str, head: str) -> tuple[int, int]:
        """(commits on ``head`` and not on ``base``, commits on ``base`` and not on ``head``): how
        far a branch is ahead of and behind the default branch. Both must be commit ids."""
        for sha in (base, head):
            if not SHA.match(sha):
                raise UnsafeInput("ahead/behind takes commit ids only")
        out = self._local(Path(dest), "rev-list", "--left-right", "--count", f"{base}...{head}")
        behind, ahead = (int(x) for x in out.split())
        return ahead, behind

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
            refuse_option(rev, "a revision")
            if "\n" in rev or "\0" in rev:
                raise UnsafeInput("a revision must be a single line")
        if not revs and not all_refs:
            return
        # Revisions go on stdin: no argv length limit, and never parsed as options.
        stdin = "".join(f"{r}\n" for r in revs) + "".join(f"^{r}\n" for r in exclude)
        with ssh_command(None, None, known_hosts=None) as ssh:  # offline: no files, ssh never runs
            env = git_environment(None, ssh, offline=True, git_dir=Path(dest).absolute())
        argv = [*LOG_ARGS, *(["--branches", "--tags"] if all_refs else [])]
        proc = self._spawn(argv, env, timeout or self.transfer_timeout, stdin.encode())
        try:
            yield from parse_log(iter(lambda: proc.stdout.read1(1 << 16), b""))
        except BaseException:  # includes GeneratorExit: the caller stopped reading
            proc.kill()
            proc.finish()
            raise
        code = proc.finish()
        if proc.timed_out:
            raise HostUnavailable(f"git log: gave up after {timeout or self.transfer_timeout:.0f}s")
        if code != 0:
            raise git_error("log", proc.stderr, None)

    # -- plumbing
    def _target(self, url: str) -> Target:
        return resolve_target(url, allow_private=self.allow_private)

    def _spawn(
        self,
        args: Sequence[str],
        env: dict[str, str],
        timeout: float,
        stdin: bytes | None = None,
        config: Iterable[str] = (),
    ) -> GitProcess:
        argv = [self.git, *(x for item in (*_SAFE_CONFIG, *config) for x in ("-c", item)), *args]
        return GitProcess(argv, env, sandbox() / "home", timeout, stdin)

    def _run(
        self,
        *args: str,
        target: Target | None = None,
        auth: GitAuth | None = None,
        timeout: float | None = None,
        git_dir: Path | None = None,
    ) -> str:
        """Run to completion, output bounded. Without a ``target`` the command is offline."""
        op, timeout = args[0], timeout or self.network_timeout
        chunks, size = [], 0
        # The ssh key / pinned host key files exist only inside this block: removed once git is gone.
        with ssh_command(auth, target, known_hosts=self.known_hosts) as ssh:
            env = git_environment(auth, ssh, offline=target is None, git_dir=git_dir)
            proc = self._spawn(args, env, timeout, config=target.config if target else ())
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
            raise git_error(op, proc.stderr, auth)
        return b"".join(chunks).decode("utf-8", "replace")

    def _local(self, git_dir: Path, *args: str) -> str:
        return self._run(*args, git_dir=Path(git_dir).absolute())
