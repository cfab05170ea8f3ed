"""Jira issue keys in free text and branch names. Pure: no I/O, no app.

Jira's rule: a project key (a letter, then letters, digits or ``_``), ``-``, then
digits; not preceded by a letter, digit or ``-`` and not followed by a digit or
letter. Commit messages and titles must use upper case (``ABC-123``); branch names
are matched case-insensitively (``feature/abc-123-fix``) because many teams
lower-case their branch names.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

MAX_KEY_LENGTH = 255
# Lookbehind: not after a letter, digit, '-' or '_' (so "xABC-1", "A-ABC-1" and "FOO_ABC-1" do not
# yield ABC-1). Lookahead: not followed by a digit or letter ("ABC-12x" is not a key).
_KEY = r"(?<![A-Za-z0-9_-])([A-Z][A-Z0-9_]+-[1-9][0-9]{0,18})(?![A-Za-z0-9])"
_TEXT = re.compile(_KEY)
_BRANCH = re.compile(_KEY, re.IGNORECASE)


def _unique(keys: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for key in keys:
        if len(key) <= MAX_KEY_LENGTH:
            seen.setdefault(key, None)
    return list(seen)


def keys_in_text(text: str) -> list[str]:
    """Issue keys in a commit message, pull request title or description, in order, once each."""
    return _unique(m.group(1) for m in _TEXT.finditer(text))


def keys_in_branch(name: str) -> list[str]:
    """Issue keys in a branch name, any case, returned upper-cased."""
    return _unique(m.group(1).upper() for m in _BRANCH.finditer(name) if m.group(1)[0].isalpha())


def project_of(key: str) -> str:
    return key.rsplit("-", 1)[0]


def known_only(keys: Iterable[str], projects: Collection[str]) -> list[str]:
    """Keys whose project is one of the tenant's Jira projects."""
    return [k for k in keys if project_of(k) in projects]
