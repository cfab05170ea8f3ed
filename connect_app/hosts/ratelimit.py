"""Rate-limit headers of every host, and one request budget per credential.

Hosts say how much budget is left in different dialects:

* GitHub: ``x-ratelimit-limit/remaining/reset`` (epoch seconds), secondary
  limits as 403/429 with ``retry-after``;
* GitLab: ``RateLimit-Limit/Remaining/Reset``;
* Azure DevOps: ``Retry-After``, ``X-RateLimit-Remaining``/``-Reset``/``-Delay``;
* anyone: 429 with ``Retry-After`` (seconds or an HTTP date).

:func:`parse_rate_headers` turns them into one :class:`RateSignal`. A
:class:`BudgetStore` keeps a :class:`~connect_app.hosts.base.RateBudget` per
credential so every process of every machine paces itself on the same numbers
(:class:`RedisBudgetStore`), or per process (:class:`MemoryBudgetStore`).
"""

from __future__ import annotations

import email.utils
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from connect_app.hosts.base import RateBudget

# GitHub's advice for a secondary limit that names no time: wait at least a minute.
DEFAULT_LIMITED_SECONDS = 60.0
# A budget without a reset time is trusted this long.
UNTIMED_BUDGET_SECONDS = 300
# Reset values below this are relative seconds (IETF draft style), above it epoch seconds.
_EPOCH_THRESHOLD = 1_000_000_000


@dataclass(frozen=True)
class RateSignal:
    """What one response said about rate limits."""

    budget: RateBudget | None = None
    retry_after: float | None = None  # seconds to wait, from Retry-After
    delay: float | None = None  # Azure X-RateLimit-Delay: how long the host already held the request
    resource: str | None = None  # GitHub x-ratelimit-resource: core, search, graphql, ...


def _epoch(dt: datetime | None) -> float | None:
    return None if dt is None else dt.timestamp()


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and number >= 0 else None  # drop NaN and negatives


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _reset_epoch(value: str | None, now: float) -> float | None:
    number = _number(value)
    if number is None:
        return None
    return number if number >= _EPOCH_THRESHOLD else now + number


def parse_rate_headers(headers: Mapping[str, str], now: float) -> RateSignal:
    h = {k.lower(): v for k, v in headers.items()}

    def first(*names: str) -> str | None:
        return next((h[n] for n in names if n in h), None)

    limit = _number(first("x-ratelimit-limit", "ratelimit-limit"))
    remaining = _number(first("x-ratelimit-remaining", "ratelimit-remaining"))
    reset = _reset_epoch(first("x-ratelimit-reset", "ratelimit-reset"), now)
    if reset is None and "ratelimit-resettime" in h:  # GitLab also sends an HTTP date
        after = parse_retry_after(h["ratelimit-resettime"], now)
        reset = None if after is None else now + after
    budget = None
    if limit is not None or remaining is not None:
        budget = RateBudget(
            limit=None if limit is None else int(limit),
            remaining=None if remaining is None else int(remaining),
            reset_at=_dt(reset),
        )
    return RateSignal(
        budget=budget,
        retry_after=parse_retry_after(h.get("retry-after"), now),
        delay=_number(h.get("x-ratelimit-delay")),
        resource=h.get("x-ratelimit-resource"),
    )


def limited_until(status: int, signal: RateSignal, body_text: str, now: float) -> float | None:
    """Epoch second from which a refused request may be retried, or None when the
    response is not a rate-limit refusal (a 403 can be either)."""
    exhausted = signal.budget is not None and signal.budget.remaining == 0
    if status == 403 and not (exhausted or signal.retry_after is not None or "rate limit" in body_text[:2000].lower()):
        return None
    if status not in (403, 429):
        return None
    if signal.retry_after is not None:
        return now + signal.retry_after
    reset = _epoch(signal.budget.reset_at) if signal.budget else None
    if exhausted and reset is not None and reset > now:
        return reset
    return now + DEFAULT_LIMITED_SECONDS


def merge_budget(current: RateBudget | None, new: RateBudget, now: float) -> RateBudget | None:
    """The budget to store after ``new`` arrives, or None to keep ``current``.

    Responses from many processes arrive out of order, so: a block (remaining 0
    with a reset ahead) only ends by time or by a later block; within one window
    the lowest remaining wins; a later window replaces an earlier one.
    """
    if current is None:
        return new
    cur_reset, new_reset = _epoch(current.reset_at), _epoch(new.reset_at)
    if current.remaining == 0 and cur_reset is not None and cur_reset > now:
        return new if new.remaining == 0 and new_reset is not None and new_reset > cur_reset else None
    if new.remaining == 0 or cur_reset is None or new_reset is None:
        return new
    if abs(cur_reset - new_reset) < 1:
        lowest = new.remaining
        if current.remaining is not None and (lowest is None or current.remaining < lowest):
            lowest = current.remaining
        return RateBudget(limit=new.limit, remaining=lowest, reset_at=new.reset_at)
    return new if new_reset > cur_reset else None


def _ttl(budget: RateBudget, now: float) -> int:
    reset = _epoch(budget.reset_at)
    if reset is None:
        return UNTIMED_BUDGET_SECONDS
    return max(1, int(reset - now) + 1)


class BudgetStore(Protocol):
    """Where the budget of each credential lives (key: host + credential fingerprint)."""

    def get(self, key: str, *, now: float) -> RateBudget | None:
        """The current budget, or None when unknown or its window has passed."""
        ...

    def record(self, key: str, budget: RateBudget, *, now: float) -> None:
        """Merge what a host just said (see :func:`merge_budget`)."""
        ...

    def acquire(self, key: str, *, now: float) -> datetime | None:
        """Reserve one request: returns the reset time when the budget is exhausted
        (nothing reserved), else None after counting the request against it."""
        ...

    def release(self, key: str) -> None:
        """Give back a reserved request that did not count (a 304 from GitHub)."""
        ...


