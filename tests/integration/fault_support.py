"""What the fault tests compare the index with, read from git directly."""

from __future__ import annotations

import re
from pathlib import Path

from connect_app.models import LinkKind
from tests.support.git_server import run_git

KEY = re.compile(r"\b(?:ABC|DEF)-\d+\b")


def expected_links(path: Path) -> set[tuple[str, str, str]]:
    """(kind, ref, issue key) the index should hold for the repository at ``path``."""
    links: set[tuple[str, str, str]] = set()
    for line in run_git("log", "--all", "--format=%H %s", cwd=path).splitlines():
        sha, _, subject = line.partition(" ")
        links |= {(LinkKind.COMMIT.value, sha, key) for key in KEY.findall(subject)}
    for name in run_git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=path).split():
        links |= {(LinkKind.BRANCH.value, name, key) for key in KEY.findall(name)}
    return links
