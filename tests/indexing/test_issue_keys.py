"""Issue keys in messages and branch names: the rule, its edge cases (see the module
docstring), properties checked with hypothesis, and linear cost on 1 MB inputs."""

from __future__ import annotations

import re
import string
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connect_app.indexing.issue_keys import (
    MAX_KEY_LENGTH,
    MAX_UNDERSCORE_SPLITS,
    _extract,
    is_issue_key,
    keys_in_branch,
    keys_in_text,
    known_only,
    project_of,
)

FULL_KEY = re.compile(r"[A-Z][A-Z0-9_]+-[1-9][0-9]*", re.ASCII)
ALNUM = set(string.ascii_letters + string.digits)
PROPERTY = settings(max_examples=200, deadline=None)

# ------------------------------------------------------------------------------------ tables

TEXT_CASES = [
    # the rule
    ("ABC-123", ["ABC-123"]),
    ("[ABC-123] fix login", ["ABC-123"]),
    ("(ABC-123)", ["ABC-123"]),
    ("#ABC-123 #comment done", ["ABC-123"]),
    ("ABC-123: fix", ["ABC-123"]),
    ("Fix ABC-1 and DEF-22, again ABC-1.", ["ABC-1", "DEF-22"]),
    ("ABC-1,ABC-2;ABC-3", ["ABC-1", "ABC-2", "ABC-3"]),
    ("ABC-123-fix", ["ABC-123"]),
    ("AB1-5 A1B2-6", ["AB1-5", "A1B2-6"]),
    ("line one\nXY-9\tZZ-10\r\n", ["XY-9", "ZZ-10"]),
    ("\"ABC-1\" 'ABC-2' `ABC-3`", ["ABC-1", "ABC-2", "ABC-3"]),
    ("ABC-1@example.com", ["ABC-1"]),
    # not preceded by a letter, digit or '-'; not followed by a letter or digit
    ("xABC-1", []),
    ("1ABC-1", []),
    ("A-ABC-1", []),
    ("PROJ-ABC-1", []),
    ("ABC-1x", []),
    ("ABC-12x", []),
    ("ABC-1-DEF-2", ["ABC-1"]),
    ("Merge branch 'feature-ABC-1'", []),
    # not keys at all
    ("A-1", []),
    ("abc-123", []),
    ("Abc-123", []),
    ("ABC-", []),
    ("ABC 123", []),
    ("ABC_123", []),
    ("ABC--1", []),
    ("123-456", []),
    ("1A-2", []),
    ("-ABC-1", []),
    # issue numbers: from 1, never zero-padded, at most 18 digits
    ("ABC-0", []),
    ("ABC-007", []),
    ("ABC-10", ["ABC-10"]),
    ("ABC-" + "9" * 18, ["ABC-" + "9" * 18]),
    ("ABC-" + "9" * 19, []),
    # underscores: part of a project key, and allowed before a key
    ("MY_PROJ-7", ["MY_PROJ-7", "PROJ-7"]),
    ("fix_ABC-1", ["ABC-1"]),
    ("FOO_ABC-1", ["FOO_ABC-1", "ABC-1"]),
    ("ABC_-1", ["ABC_-1"]),
    ("ABC-1_fix", ["ABC-1"]),
    ("AB-12_CD-3", ["AB-12", "CD-3"]),
    ("x-B_CD-1", ["CD-1"]),
    ("a_b_c_d_e_PROJ-1", ["PROJ-1"]),
    ("x_A_B_C_D_E-1", ["B_C_D_E-1", "C_D_E-1", "D_E-1"]),
    # URLs
    ("https://x.atlassian.net/browse/ABC-1", ["ABC-1"]),
    ("https://x.atlassian.net/jira/software/projects/ABC/boards/1?selectedIssue=ABC-42", ["ABC-42"]),
    ("see https://github.com/o/r/pull/5 for ABC-5", ["ABC-5"]),
    # unicode: only ASCII letters and digits glue to a key
    ("修复ABC-123的问题", ["ABC-123"]),
    ("éABC-1", ["ABC-1"]),
    ("ABC-1é", ["ABC-1"]),
    ("٣ABC-1 ABC-2٣", ["ABC-1", "ABC-2"]),
    ("\uff21BC-1", ["BC-1"]),  # fullwidth A
    ("ABC-١٢", []),
    # length
    ("K" * 253 + "-1", ["K" * 253 + "-1"]),
    ("K" * 254 + "-1", []),
    ("K" * 300 + "-1", []),
    ("x_" + "K" * 253 + "-1", ["K" * 253 + "-1"]),
    ("", []),
]


