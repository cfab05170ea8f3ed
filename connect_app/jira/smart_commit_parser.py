"""Smart-commit commands in a commit message. Pure: no I/O, no app, never raises on input.

Syntax (Atlassian, "Process issues with smart commits", support.atlassian.com/jira-software-cloud/
docs/process-issues-with-smart-commits/, and the identical Bitbucket / Fisheye pages)::

    <ignored text> ISSUE_KEY <ignored text> #<COMMAND> <optional COMMAND_ARGUMENTS>

* ``#comment <text>`` adds a comment: ``JRA-34 #comment corrected indent issue``.
* ``#time <n>w <n>d <n>h <n>m [comment]`` logs work, each value may be a decimal:
  ``JRA-34 #time 1w 2d 4h 30m Total work logged``.
* ``#<transition> [comment]`` runs a workflow transition, the comment (optional) is added with
  it: ``JRA-090 #close Fixed this today``. Hyphens stand for spaces (``#start-progress``), and
  the start of a name is enough when it is unambiguous (``#finish`` for "Finish work"); see
  :func:`match_transition`.
* Several commands per issue (``JRA-123 #time 2d 5h #comment Task completed ahead of schedule
  #resolve``), several issues per command (``JRA-123 JRA-234 JRA-345 #resolve``), and several
  lines: "a command must not span more than one line, but you can add multiple commands to the
  same line" -- and a line of commands without a key applies to the keys last named above it
  (the documented multi-line example: ``JRA-123 #comment ...`` then ``#time 2d 5h`` on the next line).

Decisions (pinned by tests/jira/test_smart_commit_parser.py)
------------------------------------------------------------
* A command is ``#`` at the start of a line or after whitespace, then a letter, then letters,
  digits, ``_`` or ``-``: ``#done``, ``#start-progress``. ``x#done``, ``#123``, ``# heading`` and
  URL fragments (``/page#part``) are text. ``#ABC-12`` is an issue reference, not a transition.
* ``comment`` and ``time`` are matched case-insensitively; every other name is a transition.
* A command's argument runs to the next command on the line or the end of the line.
* The issue keys of a line are the keys written *before its first command* (keys in a comment
  are text, not targets). Keys are found exactly as the indexer finds them
  (:func:`connect_app.indexing.issue_keys.keys_in_text`: upper case, ``ABC-123``).
* ``command.index`` is the command's position among *all* command tokens of the message,
  malformed ones included, so it never changes for a given message -- the ledger's key.
* Malformed commands are dropped and reported as :class:`Problem` (never an exception):
  ``#comment`` without text, ``#time`` without a duration or with a zero one, a command with no
  issue key before it, keys that are not allowed (``allowed_keys``: the commit's linked keys),
  more than :data:`MAX_COMMANDS` commands or :data:`MAX_ACTIONS` (key, command) pairs.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from connect_app.indexing.issue_keys import is_issue_key, keys_in_text

MAX_COMMANDS = 50  # command tokens per message that are parsed at all
MAX_ACTIONS = 100  # (issue key, command) pairs per message that are executed
MAX_TEXT_LENGTH = 32_000  # Jira's comment limit is 32,767 characters
FRAGMENT_LENGTH = 80

_COMMAND = re.compile(r"(?<!\S)#([A-Za-z][A-Za-z0-9_-]*)", re.ASCII)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([wdhmWDHM])(?![A-Za-z])", re.ASCII)
_LINES = re.compile(r"\r\n|\r|\n")
_MEANINGFUL = re.compile(r"\w")


class CommandKind(StrEnum):
    COMMENT = "comment"
    TIME = "time"
    TRANSITION = "transition"


@dataclass(frozen=True)
class SmartCommand:
    index: int  # position among all command tokens of the message (0-based)
    kind: CommandKind
    issue_keys: tuple[str, ...]
    line: int  # 1-based
    text: str = ""  # the comment (for #time: the worklog comment; for a transition: added with it)
    duration: str | None = None  # #time: normalised, e.g. "1w 2d 4h 30m"
    transition: str | None = None  # a transition as written, e.g. "start-progress"

    @property
    def summary(self) -> str:
        """The command as a short label for the log: ``#time 1h 30m``, ``#comment``, ``#start-progress``."""
        if self.kind is CommandKind.TIME:
            return f"#time {self.duration}"
        if self.kind is CommandKind.COMMENT:
            return "#comment"
        return f"#{self.transition}"


@dataclass(frozen=True)
class Problem:
    line: int
    fragment: str
    reason: str
    index: int | None = None  # the command token's position (as SmartCommand.index), if it is one

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason} ({self.fragment!r})"


@dataclass(frozen=True)
class ParsedMessage:
    commands: tuple[SmartCommand, ...] = ()
    problems: tuple[Problem, ...] = ()

    def actions(self) -> Iterator[tuple[str, SmartCommand]]:
        """(issue key, command) pairs in message order: what to execute."""
        for command in self.commands:
            for key in command.issue_keys:
                yield key, command

    def __bool__(self) -> bool:
        return bool(self.commands)


def has_command(message: str) -> bool:
    """Cheap pre-check: does the message hold anything that looks like a command?"""
    return "#" in message and _COMMAND.search(message) is not None


def _fragment(text: str) -> str:
    text = text.strip()
    return text if len(text) <= FRAGMENT_LENGTH else text[: FRAGMENT_LENGTH - 1] + "…"


def _comment_text(text: str) -> str:
    text = text.strip()
    if not _MEANINGFUL.search(text):  # "." or "--" left after a command is not a comment
        return ""
    return text[:MAX_TEXT_LENGTH]


