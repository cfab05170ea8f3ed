"""Cached GET responses for conditional requests (``If-None-Match``).

A 304 costs the host almost nothing and, on GitHub, nothing from the rate
limit, so the indexer re-reads unchanged pages for free. Keys include the
credential fingerprint: two tokens may see different data at the same URL.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# Response headers worth keeping with the body (pagination needs them on a 304).
KEPT_HEADERS = ("content-type", "link", "x-next-page", "x-total", "x-total-pages", "x-ms-continuationtoken")
MAX_CACHED_BODY = 2 * 1024 * 1024


@dataclass(frozen=True)
class CachedResponse:
    etag: str
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    return {name: lowered[name] for name in KEPT_HEADERS if name in lowered}


class EtagCache(Protocol):
    def get(self, key: str) -> CachedResponse | None: ...

    def set(self, key: str, value: CachedResponse) -> None: ...


class MemoryEtagCache:
    """Per-process LRU."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: CachedResponse) -> None:
        if len(value.body) > MAX_CACHED_BODY:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class RedisEtagCache:
    """Shared by every process; entries expire after ``ttl_seconds``."""

    def __init__(self, redis_conn: Any, *, prefix: str = "gcj:etag:", ttl_seconds: int = 7 * 24 * 3600) -> None:
        self._redis = redis_conn
        self._prefix = prefix
        self._ttl = ttl_seconds

    def get(self, key: str) -> CachedResponse | None:
        raw = self._redis.hmget(self._prefix + key, "etag", "status", "headers", "body")
        if any(part is None for part in raw):
            return None
        etag, status, headers = (p.decode() if isinstance(p, bytes) else str(p) for p in raw[:3])
        body = raw[3]
        return CachedResponse(
            etag=etag,
            status=int(status),
            headers=json.loads(headers),
            body=body if isinstance(body, bytes) else str(body).encode(),
        )

    def set(self, key: str, value: CachedResponse) -> None:
        if len(value.body) > MAX_CACHED_BODY:
            return
        name = self._prefix + key
        pipe = self._redis.pipeline()
        pipe.hset(
            name,
            mapping={
                "etag": value.etag,
                "status": value.status,
                "headers": json.dumps(dict(value.headers)),
                "body": value.body,
            },
        )
        pipe.expire(name, self._ttl)
        pipe.execute()