@pytest.mark.parametrize(("text", "expected"), TEXT_CASES)
def test_keys_in_text(text: str, expected: list[str]) -> None:
    assert keys_in_text(text) == expected


BRANCH_CASES = [
    ("feature/abc-123-fix", ["ABC-123"]),
    ("feature/ABC-123-fix", ["ABC-123"]),
    ("Feature/Abc-7", ["ABC-7"]),
    ("abc-1", ["ABC-1"]),
    ("ABC-1", ["ABC-1"]),
    ("bugfix/abc-1-and-def-2", ["ABC-1", "DEF-2"]),
    ("release/1.2", []),
    ("main", []),
    ("feature/xabc-1", ["XABC-1"]),
    ("feature/1abc-1", []),
    ("abc-0-fix", []),
    ("abc-01", []),
    # '-' is a word separator in branch names (the documented exception)
    ("bugfix-abc-123", ["ABC-123"]),
    ("feature-ABC-1-login", ["ABC-1"]),
    ("feature_abc-12", ["FEATURE_ABC-12", "ABC-12"]),
    ("my_proj-3", ["MY_PROJ-3", "PROJ-3"]),
    ("users/jane/abc-9_hotfix", ["ABC-9"]),
    ("renovate/node-18.x", ["NODE-18"]),
    # no Unicode case folding into ASCII keys
    ("\u017ft-1", []),  # long s
    ("\u212aa-1", []),  # Kelvin sign
    ("\u0131x-1", []),  # dotless i
    ("feature/修复abc-5", ["ABC-5"]),
]


@pytest.mark.parametrize(("name", "expected"), BRANCH_CASES)
def test_keys_in_branch(name: str, expected: list[str]) -> None:
    assert keys_in_branch(name) == expected


def test_project_of_and_known_only() -> None:
    assert project_of("ABC-123") == "ABC"
    assert project_of("MY_PROJ-1") == "MY_PROJ"
    keys = ["ABC-1", "XYZ-2", "FOO_ABC-3", "ABC-3", "MY_PROJ-4"]
    assert known_only(keys, {"ABC", "MY_PROJ"}) == ["ABC-1", "ABC-3", "MY_PROJ-4"]
    assert known_only(keys, frozenset()) == []
    # the underscore ambiguity is settled by the tenant's projects
    assert known_only(keys_in_text("FOO_ABC-1"), {"ABC"}) == ["ABC-1"]
    assert known_only(keys_in_text("FOO_ABC-1"), {"FOO_ABC"}) == ["FOO_ABC-1"]
    assert known_only(keys_in_branch("feature_abc-12"), {"ABC"}) == ["ABC-12"]
    assert known_only(keys_in_text("MY_PROJ-7"), {"MY_PROJ", "OTHER"}) == ["MY_PROJ-7"]
    # ...unless the tenant has both projects: then the text is ambiguous and both are kept
    assert known_only(keys_in_text("MY_PROJ-7"), {"MY_PROJ", "PROJ"}) == ["MY_PROJ-7", "PROJ-7"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("ABC-1", True),
        ("MY_PROJ-10", True),
        ("abc-1", False),
        ("ABC-0", False),
        ("ABC-01", False),
        ("A-1", False),
        ("ABC-1 ", False),
        ("K" * 254 + "-1", False),
        ("ABC-" + "1" * 19, False),
    ],
)
def test_is_issue_key(value: str, ok: bool) -> None:
    assert is_issue_key(value) is ok


# -------------------------------------------------------------------------------- strategies

