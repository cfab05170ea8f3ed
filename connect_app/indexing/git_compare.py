"""Read-only walks over a repository's mirror for the repository browser: resolve a ref the
user typed, list the commits reachable from one commit (and not from another), count them and
the files they change.

What reaches ``git`` from the user: nothing but shas. A ref name is first checked against
git's own rules (:func:`~connect_app.indexing.git_safety.validate_ref_name`), then looked up
as the exact ``refs/tags/<name>`` or ``refs/heads/<name>`` after ``--end-of-options``
(``for-each-ref``); only the sha it names goes on to ``rev-parse --verify
--end-of-options <sha>^{commit}`` and, on stdin, to ``log``/``rev-list``. Every command runs
offline (no lazy blob fetch from the blobless mirror) in :mod:`.git_process`'s sandbox.

Paging is by position in git's own order (``--skip``/``--max-count`` over the same two
shas): the order of ``git log B ^A`` is deterministic for fixed shas, so a page cursor that
carries the shas and an offset names the same commits on every replica of the mirror.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from connect_app.errors import AppError, HostError, HostUnavailable, NotFound, ValidationError
from connect_app.indexing.git import GitRunner
from connect_app.indexing.git_process import git_environment, git_error
from connect_app.indexing.git_safety import SHA, validate_ref_name
from connect_app.indexing.git_ssh import ssh_command

HEADS = "refs/heads/"
TAGS = "refs/tags/"
REF_SHOWN_CHARS = 80  # how much of a bad ref a message repeats
LOCAL_TIMEOUT = 120.0  # one local git command on a mirror (a walk of millions of commits fits)
# One record per commit: sha, parents, author name, author email, commit time, message.
_LOG_FORMAT = "--format=%H%x00%P%x00%an%x00%ae%x00%ct%x00%B"
_FIELDS = 6
_ABBREVIATED_SHA = re.compile(r"^[0-9a-f]{7,39}$")


class RefKind(StrEnum):
    BRANCH = "branch"
    TAG = "tag"
    COMMIT = "commit"


@dataclass(frozen=True)
class ResolvedRef:
    """What the user asked for (``name``), what it turned out to be, and the commit it names."""

    name: str
    kind: RefKind
    sha: str

    @property
    def full_name(self) -> str | None:
        if self.kind is RefKind.BRANCH:
            return HEADS + self.name
        if self.kind is RefKind.TAG:
            return TAGS + self.name
        return None


@dataclass(frozen=True, slots=True)
class LogEntry:
    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    committed_at: datetime
    message: str


def shown(text: str) -> str:
    """User text repeated in a message: short, on one line."""
    flat = text.replace("\n", " ").replace("\r", " ")
    return flat if len(flat) <= REF_SHOWN_CHARS else flat[: REF_SHOWN_CHARS - 1] + "…"


def mirror_ready(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


class MirrorReader(GitRunner):
    """The browser's git calls on one mirror; never touches the network or writes."""

    # -- refs
    def resolve(self, path: Path, ref: str) -> ResolvedRef:
        """A branch, tag or full commit sha of this mirror, as the commit it names.

        A short name is looked up as a tag first, then a branch (git's own order for
        ``A..B``); ``refs/heads/x`` and ``refs/tags/x`` say which. Raises ``ValidationError``
        (code ``bad_ref``) for text git would refuse as a ref name and ``NotFound`` (code
        ``unknown_ref``) for a name or sha the mirror does not have."""
        if not isinstance(ref, str) or not ref:
            raise ValidationError("Choose a branch or tag.", code="bad_ref")
        if SHA.match(ref):
            return ResolvedRef(ref, RefKind.COMMIT, self.peel(path, ref, ref))
        try:
            validate_ref_name(ref)
        except ValidationError as e:
            reason = e.message.rpartition(": ")[2]
            raise ValidationError(
                f"{shown(ref)!r} is not a valid branch or tag name ({reason}).", code="bad_ref"
            ) from e
        found = self._find_ref(path, ref)
        if found is None:
            hint = " Use a full 40-character commit id, not an abbreviated one." if _ABBREVIATED_SHA.match(ref) else ""
            raise NotFound(
                f"There is no branch or tag named {shown(ref)!r} in this repository (as of its last index).{hint}",
                code="unknown_ref",
            )
        kind, name, sha = found
        return ResolvedRef(name, kind, self.peel(path, sha, ref))

    def _find_ref(self, path: Path, ref: str) -> tuple[RefKind, str, str] | None:
        if ref.startswith(HEADS):
            candidates = [(RefKind.BRANCH, ref[len(HEADS) :])]
        elif ref.startswith(TAGS):
            candidates = [(RefKind.TAG, ref[len(TAGS) :])]
        else:
            candidates = [(RefKind.TAG, ref), (RefKind.BRANCH, ref)]
        full = {(HEADS if kind is RefKind.BRANCH else TAGS) + name: (kind, name) for kind, name in candidates}
        if any(not name or name_problem(name) for _, name in candidates):
            return None
        out = self._git(path, "for-each-ref", "--format=%(refname)%00%(objectname)", "--end-of-options", *full)
        found: dict[str, str] = {}
        for line in out.splitlines():
            refname, _, sha = line.partition("\0")
            if refname in full and SHA.match(sha):  # patterns also match refs below a name: exact only
                found[refname] = sha
        for refname, (kind, name) in full.items():
            if refname in found:
                return kind, name, found[refname]
        return None

    def peel(self, path: Path, sha: str, asked: str) -> str:
        """The commit ``sha`` is or (an annotated tag) points at; ``NotFound`` if there is none."""
        if not SHA.match(sha):
            raise ValidationError(f"{shown(asked)!r} is not a commit id.", code="bad_ref")
        try:
            out = self._git(path, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{sha}^{{commit}}")
        except AppError as e:
            raise NotFound(
                f"{shown(asked)!r} does not name a commit in this repository (as of its last index).",
                code="unknown_ref",
            ) from e
        peeled = out.strip()
        if not SHA.match(peeled):
            raise HostError("git rev-parse returned something that is not a commit id")
        return peeled

    # -- ranges
    def count(self, path: Path, head: str, base: str | None = None) -> int:
        """How many commits ``git log head ^base`` lists."""
        out = self._git(path, "rev-list", "--count", "--stdin", stdin=_revs(head, base))
        return int(out.strip() or 0)

    def files_changed(self, path: Path, head: str, base: str | None = None) -> int:
        """Files that differ between ``head`` and its merge base with ``base`` (what a pull request
        from ``base`` to ``head`` would show; every file of ``head`` when they share no history).
        Trees only: no blob is needed (renames are not detected, so a rename counts twice)."""
        since = self.merge_base(path, head, base) if base else None
        if since is None:
            args = ["ls-tree", "-r", "-z", "--name-only", "--end-of-options", head]
        else:
            args = ["diff-tree", "-r", "-z", "--no-renames", "--name-only", "--no-commit-id", since, head]
        return sum(1 for _ in self._stream_tokens(path, args))

    def merge_base(self, path: Path, a: str, b: str) -> str | None:
        try:
            out = self._git(path, "merge-base", "--end-of-options", a, b)
        except AppError:
            return None  # exit status 1: no common ancestor
        sha = out.strip().split("\n", 1)[0]
        return sha if SHA.match(sha) else None

    def walk(
        self, path: Path, head: str, base: str | None = None, *, skip: int = 0, max_count: int | None = None
    ) -> Generator[LogEntry, None, None]:
        """``git log head ^base`` newest first (git's default order), from position ``skip``,
        streamed; stopping early stops git."""
        args = ["log", "--stdin", "-z", "--no-color", "--no-show-signature", "--no-mailmap", _LOG_FORMAT]
        if skip:
            args.append(f"--skip={int(skip)}")
        if max_count is not None:
            args.append(f"--max-count={int(max_count)}")
        tokens = self._stream_tokens(path, args, stdin=_revs(head, base))
        record: list[str] = []
        for token in tokens:
            record.append(token)
            if len(record) == _FIELDS:
                yield _entry(record)
                record = []

    # -- plumbing
    def _git(self, path: Path, *args: str, stdin: bytes | None = None) -> str:
        if stdin is None:
            return self._run(*args, git_dir=Path(path).absolute(), timeout=LOCAL_TIMEOUT)
        return "".join(t + "\0" for t in self._stream_tokens(path, list(args), stdin=stdin)).rstrip("\0")

    def _stream_tokens(self, path: Path, args: list[str], *, stdin: bytes | None = None) -> Iterator[str]:
        """NUL-separated output tokens of one offline git command, streamed (newline-separated
        output comes back as one token)."""
        with ssh_command(None, None, known_hosts=None) as ssh:  # offline: no files, ssh never runs
            env = git_environment(None, ssh, offline=True, git_dir=Path(path).absolute())
        proc = self._spawn(args, env, LOCAL_TIMEOUT, stdin)
        rest = b""
        try:
            for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
                parts = (rest + chunk).split(b"\0")
                rest = parts.pop()
                for part in parts:
                    yield part.decode("utf-8", "replace")
        except BaseException:  # includes GeneratorExit: the caller stopped reading
            proc.kill()
            proc.finish()
            raise
        code = proc.finish()
        if proc.timed_out:
            raise HostUnavailable(f"git {args[0]}: gave up after {LOCAL_TIMEOUT:.0f}s on the mirror")
        if code != 0:
            raise git_error(args[0], proc.stderr, None)
        if rest:
            yield rest.decode("utf-8", "replace")


def name_problem(name: str) -> bool:
    try:
        validate_ref_name(name)
    except ValidationError:
        return True
    return False


def _revs(head: str, base: str | None) -> bytes:
    for sha in (head, base):
        if sha is not None and not SHA.match(sha):
            raise ValidationError("only full commit ids reach git log", code="bad_ref")
    return (f"{head}\n" + (f"^{base}\n" if base else "")).encode()


def _entry(fields: list[str]) -> LogEntry:
    sha, parents, name, email, ct, message = fields
    sha = sha.lstrip("\n")  # -z ends each record with NUL; nothing else precedes the next sha
    when = datetime.fromtimestamp(int(ct or 0), UTC)
    return LogEntry(sha, tuple(parents.split()), name, email, when, message.rstrip("\n"))
