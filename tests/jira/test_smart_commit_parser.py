"""Smart-commit syntax as Atlassian documents it ("Process issues with smart commits"), the
decisions of connect_app/jira/smart_commit_parser.py, and malformed input (never a crash)."""

from __future__ import annotations

import random
import string

import pytest

from connect_app.jira.smart_commit_parser import (
    MAX_ACTIONS,
    MAX_COMMANDS,
    CommandKind,
    SmartCommand,
    Transition,
    adf_paragraph,
    has_command,
    match_transition,
    parse_duration,
    parse_smart_commits,
)


def _actions(message: str, **kw: object) -> list[tuple[str, str, str, str | None]]:
    parsed = parse_smart_commits(message, **kw)  # type: ignore[arg-type]
    return [(key, c.kind.value, c.text, c.duration or c.transition) for key, c in parsed.actions()]


# ---------------------------------------------------------------------- the documented examples


def test_comment() -> None:
    assert _actions("JRA-34 #comment corrected indent issue") == [("JRA-34", "comment", "corrected indent issue", None)]


def test_time_with_every_unit_and_a_comment() -> None:
    assert _actions("JRA-34 #time 1w 2d 4h 30m Total work logged") == [
        ("JRA-34", "time", "Total work logged", "1w 2d 4h 30m")
    ]


def test_time_values_may_be_decimal_and_need_no_comment() -> None:
    assert _actions("JRA-34 #time 1.5h") == [("JRA-34", "time", "", "1.5h")]
    assert _actions("JRA-34 #time 1h30m") == [("JRA-34", "time", "", "1h 30m")]
    assert _actions("JRA-34 #TIME 2D 4H done") == [("JRA-34", "time", "done", "2d 4h")]


def test_transition_with_a_comment() -> None:
    assert _actions("JRA-90 #close Fixed this today") == [("JRA-90", "transition", "Fixed this today", "close")]
    # Atlassian's own example writes "JRA-090"; Jira never zero-pads issue numbers and the indexer
    # does not link such keys (connect_app/indexing/issue_keys.py), so neither does this parser.
    assert _actions("JRA-090 #close Fixed this today") == []


def test_transition_names_use_hyphens_for_spaces() -> None:
    assert _actions("JRA-1 #start-progress") == [("JRA-1", "transition", "", "start-progress")]


def test_several_commands_on_one_issue() -> None:
    message = "JRA-123 #time 2d 5h #comment Task completed ahead of schedule #resolve"
    assert _actions(message) == [
        ("JRA-123", "time", "", "2d 5h"),
        ("JRA-123", "comment", "Task completed ahead of schedule", None),
        ("JRA-123", "transition", "", "resolve"),
    ]
    indexes = [c.index for c in parse_smart_commits(message).commands]
    assert indexes == [0, 1, 2]


def test_several_issues_one_command() -> None:
    assert _actions("JRA-123 JRA-234 JRA-345 #resolve") == [
        ("JRA-123", "transition", "", "resolve"),
        ("JRA-234", "transition", "", "resolve"),
        ("JRA-345", "transition", "", "resolve"),
    ]


def test_commands_over_several_lines_apply_to_the_keys_named_above() -> None:
    message = "JRA-123 #comment Imagine that this is a really, and I mean really, long comment\n#time 2d 5h"
    assert _actions(message) == [
        ("JRA-123", "comment", "Imagine that this is a really, and I mean really, long comment", None),
        ("JRA-123", "time", "", "2d 5h"),
    ]


def test_each_line_has_its_own_keys() -> None:
    message = "Fix login\n\nABC-1 #done\r\nABC-2 #comment see ABC-1 #in-review\n#time 1h"
    assert _actions(message) == [
        ("ABC-1", "transition", "", "done"),
        ("ABC-2", "comment", "see ABC-1", None),
        ("ABC-2", "transition", "", "in-review"),
        ("ABC-2", "time", "", "1h"),
    ]


def test_ignored_text_around_keys_and_commands() -> None:
    message = "[ABC-7] refactor the parser, closes ABC-8 for good #comment all done"
    assert _actions(message) == [("ABC-7", "comment", "all done", None), ("ABC-8", "comment", "all done", None)]


# ---------------------------------------------------------------------- what is not a command


@pytest.mark.parametrize(
    "message",
    [
        "ABC-1 fix bug#done",  # no space before '#'
        "ABC-1 see https://example.com/page#done",
        "ABC-1 fixes #123",
        "ABC-1 # heading",
        "ABC-1 relates to #ABC-2",  # an issue reference
        "ABC-1 plain message",
        "",
    ],
)
def test_text_that_is_not_a_command(message: str) -> None:
    parsed = parse_smart_commits(message)
    assert parsed.commands == ()
    assert parsed.problems == ()
    assert not parsed


def test_keys_must_be_upper_case_like_everywhere_else() -> None:
    parsed = parse_smart_commits("abc-1 #done")
    assert parsed.commands == ()
    assert [p.reason for p in parsed.problems] == ["no issue key before the command"]


def test_has_command_is_a_cheap_superset() -> None:
    assert has_command("ABC-1 #done")
    assert has_command("#comment no key")  # found; the parser then reports it
    assert not has_command("ABC-1 issue #12 and x#y")


# ---------------------------------------------------------------------- malformed commands