project_keys = st.from_regex(r"[A-Z][A-Z0-9_]{1,15}", fullmatch=True)
plain_project_keys = st.from_regex(r"[A-Z][A-Z0-9]{1,15}", fullmatch=True)
numbers = st.integers(min_value=1, max_value=10**12).map(str)
keys = st.builds(lambda p, n: f"{p}-{n}", project_keys, numbers)
plain_keys = st.builds(lambda p, n: f"{p}-{n}", plain_project_keys, numbers)
# Characters that may stand before / after a key (start and end of text too).
before = st.sampled_from(
    ["", " ", "\n", "\t", "[", "(", "{", "#", "/", ":", ",", ";", "'", '"', "=", "*", "!", "修", "é", "٣"]
)
after = st.sampled_from(["", " ", "\n", "]", ")", "}", ":", ",", ".", ";", "!", "?", "-", "_", "/", "的", "é"])
filler = st.text(alphabet=" \n.,;:()[]/#", max_size=3)
forbidden_before = st.sampled_from(sorted(ALNUM | {"-"}))
# Small alphabets make the interesting collisions (runs, '_', '-', digits) likely.
tricky_chars = st.text(alphabet="AB_-01az/é9Z ", max_size=40)
# ...and so do texts of key-like words joined by what may or may not separate keys
# ("A-AB-1", "x-B_CD-1", "AB-12_CD-3", "ab_cd-0").
tricky_words = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,3}", fullmatch=True), st.from_regex(r"[0-9]{1,3}", fullmatch=True)
)
tricky_joiners = st.sampled_from(["-", "-", "_", " ", "/", "é", ""])
tricky_tokens = st.lists(st.tuples(tricky_words, tricky_joiners), max_size=8).map(
    lambda pairs: "".join(w + j for w, j in pairs)
)
tricky_text = st.one_of(tricky_chars, tricky_tokens)


def _random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.lower() if f else c for c, f in zip(text, flips, strict=True))


@st.composite
def mixed_case(draw: st.DrawFn, strategy: st.SearchStrategy[str]) -> tuple[str, str]:
    key = draw(strategy)
    return key, _random_case(draw, key)


def _runs_within_split_limit(text: str) -> bool:
    return all(run.count("_") <= MAX_UNDERSCORE_SPLITS for run in re.findall(r"[A-Za-z0-9_]+", text))


def _reference(text: str, *, branch: bool) -> list[str]:
    """The rule, brute force: every start position that may begin a key, checked one by one."""
    key_at = re.compile(r"[A-Za-z][A-Za-z0-9_]*-[0-9]+" if branch else r"[A-Z][A-Z0-9_]*-[0-9]+", re.ASCII)
    forbidden = ALNUM if branch else ALNUM | {"-"}
    found: dict[str, None] = {}
    for i in range(len(text)):
        if i and text[i - 1] in forbidden:
            continue
        m = key_at.match(text, i)
        if m is None:
            continue
        project, number = m.group(0).rsplit("-", 1)
        followed_ok = m.end() == len(text) or text[m.end()] not in ALNUM
        if followed_ok and len(project) >= 2 and number[0] != "0" and len(number) <= 18:
            if len(m.group(0)) <= MAX_KEY_LENGTH:
                found.setdefault(m.group(0).upper(), None)
    return list(found)


# -------------------------------------------------------------------------------- properties


@PROPERTY
@given(key=keys, pre=before, post=after, left=filler, right=filler)
def test_a_key_between_allowed_separators_is_found_first(key: str, pre: str, post: str, left: str, right: str) -> None:
    text = left + pre + key + post + right
    found = keys_in_text(text)
    assert found[0] == key
    assert keys_in_branch(text)[0] == key


@PROPERTY
@given(key=keys, post=after)
def test_a_key_may_follow_an_underscore(key: str, post: str) -> None:
    assume(key.count("_") < MAX_UNDERSCORE_SPLITS)
    assert key in keys_in_text("fix_" + key + post)
    assert key in keys_in_branch("feature_" + key.lower() + post)


@PROPERTY
@given(key=keys, pre=forbidden_before, post=after)
def test_a_key_glued_to_a_letter_digit_or_dash_is_not_found(key: str, pre: str, post: str) -> None:
    assert key not in keys_in_text(pre + key + post)
    if pre != "-":  # '-' separates words in branch names
        assert key not in keys_in_branch(pre + key + post)
        assert key not in keys_in_branch(pre + key.lower() + post)


@PROPERTY
@given(key=keys, glued=st.sampled_from(sorted(ALNUM)))
def test_a_key_followed_by_a_letter_or_digit_is_not_found(key: str, glued: str) -> None:
    assert key not in keys_in_text(key + glued)
    assert key not in keys_in_branch(key + glued)