def parse_duration(text: str) -> tuple[str | None, str]:
    """``"1w 2d 4h 30m Total work"`` -> ``("1w 2d 4h 30m", "Total work")``; ``(None, text)`` when
    the text does not start with a duration. Parts may be written with or without spaces
    (``1h30m``); units are lower-cased."""
    parts: list[str] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        match = _DURATION_PART.match(text, pos)
        if match is None:
            break
        parts.append(match.group(1) + match.group(2).lower())
        pos = match.end()
    if not parts:
        return None, text
    return " ".join(parts), text[pos:]


def _duration_is_zero(duration: str) -> bool:
    return all(float(part[:-1]) == 0 for part in duration.split())


def parse_smart_commits(message: str, *, allowed_keys: Collection[str] | None = None) -> ParsedMessage:
    """The smart-commit commands of ``message`` and what was wrong with the rest.

    ``allowed_keys``: the issue keys a command may act on (the commit's links: keys of the
    tenant's projects, within the repository's project association); ``None`` allows any key.
    """
    commands: list[SmartCommand] = []
    problems: list[Problem] = []
    inherited: tuple[str, ...] = ()
    index = 0
    actions = 0
    for line_no, line in enumerate(_LINES.split(message or ""), start=1):
        tokens = [m for m in _COMMAND.finditer(line) if not is_issue_key(m.group(1))]
        named = keys_in_text(line[: tokens[0].start()] if tokens else line)
        if named:
            targets = tuple(k for k in named if allowed_keys is None or k in allowed_keys)
            for key in named:
                if allowed_keys is not None and key not in allowed_keys and tokens:
                    problems.append(
                        Problem(line_no, key, f"{key} is not linked to this commit (not a project of this Jira site)")
                    )
            inherited = targets
        else:
            targets = inherited
        for n, token in enumerate(tokens):
            this_index = index
            index += 1
            end = tokens[n + 1].start() if n + 1 < len(tokens) else len(line)
            fragment = _fragment(line[token.start() : end])
            if this_index >= MAX_COMMANDS:
                problems.append(
                    Problem(line_no, fragment, f"more than {MAX_COMMANDS} commands in one message", this_index)
                )
                continue
            name = token.group(1).strip("-_") or token.group(1)
            argument = line[token.end() : end]
            if not targets:
                problems.append(Problem(line_no, fragment, "no issue key before the command", this_index))
                continue
            command = _command(this_index, name, argument, targets, line_no, fragment, problems)
            if command is None:
                continue
            if actions + len(targets) > MAX_ACTIONS:
                problems.append(
                    Problem(
                        line_no,
                        fragment,
                        f"more than {MAX_ACTIONS} issue commands in one message (ignored)",
                        this_index,
                    )
                )
                continue
            actions += len(targets)
            commands.append(command)
    return ParsedMessage(tuple(commands), tuple(problems))


def _command(
    index: int,
    name: str,
    argument: str,
    targets: tuple[str, ...],
    line: int,
    fragment: str,
    problems: list[Problem],
) -> SmartCommand | None:
    lowered = name.lower()
    if lowered == CommandKind.COMMENT.value:
        text = _comment_text(argument)
        if not text:
            problems.append(Problem(line, fragment, "#comment without text", index))
            return None
        return SmartCommand(index, CommandKind.COMMENT, targets, line, text=text)
    if lowered == CommandKind.TIME.value:
        duration, rest = parse_duration(argument)
        if duration is None:
            problems.append(Problem(line, fragment, "#time without a duration (write e.g. #time 1h 30m)", index))
            return None
        if _duration_is_zero(duration):
            problems.append(Problem(line, fragment, "#time with a zero duration", index))
            return None
        return SmartCommand(index, CommandKind.TIME, targets, line, text=_comment_text(rest), duration=duration)
    return SmartCommand(index, CommandKind.TRANSITION, targets, line, text=_comment_text(argument), transition=name)


# ----------------------------------------------------------------------------- transitions


@dataclass(frozen=True)
class Transition:
    id: str
    name: str


@dataclass(frozen=True)
class TransitionMatch:
    transition: Transition | None
    reason: str | None = None  # why there is no match (user-facing)


def _normal(name: str) -> str:
    return "-".join(name.lower().split())


def match_transition(command: str, available: Sequence[Transition]) -> TransitionMatch:
    """The transition ``#command`` names among those Jira offers for the issue.

    Case-insensitive; hyphens stand for spaces. A whole name wins (``#in-review`` for "In
    review"); otherwise the start of exactly one name (``#finish`` for "Finish work", as Atlassian
    documents: "the part of a transition name before the first space" is enough). Two names
    that both fit are ambiguous and nothing runs -- Jira's own rule.
    """
    wanted = "-".join(part for part in _normal(command).split("-") if part)
    if not wanted:
        return TransitionMatch(None, "empty transition name")
    exact = [t for t in available if _normal(t.name) == wanted]
    if len(exact) == 1:
        return TransitionMatch(exact[0])
    names = ", ".join(sorted({t.name for t in available})) or "none"
    if len(exact) > 1:
        return TransitionMatch(None, f"#{command} matches several transitions named {exact[0].name!r}")
    prefixed = [t for t in available if _normal(t.name).startswith(wanted)]
    if len(prefixed) == 1:
        return TransitionMatch(prefixed[0])
    if prefixed:
        listed = ", ".join(t.name for t in prefixed)
        return TransitionMatch(
            None, f"#{command} is ambiguous ({listed}); write more of the name, with hyphens for spaces"
        )
    return TransitionMatch(None, f"no transition '{command}' is available from the issue's status (available: {names})")


def adf_paragraph(text: str) -> dict[str, object]:
    """``text`` as an Atlassian Document Format document of one paragraph (no empty text node)."""
    content: list[dict[str, object]] = [{"type": "text", "text": text}] if text else []
    return {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": content}]}
