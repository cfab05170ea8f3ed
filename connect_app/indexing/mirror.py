"""One bare, blobless mirror per repository, and the digest of its ref tips.

Layout: ``<MIRRORS_PATH>/<tenant id>/<repository id>.git``. The first index clones
(``git clone --bare --filter=blob:none``: commits and trees, no file contents; a full
clone where the server refuses filters), later ones ``git fetch --prune``. A mirror that
is missing, half written or belongs to another repository (ids are reused on SQLite) is
cloned afresh. Only the indexer of that repository touches it, under the repository's
index lock (``connect_app.indexing.sync``).

:func:`refs_digest` hashes the sorted ``ref -> commit`` map of branches and tags
(annotated tags peeled), computed the same way from the mirror and from ``git ls-remote``,
so :func:`refs_unchanged` answers "is there anything new to fetch?" with one ls-remote.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session

from connect_app.errors import AppError, NotFound
from connect_app.extensions import db
from connect_app.hosts.base import GitAuth, GitHost
from connect_app.indexing.git import CommitRecord, GitRunner
from connect_app.integrations import host_for, remote_repository
from connect_app.models import Integration, Repository
from connect_app.runtime import runtime

T = TypeVar("T")
HEADS = "refs/heads/"
TAGS = "refs/tags/"
PEELED = "^{}"
MARKER = "gcj-repository"  # file in the mirror naming the repository it belongs to


@dataclass(frozen=True)
class MirrorRefs:
    """Branches and tags of a mirror: short name -> commit (annotated tags peeled)."""

    branches: dict[str, str]
    tags: dict[str, str]

    @property
    def tips(self) -> list[str]:
        """Every distinct commit a branch or tag points at, sorted (the history walk's start)."""
        return sorted({*self.branches.values(), *self.tags.values()})

    @property
    def digest(self) -> str:
        refs = {HEADS + n: s for n, s in self.branches.items()} | {TAGS + n: s for n, s in self.tags.items()}
        return refs_digest(refs)


def refs_digest(refs: Mapping[str, str]) -> str:
    """sha256 of the sorted ``ref sha`` lines: equal digests, equal tips."""
    text = "".join(f"{ref} {sha}\n" for ref, sha in sorted(refs.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def mirror_path(repo: Repository, mirrors_dir: Path | None = None) -> Path:
    root = mirrors_dir if mirrors_dir is not None else runtime().settings.mirrors_dir
    return Path(root) / str(int(repo.tenant_id)) / f"{int(repo.id)}.git"


def git_runner() -> GitRunner:
    return GitRunner(allow_private=runtime().settings.allow_private_hosts)


def _marker(repo: Repository) -> str:
    return f"{repo.integration_id}:{repo.external_id}\n"


def _usable(runner: GitRunner, path: Path, marker: str) -> bool:
    if not (path / "HEAD").is_file() or not (path / "objects").is_dir():
        return False
    try:
        if (path / MARKER).read_text() != marker:
            return False
        runner.list_refs(path)
    except (OSError, AppError):
        return False
    return True


def ensure_mirror(runner: GitRunner, repo: Repository, url: str, auth: GitAuth, path: Path) -> bool:
    """Bring the mirror at ``path`` up to date with ``url``; True when it was cloned afresh."""
    marker = _marker(repo)
    if _usable(runner, path, marker):
        runner.set_origin(path, url)  # the admin may have changed the URL
        runner.fetch(path, auth)
        return False
    shutil.rmtree(path, ignore_errors=True)
    # A clone killed with SIGKILL leaves its temporary directory next to the mirror.
    for stale in path.parent.glob(f".{path.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    runner.clone_mirror(url, path, auth)
    (path / MARKER).write_text(marker)
    return True


def remove_mirror(repo: Repository) -> None:
    """Delete a repository's mirror (the repository was removed); no error if there is none."""
    shutil.rmtree(mirror_path(repo), ignore_errors=True)


def mirror_refs(runner: GitRunner, path: Path) -> MirrorRefs:
    branches: dict[str, str] = {}
    tags: dict[str, str] = {}
    for ref, sha in runner.list_refs(path, peel=True):
        if ref.startswith(HEADS):
            branches[ref[len(HEADS) :]] = sha
        elif ref.startswith(TAGS):
            tags[ref[len(TAGS) :]] = sha
    return MirrorRefs(branches, tags)


def remote_refs(advertised: Mapping[str, str]) -> dict[str, str]:
    """``git ls-remote`` output as the mirror would store it: heads and tags, tags peeled."""
    refs: dict[str, str] = {}
    for ref, sha in advertised.items():
        if ref.endswith(PEELED) or not ref.startswith((HEADS, TAGS)):
            continue
        refs[ref] = advertised.get(ref + PEELED, sha)
    return refs


def remote_digest(runner: GitRunner, url: str, auth: GitAuth | None) -> str:
    return refs_digest(remote_refs(runner.ls_remote(url, auth)))


def refs_unchanged(
    repo: Repository,
    *,
    session: Session | None = None,
    host: GitHost | None = None,
    runner: GitRunner | None = None,
) -> bool:
    """True when the server's branches and tags are exactly those last indexed: one ``git
    ls-remote``, no fetch, no history walk. False when never indexed or a walk is pending.
    Says nothing about pull requests (titles change without a push). Raises the host errors
    of ``ls-remote`` (HostAuthError, HostUnavailable, ...)."""
    from connect_app.indexing.history import pending_walk  # history imports this module

    if not repo.refs_digest or pending_walk(repo.walk_state) is not None:
        return False
    if host is None:
        integration = (session or db.session()).get(Integration, repo.integration_id)
        if integration is None or integration.tenant_id != repo.tenant_id:
            raise NotFound("the repository's integration does not exist")
        host = host_for(integration)
    url = host.clone_url(remote_repository(repo))
    return remote_digest(runner or git_runner(), url, host.git_auth()) == repo.refs_digest


# --------------------------------------------------------------------------- history


@contextlib.contextmanager
def history(
    runner: GitRunner, path: Path, revs: Sequence[str], exclude: Sequence[str], prepare: Callable[[CommitRecord], T]
) -> Iterator[Iterator[T]]:
    """``prepare(commit)`` for each commit of ``git log revs ^exclude`` in the mirror, newest
    first, streamed. Leaving the block early stops git.

    (A reader thread that kept git and ``prepare`` going during database writes was tried and
    measured: no gain on a loaded 2-CPU host, where the GIL and the CPUs are shared anyway.)"""
    with contextlib.closing(runner.log(path, revs, exclude)) as commits:
        yield map(prepare, commits)