@PROPERTY
@given(text=st.text())
def test_any_text_gives_only_full_keys_without_crashing(text: str) -> None:
    for extract in (keys_in_text, keys_in_branch):
        found = extract(text)
        assert len(found) == len(set(found))
        assert all(FULL_KEY.fullmatch(k) and is_issue_key(k) and len(k) <= MAX_KEY_LENGTH for k in found)


@settings(max_examples=400, deadline=None)
@given(text=tricky_text)
def test_extraction_matches_the_brute_force_rule(text: str) -> None:
    assume(_runs_within_split_limit(text))
    assert keys_in_text(text) == _reference(text, branch=False)
    assert keys_in_branch(text) == _reference(text, branch=True)


@PROPERTY
@given(text=st.one_of(tricky_text, st.text(max_size=60)))
def test_extraction_is_idempotent_and_text_keys_are_branch_keys(text: str) -> None:
    found = keys_in_text(text)
    assert keys_in_text(" ".join(found)) == found
    branch = keys_in_branch(text)
    assert keys_in_branch(" ".join(branch)) == branch
    assert set(found) <= set(branch)


@PROPERTY
@given(
    ks=st.lists(plain_keys, max_size=12),
    seps=st.lists(st.sampled_from([" ", ", ", "\n", " [", "] ", "/"]), min_size=13, max_size=13),
)
def test_order_is_first_appearance_and_each_key_once(ks: list[str], seps: list[str]) -> None:
    text = "".join(sep + k for sep, k in zip(seps, ks, strict=False))
    assert keys_in_text(text) == list(dict.fromkeys(ks))


@PROPERTY
@given(
    pair=mixed_case(plain_keys),
    prefix=st.sampled_from(["", "feature/", "bugfix/", "users/me/", "hotfix-"]),
    suffix=st.sampled_from(["", "-fix-login", "_wip", "/part-two", ".x"]),
)
def test_branch_names_match_any_case_and_give_upper_case(pair: tuple[str, str], prefix: str, suffix: str) -> None:
    key, written = pair
    assert keys_in_branch(prefix + written + suffix) == [key]


@PROPERTY
@given(ks=st.lists(keys, max_size=15), projects=st.frozensets(project_keys, max_size=5), data=st.data())
def test_known_only_keeps_known_projects_in_order(ks: list[str], projects: frozenset[str], data: st.DataObject) -> None:
    if ks:
        projects |= {project_of(data.draw(st.sampled_from(ks)))}
    kept = known_only(ks, projects)
    assert kept == [k for k in ks if project_of(k) in projects]
    assert all(project_of(k) in projects for k in kept)
    assert known_only(kept, projects) == kept


# ---------------------------------------------------------------------------------------- cost

MEGABYTE = 1_000_000
ADVERSARIAL = {
    "one letter run": "A" * MEGABYTE + "-1",
    "underscore run": "A_" * (MEGABYTE // 2) + "-1",
    "underscore runs with keys": ("A_" * 127 + "A-1 ") * (MEGABYTE // 258),
    "dashes": "a-" * (MEGABYTE // 2),
    "digit dashes": "1-" * (MEGABYTE // 2),
    "glued keys": "ABC-1" * (MEGABYTE // 5),
    "keys": "ABC-1 " * (MEGABYTE // 6),
    "long numbers": ("ABC-" + "1" * 40 + " ") * (MEGABYTE // 45),
    "no separators": "ABCDEFGHIJ0123456789" * (MEGABYTE // 20),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_a_megabyte_costs_linear_time(name: str) -> None:
    text = ADVERSARIAL[name]
    started = time.perf_counter()
    keys_in_text(text)
    keys_in_branch(text)
    # Linear work is well under a second; catastrophic backtracking would take hours.
    assert time.perf_counter() - started < 5.0


# Keys around the length limits: projects near 255 characters, numbers near 18 digits.
long_keys = st.builds(
    lambda n, digits, tail: "A" * n + "-" + "1" * digits + tail,
    st.integers(1, 258),
    st.integers(1, 20),
    st.sampled_from(["", " ", "x", "-", "9"]),
)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(tricky_text, st.text(max_size=60), long_keys, st.lists(long_keys).map(" ".join)))
def test_the_fast_path_for_text_without_underscores_equals_the_general_rule(text: str) -> None:
    text = text.replace("_", " ")  # the fast path's domain
    assert keys_in_text(text) == _extract(text, branch=False)
