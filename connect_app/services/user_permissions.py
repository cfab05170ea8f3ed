"""What a Jira user's own git token may read: the :class:`~connect_app.services.development.PermissionChecker`
behind "enforce git service permissions" (installed by ``create_app``).

Per request (:meth:`UserTokenPermissions.readable`):

1. one query loads the user's tokens for the candidate integrations, LEFT JOIN their cached
   answers (``UserRepositoryPermission``) for the candidate repositories;
2. no token, or a token marked invalid: the integration is ``None`` (nothing shows; the
   panel asks for a token);
3. an answer younger than ``Settings.user_permission_cache_seconds`` is used; READ or more is
   readable;
4. the rest (missing or stale, and not failed in the last :data:`FAILURE_TTL_SECONDS`) is
   asked from the host with the user's credentials: at most :data:`MAX_CONCURRENT_CHECKS`
   calls at once and :data:`TIME_BUDGET_SECONDS` in all, so the panel never hangs. An answer
   is cached; a failure (host down, slow, rate limited, unsupported) counts as "not readable
   now" and is remembered only briefly; a refused token is marked invalid (the user is asked
   for a new one).

Cache writes use their own short transaction, so the caller's session stays read-only.
:func:`forget` is the "refresh" button: the user's cached answers go, the next view asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, false, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from connect_app.errors import AppError, HostAuthError
from connect_app.hosts.base import Credentials, Permission, RemoteRepository
from connect_app.hosts.registry import HostConfig, build_host
from connect_app.integrations import remote_repository, user_host_config
from connect_app.models import Integration, Repository, UserRepositoryPermission, UserToken, utcnow
from connect_app.runtime import runtime
from connect_app.services import user_permission_cache as cache
from connect_app.services.user_tokens import decrypt_token, mark_token_invalid

log = logging.getLogger(__name__)

MAX_CONCURRENT_CHECKS = 4  # host calls at once for one request
TIME_BUDGET_SECONDS = 4.0  # for all of one request's host calls; the rest count as "not readable now"
FAILURE_TTL_SECONDS = cache.FAILURE_TTL_SECONDS


@dataclass(frozen=True)
class PermissionCheck:
    """One question to a host: may this user's token read this repository?"""

    integration_id: int
    user_token_id: int
    repository_id: int
    config: HostConfig  # the integration's host with the user's credentials
    repository: RemoteRepository
    credentials: Credentials

    def __repr__(self) -> str:
        return f"PermissionCheck(integration={self.integration_id}, repository={self.repository_id})"


def ask_host(check: PermissionCheck) -> Permission:
    """The host's answer (runs in a worker thread: no database, no app context)."""
    host = build_host(check.config)
    try:
        return host.repository_permission(check.repository, check.credentials)
    finally:
        close = getattr(host, "close", None)
        if callable(close):
            close()


@dataclass(frozen=True)
class _Refused:
    reason: str


_Outcome = Permission | _Refused | None  # None: failed, timed out or not asked in time


@dataclass
class _Token:
    id: int
    integration_id: int
    invalid: bool
    cached: dict[int, tuple[int, datetime]]


