"""What a Development panel push tells the integration's log (``IntegrationEvent``, source
``devinfo``).

One event per push that had something to tell, nothing for an uneventful one:

* the push's findings, in one event: entities Jira refused (with samples of its words),
  issue keys Jira does not know (only keys new to the repository's list, so a re-sent
  entity does not repeat them), commits with more issue keys than Jira takes, and how many
  smart-commit commands were left to Jira;
* an interrupted push (rate limit, Jira unavailable) with when it resumes -- with its
  findings so far; without findings at most once an hour per repository;
* Jira refusing the app itself (401/403/404): once a day per integration while it lasts.

Messages are user-facing sentences; ``detail`` holds the counts and a few samples
(``detail["code"]`` says which kind of event it is). Never a secret: nothing here sees one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from connect_app.errors import AppError, RateLimited
from connect_app.jira.devinfo_payloads import EntityKind, decode_id
from connect_app.jira.event_log import recently_recorded
from connect_app.models import EventLevel, EventSource
from connect_app.services.integration_log import record_event

if TYPE_CHECKING:
    from connect_app.jira.devinfo import DevinfoResult, FailedEntity

PUSH_CODE = "devinfo_push"
INTERRUPTED_CODE = "devinfo_interrupted"
REFUSED_CODE = "devinfo_app_refused"
INTERRUPTION_QUIET = timedelta(hours=1)
REFUSAL_QUIET = timedelta(hours=24)
MESSAGE_SAMPLES = 3  # refused entities quoted in the message
KEY_SAMPLES = 10  # unknown keys named in the message
MAX_ISSUE_KEYS = 100

_RANK = {EventLevel.INFO: 0, EventLevel.WARNING: 1, EventLevel.ERROR: 2}


@dataclass(frozen=True)
class PushTarget:
    """Whose push it was (plain values: the push's ORM objects expire at every rollback)."""

    tenant_id: int
    integration_id: int
    repository_id: int
    repository_name: str


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def entity_label(kind: str, entity_id: str) -> str:
    """How an admin recognises an entity: ``commit 1a2b3c4d5e6f``, ``branch feature/ABC-1``."""
    if kind == EntityKind.COMMIT.value:
        return f"commit {entity_id[:12]}"
    if kind == EntityKind.BRANCH.value:
        return f"branch {decode_id(entity_id) or entity_id}"
    if kind == EntityKind.PULL_REQUEST.value:
        return f"pull request {entity_id}"
    return "the repository"


def _refused_sentence(failed: Sequence[FailedEntity], sent: int) -> str:
    samples = [f"{entity_label(f.kind, f.entity_id)}: {f.messages[0] if f.messages else 'refused'}" for f in failed]
    shown = "; ".join(samples[:MESSAGE_SAMPLES])
    more = f"; and {len(samples) - MESSAGE_SAMPLES} more" if len(samples) > MESSAGE_SAMPLES else ""
    of = f" of the {sent} it was sent" if sent >= len(failed) else ""
    return f"Jira refused {_plural(len(failed), 'entity', 'entities')}{of} ({shown}{more})."


def _unknown_sentence(keys: Sequence[str]) -> str:
    named = ", ".join(keys[:KEY_SAMPLES])
    more = f" and {len(keys) - KEY_SAMPLES} more" if len(keys) > KEY_SAMPLES else ""
    return (
        f"Jira does not know {_plural(len(keys), 'issue key')} linked here: {named}{more} "
        "(a typo, or an issue that was deleted or moved); Jira shows nothing for them."
    )


def findings(result: DevinfoResult, new_unknown_keys: Sequence[str]) -> tuple[EventLevel, list[str], dict[str, Any]]:
    """The level, sentences and detail of what the push found (no sentences: nothing to tell)."""
    level = EventLevel.INFO
    sentences: list[str] = []
    detail: dict[str, Any] = {"code": PUSH_CODE, "status": result.status, "backfill": result.backfill}

    def worse(candidate: EventLevel) -> None:
        nonlocal level
        if _RANK[candidate] > _RANK[level]:
            level = candidate

    if result.failed:
        sentences.append(_refused_sentence(result.failed, sum(result.sent.values())))
        worse(EventLevel.WARNING)
        detail["refused_count"] = len(result.failed)
        detail["refused"] = [
            {
                "kind": f.kind,
                "id": f.entity_id,
                "label": entity_label(f.kind, f.entity_id),
                "messages": list(f.messages),
            }
            for f in result.failed
        ]
    if new_unknown_keys:
        sentences.append(_unknown_sentence(new_unknown_keys))
        detail["unknown_issue_key_count"] = len(new_unknown_keys)
        detail["unknown_issue_keys"] = list(new_unknown_keys)
    if result.key_overflow:
        dropped = sum(len(o.dropped) for o in result.key_overflow)
        first = result.key_overflow[0]
        example = entity_label(first.kind.value, first.entity_id)
        left_out = ", ".join(first.dropped[:5]) + (", …" if len(first.dropped) > 5 else "")
        sentences.append(
            f"{_plural(len(result.key_overflow), 'commit')} link more than {MAX_ISSUE_KEYS} issue keys, the most "
            f"Jira takes per commit: {_plural(dropped, 'key')} left out (e.g. {example}: {left_out})."
        )
        worse(EventLevel.WARNING)
        detail["key_overflow"] = [
            {"id": o.entity_id, "dropped_count": len(o.dropped), "dropped": list(o.dropped)}
            for o in result.key_overflow
        ]
    if result.smart_commits_delegated:
        sentences.append(
            f"Jira was left to run {_plural(result.smart_commits_delegated, 'smart-commit command')} of new commits "
            "(this integration's smart commits are run by Jira)."
        )
        detail["smart_commits_delegated"] = result.smart_commits_delegated
    if sentences:
        detail["sent"] = dict(result.sent)
        detail["accepted"] = result.accepted
    return level, sentences, detail


def record_push(session: Session, target: PushTarget, result: DevinfoResult, new_unknown_keys: Sequence[str]) -> bool:
    """One event for a completed push with findings; True when one was written."""
    level, sentences, detail = findings(result, new_unknown_keys)
    if not sentences:
        return False
    record_event(
        session,
        tenant_id=target.tenant_id,
        integration_id=target.integration_id,
        repository_id=target.repository_id,
        level=level,
        source=EventSource.DEVINFO,
        message=f"Development panel push of {target.repository_name}: " + " ".join(sentences),
        detail=detail,
    )
    return True


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def record_interrupted(
    session: Session,
    target: PushTarget,
    result: DevinfoResult,
    new_unknown_keys: Sequence[str],
    error: AppError,
    now: datetime,
) -> bool:
    """An interrupted push: when it resumes, with the findings so far. Without findings, at most
    once per :data:`INTERRUPTION_QUIET` per repository (a long backfill under a rate limit)."""
    level, sentences, detail = findings(result, new_unknown_keys)
    retry_at = error.reset_at if isinstance(error, RateLimited) else None
    if isinstance(error, RateLimited):
        resumes = f"after {_when(retry_at)}" if retry_at else "shortly"
        head = f"Jira rate-limited the Development panel push of {target.repository_name}; it resumes {resumes}."
    else:
        head = (
            f"The Development panel push of {target.repository_name} was interrupted ({error.message.rstrip('.')}); "
            "the next push resumes where it stopped."
        )
    if not sentences and recently_recorded(
        session,
        integration_id=target.integration_id,
        repository_id=target.repository_id,
        source=EventSource.DEVINFO,
        code=INTERRUPTED_CODE,
        within=INTERRUPTION_QUIET,
        now=now,
    ):
        return False
    detail.update(
        {
            "code": INTERRUPTED_CODE,
            "error_code": error.code,
            "retry_at": retry_at.isoformat() if retry_at else None,
        }
    )
    record_event(
        session,
        tenant_id=target.tenant_id,
        integration_id=target.integration_id,
        repository_id=target.repository_id,
        level=EventLevel.WARNING if _RANK[level] < _RANK[EventLevel.WARNING] else level,
        source=EventSource.DEVINFO,
        message=" ".join([head, *sentences]),
        detail=detail,
        at=now,
    )
    return True


def record_refused(session: Session, target: PushTarget, text: str, http_status: int, now: datetime) -> bool:
    """Jira refused the app (the tenant needs attention): once per :data:`REFUSAL_QUIET` per integration."""
    if recently_recorded(
        session,
        integration_id=target.integration_id,
        source=EventSource.DEVINFO,
        code=REFUSED_CODE,
        within=REFUSAL_QUIET,
        now=now,
    ):
        return False
    record_event(
        session,
        tenant_id=target.tenant_id,
        integration_id=target.integration_id,
        repository_id=target.repository_id,
        level=EventLevel.ERROR,
        source=EventSource.DEVINFO,
        message=text + " Until then nothing is sent to the Development panel (Jira is asked again once a day).",
        detail={"code": REFUSED_CODE, "http_status": http_status},
        at=now,
    )
    return True