def test_malformed_commands_are_dropped_and_reported() -> None:
    message = "ABC-1 #comment\nABC-2 #time soon #time 0h #close\n#comment orphan?"
    parsed = parse_smart_commits(message)
    assert [(k, c.kind.value) for k, c in parsed.actions()] == [("ABC-2", "transition"), ("ABC-2", "comment")]
    reasons = [(p.line, p.reason, p.index) for p in parsed.problems]
    assert reasons == [
        (1, "#comment without text", 0),
        (2, "#time without a duration (write e.g. #time 1h 30m)", 1),
        (2, "#time with a zero duration", 2),
    ]
    # Indexes count every command token, malformed ones too: they never shift.
    assert [c.index for c in parsed.commands] == [3, 4]
    assert "line 2" in str(parsed.problems[1])


def test_a_command_before_any_key_is_reported() -> None:
    parsed = parse_smart_commits("#done before the key ABC-1")
    assert parsed.commands == ()
    assert parsed.problems[0].reason == "no issue key before the command"
    assert parsed.problems[0].index == 0


def test_only_allowed_keys_are_targets_and_indexes_do_not_depend_on_them() -> None:
    message = "ABC-1 XYZ-9 #done #comment shipped"
    everyone = parse_smart_commits(message)
    linked = parse_smart_commits(message, allowed_keys={"ABC-1"})
    assert [(k, c.index) for k, c in linked.actions()] == [("ABC-1", 0), ("ABC-1", 1)]
    assert [(k, c.index) for k, c in everyone.actions() if k == "ABC-1"] == [("ABC-1", 0), ("ABC-1", 1)]
    assert [p.reason for p in linked.problems] == [
        "XYZ-9 is not linked to this commit (not a project of this Jira site)"
    ]
    nothing = parse_smart_commits(message, allowed_keys=set())
    assert nothing.commands == ()
    assert len(nothing.problems) == 4  # 2 unlinked keys, 2 commands without a target


def test_too_many_commands_or_actions_are_capped_and_reported() -> None:
    many = "ABC-1 " + " ".join(f"#comment c{i}" for i in range(MAX_COMMANDS + 5))
    parsed = parse_smart_commits(many)
    assert len(parsed.commands) == MAX_COMMANDS
    assert sum("commands in one message" in p.reason for p in parsed.problems) == 5
    keys = " ".join(f"ABC-{i}" for i in range(1, 80))
    parsed = parse_smart_commits(f"{keys} #done #comment x")
    assert sum(len(c.issue_keys) for c in parsed.commands) <= MAX_ACTIONS
    assert any("issue commands in one message" in p.reason for p in parsed.problems)


def test_punctuation_alone_is_no_comment() -> None:
    assert _actions("ABC-1 #done.") == [("ABC-1", "transition", "", "done")]
    assert _actions("ABC-1 #done -- ") == [("ABC-1", "transition", "", "done")]


def test_parse_duration() -> None:
    assert parse_duration(" 1w 2d 4h 30m Total") == ("1w 2d 4h 30m", "Total")
    assert parse_duration("4 hours") == (None, "4 hours")
    assert parse_duration("30min") == (None, "30min")
    assert parse_duration("") == (None, "")


@pytest.mark.parametrize("seed", range(20))
def test_random_input_never_crashes(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = string.printable + "#####ABC-1 ABC-22 ÄÖ😀\u0000\u2028"
    for _ in range(200):
        message = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        parsed = parse_smart_commits(message)
        for key, command in parsed.actions():
            assert isinstance(command, SmartCommand) and key
            assert command.kind in CommandKind
            assert command.summary.startswith("#")


def test_a_huge_message_is_linear() -> None:
    message = ("ABC-1 #comment " + "x" * 1000 + "\n") * 2000 + "#" * 200_000
    parsed = parse_smart_commits(message)
    assert len(parsed.commands) == MAX_COMMANDS


# ---------------------------------------------------------------------- transitions by name


TRANSITIONS = [
    Transition("11", "Start Progress"),
    Transition("21", "Start Review"),
    Transition("31", "Done"),
    Transition("41", "Finish work"),
    Transition("51", "In review"),
]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("done", "31"),
        ("DONE", "31"),
        ("start-progress", "11"),
        ("Start-Review", "21"),
        ("finish", "41"),  # the part before the first space is enough when unique
        ("finish-work", "41"),
        ("in-review", "51"),
        ("in", "51"),
    ],
)
def test_transitions_match_case_insensitively_with_hyphens(command: str, expected: str) -> None:
    match = match_transition(command, TRANSITIONS)
    assert match.transition is not None and match.transition.id == expected


def test_ambiguous_or_unknown_transitions_do_nothing_and_say_why() -> None:
    ambiguous = match_transition("start", TRANSITIONS)
    assert ambiguous.transition is None and "ambiguous" in (ambiguous.reason or "")
    unknown = match_transition("deploy", TRANSITIONS)
    assert unknown.transition is None and "Start Progress" in (unknown.reason or "")
    assert match_transition("done", []).transition is None
    twins = [Transition("1", "Done"), Transition("2", "done")]
    assert match_transition("done", twins).transition is None


def test_adf_paragraph() -> None:
    assert adf_paragraph("hi") == {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}],
    }
    assert adf_paragraph("")["content"] == [{"type": "paragraph", "content": []}]
