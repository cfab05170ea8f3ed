"""Branch names a user may create: git's rules in words a user can act on, and the integration's
template (``${issuekey}-${summary}``...) rendered into a name that passes them.

The rules are ``git check-ref-format --branch``'s (see ``git help check-ref-format``), plus
what the app refuses on top: a leading ``-`` (it would read as an option), the name ``HEAD``,
and more than :data:`MAX_LENGTH` characters (``BRANCH_NAME_MAX_LENGTH`` of the integration
settings, well under every host's limit). Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata

from connect_app.errors import ValidationError
from connect_app.services.integration_settings import BRANCH_NAME_MAX_LENGTH

MAX_LENGTH = BRANCH_NAME_MAX_LENGTH
_FORBIDDEN = "~^:?*[\\"
_SHA = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})")
_VARIABLE = re.compile(r"\$\{([a-z]+)\}")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# What a rendered name is cleaned of: anything git refuses, as one separator.
_UNSAFE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]+")


def branch_name_problem(name: str) -> str | None:
    """Why git (or this app) refuses ``name`` as a branch name, or None when it is fine.
    The reason completes the sentence "The branch name ...". The first problem found is given."""
    if not name:
        return "is empty"
    if len(name) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if name.startswith("-"):
        return "must not start with '-'"
    if name in ("@", "HEAD"):
        return f"must not be '{name}'"
    if any(c == " " for c in name):
        return "must not contain spaces"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "must not contain control characters (tabs, line breaks...)"
    bad = sorted({c for c in name if c in _FORBIDDEN})
    if bad:
        return "must not contain " + " ".join(f"'{c}'" for c in bad)
    for sequence in ("..", "@{", "//"):
        if sequence in name:
            return f"must not contain '{sequence}'"
    if name.startswith("/"):
        return "must not start with '/'"
    if name.startswith("."):
        return "must not start with '.'"
    if name.endswith("/"):
        return "must not end with '/'"
    if name.endswith("."):
        return "must not end with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return f"has a part starting with '.' ({part!r})"
        if part.endswith(".lock"):
            return f"has a part ending in '.lock' ({part!r})"
    return None


def validate_branch_name(name: str, *, field: str = "name") -> str:
    """``name`` if it is a valid branch name, else a 400 ``invalid_branch_name`` with the reason."""
    problem = branch_name_problem(name)
    if problem:
        raise ValidationError(f"The branch name {name!r} {problem}.", code="invalid_branch_name")
    return name


def ref_problem(ref: str) -> str | None:
    """Like :func:`branch_name_problem`, but a full commit sha is fine too (a starting point)."""
    return None if _SHA.fullmatch(ref) else branch_name_problem(ref)


def slugify(text: str, max_length: int = MAX_LENGTH) -> str:
    """``"Fix: the Login page!"`` -> ``"fix-the-login-page"``: lower-case ASCII letters and digits
    joined by single dashes (accents dropped, other scripts removed), cut at a dash when it can."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")
    if len(slug) <= max_length:
        return slug
    cut = slug[:max_length]
    if slug[max_length] != "-" and "-" in cut:
        cut = cut.rsplit("-", 1)[0]
    return cut.strip("-")


def _clean_part(part: str) -> str:
    part = re.sub(r"-{2,}", "-", part).strip("-")
    while part.startswith("."):
        part = part[1:]
    while part.endswith((".", ".lock")):
        part = part.removesuffix(".lock").rstrip(".")
    return part


def _clean(name: str) -> str:
    """Make a rendered template valid: git's forbidden characters become '-', runs of dots
    collapse, empty parts (an empty variable) disappear, and no part starts or ends badly."""
    name = _UNSAFE.sub("-", name).replace("@{", "-")
    name = re.sub(r"\.{2,}", ".", name)
    parts = [_clean_part(p) for p in name.split("/")]
    return "/".join(p for p in parts if p)


def render_branch_name(
    template: str, *, issue_key: str, summary: str = "", issue_type: str = "", project_key: str = ""
) -> str:
    """The template with its variables filled in: ``${issuekey}`` and ``${projectkey}`` as they
    are, ``${summary}`` and ``${issuetype}`` slugified. The result is always a valid branch name
    of at most :data:`MAX_LENGTH` characters: the summary is shortened first, so the issue key
    stays in the name. Unknown variables are left out (the admin API refuses such templates)."""
    values = {
        "issuekey": issue_key,
        "projectkey": project_key,
        "issuetype": slugify(issue_type, 40),
        "summary": slugify(summary),
    }

    def fill(summary_slug: str) -> str:
        filled = {**values, "summary": summary_slug}
        return _clean(_VARIABLE.sub(lambda m: filled.get(m.group(1), ""), template))

    name = fill(values["summary"])
    overflow = len(name) - MAX_LENGTH
    if overflow > 0 and values["summary"]:
        name = fill(slugify(values["summary"], max(0, len(values["summary"]) - overflow)))
    if len(name) > MAX_LENGTH:
        name = _clean(name[:MAX_LENGTH])
    if branch_name_problem(name):  # nothing usable left (a template of only symbols...)
        name = issue_key
    return name
