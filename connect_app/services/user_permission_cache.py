"""The cache of what users' own tokens may read, in two parts.

* Answers (``UserRepositoryPermission`` rows): what ``GitHost.repository_permission`` said for
  a user's token on a repository, trusted for ``Settings.user_permission_cache_seconds``.
* Failure marks (one Redis hash per tenant and user): repositories whose check failed (host
  down, timed out, rate limited). Not an answer, so never a row; kept
  :data:`FAILURE_TTL_SECONDS` so a failing host is not asked on every view of the panel.

:func:`drop` forgets both for a user (the "refresh" button, a new, removed or refused token).
No host calls and no commits here.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT
from sqlalchemy import delete
from sqlalchemy.orm import Session

from connect_app.extensions import redis_conn
from connect_app.hosts.base import Permission
from connect_app.models import UserRepositoryPermission

log = logging.getLogger(__name__)

FAILURE_TTL_SECONDS = 30


@dataclass(frozen=True)
class Answer:
    user_token_id: int
    repository_id: int
    permission: Permission


def failures_key(tenant_id: int, account_id: str) -> str:
    return f"gcj:user-permission-failures:{tenant_id}:{account_id}"


def _field(token_id: int, repository_id: int) -> str:
    return f"{token_id}:{repository_id}"


class FailureMarks:
    """Repositories whose permission check failed recently, per user (Redis; best effort:
    without Redis nothing is remembered and the host is simply asked again)."""

    def __init__(self, client: Redis | None = None, *, ttl_seconds: int = FAILURE_TTL_SECONDS) -> None:
        self._client = client
        self.ttl_seconds = ttl_seconds

    @property
    def client(self) -> Redis:
        return self._client if self._client is not None else redis_conn.client

    def recent(self, tenant_id: int, account_id: str, now: datetime) -> set[tuple[int, int]]:
        """``(token id, repository id)`` pairs that failed less than the TTL ago."""
        try:
            raw = self.client.hgetall(failures_key(tenant_id, account_id))
        except RedisError as e:
            log.warning("permission failure marks unavailable: %s", type(e).__name__)
            return set()
        out: set[tuple[int, int]] = set()
        for field, until in raw.items():
            token_id, _, repo_id = (field.decode() if isinstance(field, bytes) else str(field)).partition(":")
            try:
                if float(until) > now.timestamp():
                    out.add((int(token_id), int(repo_id)))
            except ValueError:
                continue
        return out

    def mark(self, tenant_id: int, account_id: str, pairs: Iterable[tuple[int, int]], now: datetime) -> None:
        until = now.timestamp() + self.ttl_seconds
        mapping: dict[FieldT, EncodableT] = {_field(t, r): until for t, r in pairs}
        if not mapping:
            return
        key = failures_key(tenant_id, account_id)
        try:
            pipe = self.client.pipeline()
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, self.ttl_seconds)
            pipe.execute()
        except RedisError as e:
            log.warning("could not remember failed permission checks: %s", type(e).__name__)

    def clear(self, tenant_id: int, account_id: str) -> None:
        try:
            self.client.delete(failures_key(tenant_id, account_id))
        except RedisError as e:
            log.warning("could not clear failed permission checks: %s", type(e).__name__)


def store(session: Session, tenant_id: int, account_id: str, answers: Collection[Answer], now: datetime) -> None:
    """Replace the user's cached answers for these repositories (flushed, not committed)."""
    if not answers:
        return
    repo_ids = sorted({a.repository_id for a in answers})
    session.execute(
        delete(UserRepositoryPermission).where(
            UserRepositoryPermission.tenant_id == tenant_id,
            UserRepositoryPermission.account_id == account_id,
            UserRepositoryPermission.repository_id.in_(repo_ids),
        )
    )
    session.add_all(
        UserRepositoryPermission(
            tenant_id=tenant_id,
            account_id=account_id,
            repository_id=a.repository_id,
            user_token_id=a.user_token_id,
            permission=int(a.permission),
            checked_at=now,
        )
        for a in answers
    )
    session.flush()


def drop(session: Session, tenant_id: int, account_id: str, *, user_token_id: int | None = None) -> int:
    """Forget the user's cached answers (only those of one token when given) and every failure
    mark of the user. Returns the number of answers dropped (flushed, not committed)."""
    stmt = delete(UserRepositoryPermission).where(
        UserRepositoryPermission.tenant_id == tenant_id, UserRepositoryPermission.account_id == account_id
    )
    if user_token_id is not None:
        stmt = stmt.where(UserRepositoryPermission.user_token_id == user_token_id)
    result = session.execute(stmt)
    FailureMarks().clear(tenant_id, account_id)
    return int(getattr(result, "rowcount", 0) or 0)
