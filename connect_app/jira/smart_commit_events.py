"""What running smart commits tells the integration's log (``IntegrationEvent``, source
``smart_commit``), for commands the app runs (mode "app"; Jira's own runs are reported by the
Development panel push, :mod:`connect_app.jira.devinfo_events`).

* no Jira user matches the commit author's email: once per commit (naming the email and the
  commands), not once per command;
* impersonation unavailable (no ``oauthClientId``, ``ACT_AS_USER`` not granted): once a day
  per integration while it lasts -- every skipped command keeps the reason in the ledger;
* a command Jira refused, in Jira's words; a transition that does not exist lists the
  available ones;
* malformed commands ignored: once per commit, listing them.

Each of these happens once per command or commit (the ledger never runs or skips a command
twice), and a run writes at most :data:`MAX_EVENTS_PER_RUN` of them, then one line saying how
many more there were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from connect_app.jira.event_log import recently_recorded
from connect_app.jira.smart_commit_parser import Problem
from connect_app.models import EventLevel, EventSource
from connect_app.services.integration_log import record_event

MAX_EVENTS_PER_RUN = 50
IMPERSONATION_QUIET = timedelta(hours=24)

NO_USER = "no_jira_user"
IMPERSONATION_UNAVAILABLE = "impersonation_unavailable"
COMMAND_FAILED = "command_failed"
TRANSITION_NOT_FOUND = "transition_not_found"
MALFORMED = "malformed_commands"
NOT_LOGGED = "more_not_logged"


@dataclass
class SmartCommitLog:
    """The log writer of one run over one repository (plain values only)."""

    session: Session
    tenant_id: int
    integration_id: int
    repository_id: int
    repository_name: str
    now: datetime
    limit: int = MAX_EVENTS_PER_RUN
    written: int = 0
    not_written: int = 0
    impersonation_reported: bool = False

    def _record(self, level: EventLevel, message: str, detail: dict[str, Any]) -> bool:
        if self.written >= self.limit:
            self.not_written += 1
            return False
        record_event(
            self.session,
            tenant_id=self.tenant_id,
            integration_id=self.integration_id,
            repository_id=self.repository_id,
            level=level,
            source=EventSource.SMART_COMMIT,
            message=message,
            detail=detail,
        )
        self.written += 1
        return True

    def _commit_words(self, sha: str) -> str:
        return f"commit {sha[:12]} in {self.repository_name}"

    def no_user(self, sha: str, email: str, reason: str, commands: Sequence[str]) -> bool:
        listed = ", ".join(dict.fromkeys(commands))
        message = f"Smart commits of {self._commit_words(sha)} were not run ({listed}): {reason}."
        if email and email.casefold() not in reason.casefold():
            message += f" The commit's author email address is {email}."
        message += " Smart commits act as the Jira user whose email address is the commit author's."
        return self._record(
            EventLevel.WARNING,
            message,
            {"code": NO_USER, "sha": sha, "email": email, "reason": reason, "commands": list(commands)},
        )

    def impersonation_unavailable(self, sha: str, reason: str) -> bool:
        """Once per run, and once per :data:`IMPERSONATION_QUIET` per integration."""
        if self.impersonation_reported:
            return False
        self.impersonation_reported = True
        if recently_recorded(
            self.session,
            integration_id=self.integration_id,
            source=EventSource.SMART_COMMIT,
            code=IMPERSONATION_UNAVAILABLE,
            within=IMPERSONATION_QUIET,
            now=self.now,
        ):
            return False
        message = (
            f"Smart commits cannot act as their authors on this Jira site: {reason.rstrip('.')}. "
            f"Their commands are skipped until this is fixed (first: {self._commit_words(sha)})."
        )
        return self._record(EventLevel.ERROR, message, {"code": IMPERSONATION_UNAVAILABLE, "sha": sha})

    def failed(
        self, sha: str, issue_key: str, summary: str, reason: str, available: Sequence[str] | None = None
    ) -> bool:
        message = f"{summary} on {issue_key} from {self._commit_words(sha)} failed: {reason}"
        detail: dict[str, Any] = {
            "code": COMMAND_FAILED if available is None else TRANSITION_NOT_FOUND,
            "sha": sha,
            "issue_key": issue_key,
            "command": summary,
            "reason": reason,
        }
        if available is not None:
            detail["available_transitions"] = list(available)
        return self._record(EventLevel.WARNING, message, detail)

    def malformed(self, sha: str, problems: Sequence[Problem]) -> bool:
        what = "; ".join(f"{p.fragment!r}: {p.reason}" for p in problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        count = "1 smart-commit command" if len(problems) == 1 else f"{len(problems)} smart-commit commands"
        message = f"{count} in {self._commit_words(sha)} ignored as malformed ({what}{more})."
        detail = {
            "code": MALFORMED,
            "sha": sha,
            "problems": [{"line": p.line, "fragment": p.fragment, "reason": p.reason} for p in problems],
        }
        return self._record(EventLevel.WARNING, message, detail)

    def close(self) -> None:
        """One line for what the per-run limit kept out of the log."""
        if not self.not_written:
            return
        self.written, limit = 0, self.limit
        self.limit = 1
        self._record(
            EventLevel.INFO,
            f"{self.not_written} more smart-commit outcomes in {self.repository_name} were not logged one by one "
            f"(at most {limit} per run); each command's outcome is kept.",
            {"code": NOT_LOGGED, "count": self.not_written},
        )
        self.not_written = 0
