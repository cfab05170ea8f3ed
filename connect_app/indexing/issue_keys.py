"""Jira issue keys in free text and branch names. Pure: no I/O, no app.

The rule
--------
An issue key is a project key, ``-``, then the issue number: ``ABC-123``. A project key is
an ASCII upper-case letter followed by one or more upper-case letters, digits or ``_``
(``[A-Z][A-Z0-9_]+``: what Atlassian documents as the widest supported project-key format,
"the first character must be a letter, all letters from the Modern Roman Alphabet and upper
case, only letters, numbers or the underscore"; Jira Cloud's default is ``[A-Z][A-Z]+``, up
to 10 characters). A key is found where it is *not preceded by a letter, digit or ``-``*
and *not followed by a letter or digit*, so ``[ABC-123]``, ``(ABC-123)``, ``#ABC-123``,
``ABC-123:``, ``ABC-1,ABC-2`` and ``ABC-123-fix`` all count, ``xABC-1``, ``1ABC-1``,
``A-ABC-1`` and ``ABC-1x`` do not. A message may hold several keys; each is returned once,
in order of first appearance.

Commit messages, pull request titles and descriptions (:func:`keys_in_text`) must write keys
in upper case, the format Atlassian documents for linking and Smart Commits ("two or more
uppercase letters, followed by a hyphen and the issue number"); matching lower case there
would turn ``utf-8``, ``sha-256`` and ``covid-19`` into candidates. Branch names
(:func:`keys_in_branch`) are matched in any case and returned upper-cased, because teams
lower-case branch names (``feature/abc-123-fix``; Jira's DVCS connector and GitHub for Jira
link those too).

Edge cases (decided here; tests/indexing/test_issue_keys.py pins each one)
-------------------------------------------------------------------------
* **Underscore before a key.** ``_`` may be part of a project key *and* is not one of the
  characters that forbid a key before it. Both readings are returned as candidates:
  ``fix_ABC-1`` gives ``ABC-1``; ``FOO_ABC-1`` gives ``FOO_ABC-1`` and ``ABC-1``;
  ``feature_abc-12`` (branch) gives ``FEATURE_ABC-12`` and ``ABC-12``. :func:`known_only`
  then keeps the one that is a project of the tenant (both, in the rare site that has both
  ``FOO_ABC`` and ``ABC``: the text is ambiguous). (GitHub for Jira never allows ``_``
  in a project key; we would miss ``MY_PROJ-1`` if we did the same.) Only the parts after
  the last four ``_`` of a run of key characters are tried, so a run of underscores cannot
  multiply the output: ``a_b_c_d_e_PROJ-1`` still gives ``PROJ-1``, but a key that follows
  ``_`` is only found when it holds at most three ``_`` itself (``x_A_B_C_D_E-1`` does not
  give ``A_B_C_D_E-1``).
* **``-`` before a key.** Never in messages (``PROJ-ABC-1`` holds no key, as the rule says;
  so ``Merge branch 'feature-ABC-1'`` links through the branch, not through the message).
  In branch names ``-`` is the usual word separator, so ``bugfix-abc-123`` and
  ``feature-ABC-1-login`` do give ``ABC-123`` / ``ABC-1``: a documented exception that only
  widens the candidates, which :func:`known_only` then filters.
* **Issue numbers** start at 1 and are never zero-padded in Jira, so ``ABC-0`` and
  ``ABC-007`` are not keys (neither is ``ABC-7`` taken from ``ABC-007``): the same choice as
  GitHub for Jira (``[1-9]\\d*``). At most 18 digits (a Jira issue number is a Java ``long``).
* **Keys in URLs** count: ``https://x.atlassian.net/browse/ABC-1`` and
  ``...?selectedIssue=ABC-1`` reference ABC-1, and ``/`` , ``=`` are separators like any other.
* **Unicode.** Only ASCII letters and digits glue to a key. Keys are ASCII by Atlassian's
  rule, and CJK or accented text often abuts a key with no space (``修复ABC-123的问题``,
  ``éABC-1``): those give ``ABC-123`` / ``ABC-1``. Non-ASCII digits (``٣``) are separators
  too. Case-insensitive matching never folds U+017F (long s), U+0131 (dotless i) or U+212A
  (Kelvin sign) into ASCII letters, so every returned key is pure ASCII.
* **Length.** Keys longer than :data:`MAX_KEY_LENGTH` (255, the size of the
  ``issue_link.issue_key`` column; Jira's own project-key limit is 255) are ignored, not
  truncated: a truncated key would be a different key.
* **Cost.** One regular-expression pass whose match attempts start only at the beginning of a
  run of key characters, so a 1 MB message costs linear time with no catastrophic
  backtracking; the ``_`` split adds at most five candidates per run. Text without ``_`` (most
  commit messages) takes a single ``findall`` that gives the same keys.

Sources: Atlassian's "Changing the project key format" (Jira admin documentation: project-key
rules), the Smart Commits pages (Bitbucket / FishEye: the default key format), and the
behaviour of atlassian/github-for-jira's ``jiraIssueKeyParser`` (case-insensitive, ``[1-9]``
first digit, no ``_`` in keys, any non-alphanumeric before a key).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

MAX_KEY_LENGTH = 255
MAX_NUMBER_DIGITS = 18
MAX_UNDERSCORE_SPLITS = 4

# A whole, valid issue key (what every function here returns).
KEY_PATTERN = r"[A-Z][A-Z0-9_]+-[1-9][0-9]*"
_FULL_KEY = re.compile(KEY_PATTERN, re.ASCII)
_PROJECT_UPPER = re.compile(r"[A-Z][A-Z0-9_]+", re.ASCII)
_PROJECT_ANY_CASE = re.compile(r"[A-Za-z][A-Za-z0-9_]+", re.ASCII)

# A run of key characters followed by '-' and digits, not followed by a letter or digit. A
# match may only *start* where such a run starts (never after a letter, digit or '_'), which
# keeps the scan linear; whether the run itself may be a project key (not after '-' in text)
# and the candidates that start after an '_' inside it are decided in Python.
# The number is matched inside a lookahead so that it can also begin the next run
# ("AB-12_CD-3" holds AB-12 and CD-3).
_RUN = re.compile(r"(?<![A-Za-z0-9_])([A-Za-z0-9_]+)-(?=([0-9]+)(?![A-Za-z0-9]))", re.ASCII)


def _valid_number(number: str) -> bool:
    return number[0] != "0" and len(number) <= MAX_NUMBER_DIGITS


def _upper_project(part: str) -> bool:
    return _PROJECT_UPPER.fullmatch(part) is not None


def _any_case_project(part: str) -> bool:
    return _PROJECT_ANY_CASE.fullmatch(part) is not None


def _projects(run: str, number: str, whole_allowed: bool) -> list[str]:
    """Where in a run of key characters a project key may start, in order: the whole run
    (unless it follows a ``-`` in text), then after each of its last
    :data:`MAX_UNDERSCORE_SPLITS` ``_`` (a key may follow ``_``)."""
    room = MAX_KEY_LENGTH - 1 - len(number)  # the longest project key that still fits
    if "_" not in run:  # the common case, on the indexing hot path
        return [run] if whole_allowed and len(run) <= room else []
    parts: list[str] = []
    end = len(run)
    while len(parts) < MAX_UNDERSCORE_SPLITS:
        i = run.rfind("_", 0, end)
        if i == -1 or len(run) - i - 1 > room:
            break
        parts.append(run[i + 1 :])
        end = i
    if whole_allowed and len(run) <= room:
        parts.append(run)
    parts.reverse()
    return parts


def _extract(text: str, *, branch: bool) -> list[str]:
    project_ok = _any_case_project if branch else _upper_project
    seen: dict[str, None] = {}
    for match in _RUN.finditer(text):
        run, number = match.group(1), match.group(2)
        if not _valid_number(number):
            continue
        whole_allowed = branch or match.start() == 0 or text[match.start() - 1] != "-"
        for project in _projects(run, number, whole_allowed):
            if project_ok(project):
                key = f"{project}-{number}"
                seen.setdefault(key.upper() if branch else key, None)
    return list(seen)


# Text without any ``_``: every run of key characters is the whole project key or none, so the
# rule above is one regular expression (no ``-`` or key character before, 1-18 digits not
# zero-padded, no letter or digit after) and one C call per message: the indexing hot path.
_TEXT_KEY_NO_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9_-])[A-Z][A-Z0-9]+-[1-9][0-9]{0,17}(?![A-Za-z0-9])", re.ASCII)


def keys_in_text(text: str) -> list[str]:
    """Issue keys in a commit message, pull request title or description, in order, once each."""
    if "_" in text:
        return _extract(text, branch=False)
    found: list[str] = _TEXT_KEY_NO_UNDERSCORE.findall(text)
    if len(found) == 1 and len(found[0]) <= MAX_KEY_LENGTH:  # the usual commit message
        return found
    return list(dict.fromkeys(k for k in found if len(k) <= MAX_KEY_LENGTH))


def keys_in_branch(name: str) -> list[str]:
    """Issue keys in a branch name, any case, returned upper-cased, in order, once each."""
    return _extract(name, branch=True)


def is_issue_key(value: str) -> bool:
    """Whether ``value`` is exactly one issue key as this module returns them (``ABC-123``)."""
    return (
        len(value) <= MAX_KEY_LENGTH
        and _FULL_KEY.fullmatch(value) is not None
        and _valid_number(value.rsplit("-", 1)[1])
    )


def project_of(key: str) -> str:
    """``ABC-123`` -> ``ABC`` (project keys never contain ``-``)."""
    return key.rsplit("-", 1)[0]


def known_only(keys: Iterable[str], projects: Collection[str]) -> list[str]:
    """Keys whose project is one of the tenant's Jira projects, order kept."""
    return [k for k in keys if project_of(k) in projects]