class UserTokenPermissions:
    """The real permission checker (see the module docstring)."""

    def __init__(
        self,
        *,
        ttl_seconds: int | None = None,
        max_concurrent: int = MAX_CONCURRENT_CHECKS,
        time_budget_seconds: float = TIME_BUDGET_SECONDS,
        failures: cache.FailureMarks | None = None,
        ask: Callable[[PermissionCheck], Permission] = ask_host,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._ttl_seconds = ttl_seconds
        self.max_concurrent = max(1, max_concurrent)
        self.time_budget_seconds = time_budget_seconds
        self.failures = failures or cache.FailureMarks()
        self.ask = ask
        self.clock = clock

    @property
    def ttl(self) -> timedelta:
        seconds = (
            self._ttl_seconds if self._ttl_seconds is not None else runtime().settings.user_permission_cache_seconds
        )
        return timedelta(seconds=seconds)

    def readable(
        self, session: Session, tenant_id: int, account_id: str | None, candidates: Mapping[int, frozenset[int]]
    ) -> Mapping[int, frozenset[int] | None]:
        if not account_id or not candidates:
            return {}
        now = self.clock()
        tokens = _load_tokens(session, tenant_id, account_id, candidates)
        fresh_after = now - self.ttl
        readable: dict[int, set[int]] = {}
        wanted: dict[int, list[int]] = {}  # token id -> repositories to ask the host about
        for integration_id, repo_ids in candidates.items():
            token = tokens.get(integration_id)
            if token is None or token.invalid:
                continue
            readable[integration_id] = set()
            for repo_id in repo_ids:
                cached = token.cached.get(repo_id)
                if cached is not None and cached[1] > fresh_after:
                    if cached[0] >= Permission.READ:
                        readable[integration_id].add(repo_id)
                else:
                    wanted.setdefault(token.id, []).append(repo_id)
        if wanted:
            recent = self.failures.recent(tenant_id, account_id, now)
            wanted = {t: [r for r in repos if (t, r) not in recent] for t, repos in wanted.items()}
            wanted = {t: repos for t, repos in wanted.items() if repos}
        if wanted:
            checks = _checks(session, tenant_id, tokens, wanted)
            outcomes = self._ask_all(checks)
            refused = self._record(session, tenant_id, account_id, checks, outcomes, now)
            for check, outcome in zip(checks, outcomes, strict=True):
                if isinstance(outcome, Permission) and outcome >= Permission.READ:
                    readable[check.integration_id].add(check.repository_id)
            for integration_id in refused:
                readable.pop(integration_id, None)
        return {integration_id: frozenset(ids) for integration_id, ids in readable.items()}

    # -- host calls

    def _ask_one(self, check: PermissionCheck) -> _Outcome:
        try:
            return Permission(self.ask(check))
        except HostAuthError as e:
            return _Refused(
                f"The host refused this token when checking repository access ({e.message}). "
                "It may have expired or been revoked: add a new one."
            )
        except AppError as e:  # host down, rate limited, unsupported...: not readable now
            log.info("permission check failed for %r: %s", check, e.code)
            return None
        except Exception:  # a bug in one host module must not break the panel
            log.exception("permission check crashed for %r", check)
            return None

    def _ask_all(self, checks: list[PermissionCheck]) -> list[_Outcome]:
        if not checks:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrent, len(checks)), thread_name_prefix="perm-check")
        futures: list[Future[_Outcome]] = []
        try:
            futures.extend(pool.submit(self._ask_one, c) for c in checks)
            wait(futures, timeout=self.time_budget_seconds)
        finally:
            # calls still running finish in the background (each has its own HTTP timeout);
            # queued ones are dropped; neither delays this request any more
            pool.shutdown(wait=False, cancel_futures=True)
        late = sum(1 for f in futures if not f.done())
        if late:
            log.info("%d permission checks did not finish within %.1fs", late, self.time_budget_seconds)
        return [f.result() if f.done() and not f.cancelled() else None for f in futures]

    # -- remembering

    def _record(
        self,
        session: Session,
        tenant_id: int,
        account_id: str,
        checks: list[PermissionCheck],
        outcomes: list[_Outcome],
        now: datetime,
    ) -> set[int]:
        """Cache answers, remember failures, mark refused tokens invalid. Returns the
        integrations whose token was refused."""
        answers: list[cache.Answer] = []
        failed: list[tuple[int, int]] = []
        refused: dict[int, str] = {}
        for check, outcome in zip(checks, outcomes, strict=True):
            if isinstance(outcome, _Refused):
                refused.setdefault(check.integration_id, outcome.reason)
            elif outcome is None:
                failed.append((check.user_token_id, check.repository_id))
            else:
                answers.append(cache.Answer(check.user_token_id, check.repository_id, outcome))
        refused_tokens = {c.user_token_id for c in checks if c.integration_id in refused}
        answers = [a for a in answers if a.user_token_id not in refused_tokens]
        self.failures.mark(tenant_id, account_id, failed, now)
        if answers or refused:
            _write(session, tenant_id, account_id, answers, refused, now)
        return set(refused)


