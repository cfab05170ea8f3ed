"""Commits as the indexer sees them, and the streaming parser of ``git log`` output.

:data:`LOG_ARGS` and :func:`parse_log` belong together: the format string below is
the record layout the parser expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

LOG_ARGS = (
    "log --stdin --ignore-missing -z --no-renames --no-mailmap --no-color --no-show-signature --name-only "
    "--format=%x00%H%x00%P%x00%an%x00%ae%x00%at%x00%ct%x00%B"
).split(" ")


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


def parse_log(chunks: Iterable[bytes]) -> Iterator[CommitRecord]:
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
