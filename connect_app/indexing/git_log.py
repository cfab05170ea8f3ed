"""Commits as the indexer sees them, and the streaming parser of ``git log`` output.

:data:`LOG_ARGS` and :func:`parse_log` belong together: the format string below is
the record layout the parser expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import NamedTuple

LOG_ARGS = (
    "log --stdin --ignore-missing -z --no-renames --no-mailmap --no-color --no-show-signature --name-only "
    "--format=%x00%H%x00%P%x00%an%x00%ae%x00%at%x00%ct%x00%B"
).split(" ")
_HEADER = 7  # sha, parents, author name, author email, author time, committer time, message


class CommitRecord(NamedTuple):
    """One commit of ``git log``. A named tuple, not a frozen dataclass: one is built per commit
    streamed (hundreds of thousands per full index) and a frozen dataclass costs four times more."""

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


def parse_log(chunks: Iterable[bytes]) -> Iterator[CommitRecord]:
    """Records are ``\\0 sha \\0 parents \\0 an \\0 ae \\0 at \\0 ct \\0 message`` then, after
    ``\\0\\n``, NUL-terminated paths; a path is never empty, so an empty token after a full
    header starts the next record.

    Bytes are decoded once per chunk, up to its last NUL (UTF-8 never uses the NUL byte inside
    a character, so this decodes every field exactly as decoding it alone would), and a record's
    end is found with ``list.index``: no Python step per token."""
    raw = b""  # bytes after the last NUL seen: an incomplete token
    tokens: list[str] = []  # complete tokens; tokens[0] starts a record once one was seen
    started = False
    for chunk in chunks:
        raw += chunk
        cut = raw.rfind(b"\0")
        if cut < 0:
            continue
        tokens += raw[:cut].decode("utf-8", "replace").split("\0")
        raw = raw[cut + 1 :]
        if not started:
            if "" not in tokens:  # no record has started: what came before one is not ours
                tokens.clear()
                continue
            del tokens[: tokens.index("")]
            started = True
        pos, count = 0, len(tokens)
        while pos + 1 + _HEADER <= count:
            try:
                end = tokens.index("", pos + 1 + _HEADER)
            except ValueError:
                break
            yield _record(tokens, pos, end)
            pos = end
        del tokens[:pos]
    if started and len(tokens) >= 1 + _HEADER:
        if raw:
            tokens.append(raw.decode("utf-8", "replace"))
        yield _record(tokens, 0, len(tokens))


def _record(tokens: list[str], start: int, end: int) -> CommitRecord:
    """The record whose empty start token is ``tokens[start]``; its paths run up to ``end``."""
    sha, parents, name, email, authored, committed, message = tokens[start + 1 : start + 1 + _HEADER]
    files = tokens[start + 1 + _HEADER : end]
    if files and files[0].startswith("\n"):
        files[0] = files[0][1:]
    authored_at = datetime.fromtimestamp(int(authored or 0), UTC)
    # Usually the same second: one datetime for both.
    committed_at = authored_at if committed == authored else datetime.fromtimestamp(int(committed or 0), UTC)
    paths = tuple(filter(None, files))
    return CommitRecord(
        sha, tuple(parents.split()), name, email, authored_at, committed_at, message.rstrip("\n"), paths
    )
