"""Branch names: git's rules with reasons a user can act on (checked against ``git
check-ref-format --branch`` itself), and templates rendered into valid names."""

from __future__ import annotations

import subprocess

import pytest

from connect_app.errors import ValidationError
from connect_app.services.branch_names import (
    MAX_LENGTH,
    branch_name_problem,
    ref_problem,
    render_branch_name,
    slugify,
    validate_branch_name,
)
from connect_app.services.integration_settings import DEFAULT_BRANCH_TEMPLATE


def git_accepts(name: str) -> bool:
    result = subprocess.run(
        ["git", "check-ref-format", "--branch", name], capture_output=True, check=False, env={"PATH": "/usr/bin:/bin"}
    )
    return result.returncode == 0


BAD = {
    "a..b": "'..'",
    "a~1": "'~'",
    "a^b": "'^'",
    "a:b": "':'",
    "a?b": "'?'",
    "a*b": "'*'",
    "a[b": "'['",
    "a\\b": "'\\'",
    "has space": "spaces",
    "tab\there": "control characters",
    "line\nbreak": "control characters",
    "-leading-dash": "start with '-'",
    "/leading-slash": "start with '/'",
    ".leading-dot": "start with '.'",
    "feature/.hidden": "part starting with '.'",
    "trailing/": "end with '/'",
    "trailing.": "end with '.'",
    "name.lock": "'.lock'",
    "feature/x.lock/y": "'.lock'",
    "a@{b": "'@{'",
    "@": "'@'",
    "a//b": "'//'",
    "": "empty",
}


@pytest.mark.parametrize(("name", "reason"), sorted(BAD.items()))
def test_bad_names_have_a_reason(name: str, reason: str) -> None:
    problem = branch_name_problem(name)
    assert problem is not None and reason in problem
    with pytest.raises(ValidationError) as e:
        validate_branch_name(name)
    assert e.value.code == "invalid_branch_name" and reason in e.value.message


# "-x" would be read as an option, and --branch reads "@" as a shorthand for HEAD.
@pytest.mark.parametrize("name", sorted(n for n in BAD if n not in ("", "-leading-dash", "@")))
def test_git_refuses_them_too(name: str) -> None:
    assert not git_accepts(name)


@pytest.mark.parametrize(
    "name", ["main", "feature/ABC-1-login", "ABC-1", "user/ann/fix_it", "release-2.0", "a.b/c-d", "ünïcode"]
)
def test_good_names(name: str) -> None:
    assert branch_name_problem(name) is None
    assert git_accepts(name)
    assert validate_branch_name(name) == name


def test_too_long_and_head() -> None:
    assert "longer than 250" in (branch_name_problem("a" * (MAX_LENGTH + 1)) or "")
    assert branch_name_problem("a" * MAX_LENGTH) is None
    assert branch_name_problem("HEAD") is not None


def test_a_sha_is_a_valid_starting_point() -> None:
    assert ref_problem("a" * 40) is None and ref_problem("b" * 64) is None
    assert ref_problem("a..b") is not None


def test_slugify() -> None:
    assert slugify("Fix: the Login page!") == "fix-the-login-page"
    assert slugify("Crème brûlée ünd Ärger") == "creme-brulee-und-arger"
    assert slugify("日本語だけ") == ""
    assert slugify("one two three four", 10) == "one-two"  # cut at a dash
    assert slugify("abcdefghijklmnop", 5) == "abcde"


def test_default_template() -> None:
    name = render_branch_name(DEFAULT_BRANCH_TEMPLATE, issue_key="ABC-12", summary="Fix the login page")
    assert name == "ABC-12-fix-the-login-page"


def test_every_variable() -> None:
    name = render_branch_name(
        "${issuetype}/${projectkey}/${issuekey}-${summary}",
        issue_key="ABC-12",
        summary="Add: OAuth login",
        issue_type="Bug Fix",
        project_key="ABC",
    )
    assert name == "bug-fix/ABC/ABC-12-add-oauth-login"


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ("", "feature/ABC-1"),  # no dangling '-'
        ("...", "feature/ABC-1"),
        ("日本語", "feature/ABC-1"),
        ("x.lock", "feature/ABC-1-x-lock"),
    ],
)
def test_empty_or_odd_summaries_still_give_valid_names(summary: str, expected: str) -> None:
    name = render_branch_name("feature/${issuekey}-${summary}", issue_key="ABC-1", summary=summary)
    assert name == expected and git_accepts(name)


def test_long_summaries_are_cut_and_the_key_kept() -> None:
    summary = " ".join(["word"] * 200)
    name = render_branch_name("${summary}/${issuekey}", issue_key="LONGKEY-123456", summary=summary)
    assert len(name) <= MAX_LENGTH and name.endswith("/LONGKEY-123456")
    assert branch_name_problem(name) is None and git_accepts(name)


@pytest.mark.parametrize(
    "template",
    ["${issuekey}.", "${issuekey}/", ".${issuekey}", "${issuekey} ${summary}", "x..${issuekey}", "${issuekey}.lock"],
)
def test_templates_rendered_into_valid_names(template: str) -> None:
    name = render_branch_name(template, issue_key="ABC-1", summary="Hello world")
    assert branch_name_problem(name) is None and git_accepts(name), name
    assert "ABC-1" in name