def _load_tokens(
    session: Session, tenant_id: int, account_id: str, candidates: Mapping[int, frozenset[int]]
) -> dict[int, _Token]:
    """The one query: the user's tokens for these integrations with their cached answers."""
    perm = UserRepositoryPermission
    repo_ids = sorted({r for ids in candidates.values() for r in ids})
    cached_rows = (
        and_(
            perm.user_token_id == UserToken.id,
            perm.tenant_id == tenant_id,
            perm.account_id == account_id,
            perm.repository_id.in_(repo_ids),
        )
        if repo_ids
        else false()
    )
    stmt = (
        select(UserToken.id, UserToken.integration_id, UserToken.invalid_reason)
        .add_columns(perm.repository_id, perm.permission, perm.checked_at)
        .outerjoin(perm, cached_rows)
        .where(
            UserToken.tenant_id == tenant_id,
            UserToken.account_id == account_id,
            UserToken.integration_id.in_(sorted(candidates)),
        )
    )
    tokens: dict[int, _Token] = {}
    for token_id, integration_id, invalid_reason, repo_id, permission, checked_at in session.execute(stmt):
        token = tokens.setdefault(integration_id, _Token(token_id, integration_id, bool(invalid_reason), {}))
        if repo_id is not None:
            token.cached[repo_id] = (permission, checked_at)
    return tokens


def _checks(
    session: Session, tenant_id: int, tokens: Mapping[int, _Token], wanted: Mapping[int, list[int]]
) -> list[PermissionCheck]:
    """What to ask, built in the request thread (decryption and settings need the app)."""
    by_token = {t.id: t for t in tokens.values()}
    integration_ids = sorted({by_token[t].integration_id for t in wanted})
    rows = session.execute(
        select(Integration, UserToken)
        .join(UserToken, UserToken.integration_id == Integration.id)
        .where(
            Integration.tenant_id == tenant_id,
            UserToken.tenant_id == tenant_id,
            UserToken.id.in_(sorted(wanted)),
            Integration.id.in_(integration_ids),
        )
    ).all()
    repo_ids = sorted({r for repos in wanted.values() for r in repos})
    repos = {
        r.id: r
        for r in session.scalars(
            select(Repository).where(Repository.tenant_id == tenant_id, Repository.id.in_(repo_ids))
        )
    }
    checks = []
    for integration, token in rows:
        try:
            credentials = decrypt_token(token)
            config = user_host_config(integration, credentials, max_wait_seconds=0.0)
        except AppError as e:  # undecryptable token, integration without its server URL...: not readable now
            log.warning("cannot check permissions for integration %s: %s", integration.id, e.code)
            continue
        for repo_id in wanted[token.id]:
            repo = repos.get(repo_id)
            if repo is None or repo.integration_id != integration.id:
                continue
            checks.append(
                PermissionCheck(integration.id, token.id, repo.id, config, remote_repository(repo), credentials)
            )
    return checks


def _write(
    session: Session,
    tenant_id: int,
    account_id: str,
    answers: list[cache.Answer],
    refused: Mapping[int, str],
    now: datetime,
) -> None:
    """Store the answers and invalidate refused tokens in a transaction of their own."""
    with Session(bind=session.get_bind(), expire_on_commit=False) as own:
        try:
            cache.store(own, tenant_id, account_id, answers, now)
            for integration_id, reason in refused.items():
                mark_token_invalid(own, tenant_id, account_id, integration_id, reason)
            own.commit()
        except SQLAlchemyError as e:  # e.g. a concurrent request stored the same rows first
            own.rollback()
            log.info("permission cache not written: %s", type(e).__name__)


def forget(session: Session, tenant_id: int, account_id: str) -> int:
    """Drop every cached answer and failure mark of the user (flushed, not committed)."""
    return cache.drop(session, tenant_id, account_id)