class MemoryBudgetStore:
    """Per-process store; fine for one worker or tests."""

    def __init__(self) -> None:
        # key -> (budget, exhausted by the host's word rather than by our own reservations)
        self._budgets: dict[str, tuple[RateBudget, bool]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> RateBudget | None:
        entry = self._budgets.get(key)
        reset = _epoch(entry[0].reset_at) if entry else None
        if entry is not None and reset is not None and reset <= now:
            del self._budgets[key]
            return None
        return entry[0] if entry else None

    def get(self, key: str, *, now: float) -> RateBudget | None:
        with self._lock:
            return self._live(key, now)

    def record(self, key: str, budget: RateBudget, *, now: float) -> None:
        with self._lock:
            merged = merge_budget(self._live(key, now), budget, now)
            if merged is not None:
                self._budgets[key] = (merged, merged.remaining == 0)

    def acquire(self, key: str, *, now: float) -> datetime | None:
        with self._lock:
            budget = self._live(key, now)
            if budget is None or budget.remaining is None:
                return None
            if budget.remaining <= 0:
                reset = _epoch(budget.reset_at)
                return budget.reset_at if reset is not None and reset > now else None
            self._budgets[key] = (RateBudget(budget.limit, budget.remaining - 1, budget.reset_at), False)
            return None

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._budgets.get(key)
            if entry is None or entry[1] or entry[0].remaining is None:
                return
            budget = entry[0]
            if budget.limit is not None and budget.remaining is not None and budget.remaining >= budget.limit:
                return
            self._budgets[key] = (
                RateBudget(budget.limit, (budget.remaining or 0) + 1, budget.reset_at),
                False,
            )


# Stored as a hash {l: limit, r: remaining, t: reset epoch, b: 1 when the host said
# "exhausted"}, -1 meaning unknown.
# The Lua scripts mirror merge_budget and MemoryBudgetStore so all processes agree.
_RECORD_LUA = """
local nl, nr, nt = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local cur = redis.call('HMGET', KEYS[1], 'r', 't')
if cur[1] then
  local cr, ct = tonumber(cur[1]), tonumber(cur[2])
  if ct >= 0 and ct <= now then
    cur[1] = false
  elseif cr == 0 and ct > now then
    if not (nr == 0 and nt > ct) then return 0 end
  elseif nr ~= 0 and ct >= 0 and nt >= 0 then
    if math.abs(ct - nt) < 1 then
      if cr >= 0 and (nr < 0 or cr < nr) then nr = cr end
    elseif nt < ct then
      return 0
    end
  end
end
local b = 0
if nr == 0 then b = 1 end
redis.call('HSET', KEYS[1], 'l', nl, 'r', nr, 't', ARGV[3], 'b', b)
redis.call('EXPIRE', KEYS[1], ttl)
return 1
"""

_ACQUIRE_LUA = """
local cur = redis.call('HMGET', KEYS[1], 'r', 't')
if not cur[1] then return false end
local r, t, now = tonumber(cur[1]), tonumber(cur[2]), tonumber(ARGV[1])
if t >= 0 and t <= now then return false end
if r == 0 then
  if t > now then return cur[2] end
  return false
end
if r > 0 then redis.call('HINCRBY', KEYS[1], 'r', -1) end
redis.call('HSET', KEYS[1], 'b', 0)
return false
"""

_RELEASE_LUA = """
local cur = redis.call('HMGET', KEYS[1], 'l', 'r', 'b')
if not cur[2] or cur[3] == '1' then return 0 end
local l, r = tonumber(cur[1]), tonumber(cur[2])
if r < 0 or (l >= 0 and r >= l) then return 0 end
redis.call('HINCRBY', KEYS[1], 'r', 1)
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional_int(value: Any) -> int | None:
    number = int(float(_text(value)))
    return None if number < 0 else number


class RedisBudgetStore:
    """Shared by every process using the same Redis; entries expire at reset."""

    def __init__(self, redis_conn: Any, *, prefix: str = "gcj:ratebudget:") -> None:
        self._redis = redis_conn
        self._prefix = prefix
        self._record = redis_conn.register_script(_RECORD_LUA)
        self._acquire = redis_conn.register_script(_ACQUIRE_LUA)
        self._release = redis_conn.register_script(_RELEASE_LUA)

    def get(self, key: str, *, now: float) -> RateBudget | None:
        raw = self._redis.hmget(self._prefix + key, "l", "r", "t")
        if raw[1] is None:
            return None
        reset = float(_text(raw[2]))
        if 0 <= reset <= now:
            return None
        return RateBudget(
            limit=_optional_int(raw[0]),
            remaining=_optional_int(raw[1]),
            reset_at=_dt(reset) if reset >= 0 else None,
        )

    def record(self, key: str, budget: RateBudget, *, now: float) -> None:
        reset = _epoch(budget.reset_at)
        self._record(
            keys=[self._prefix + key],
            args=[
                -1 if budget.limit is None else budget.limit,
                -1 if budget.remaining is None else budget.remaining,
                repr(-1.0 if reset is None else reset),
                repr(now),
                _ttl(budget, now),
            ],
        )

    def acquire(self, key: str, *, now: float) -> datetime | None:
        blocked = self._acquire(keys=[self._prefix + key], args=[repr(now)])
        return None if blocked is None else _dt(float(_text(blocked)))

    def release(self, key: str) -> None:
        self._release(keys=[self._prefix + key])
