"""One indexer per repository at a time: a Redis lock kept alive by a heartbeat.

``SET gcj:index-lock:<id> <host>:<pid>:<token> NX PX ttl``. A clone of a big repository
writes nothing for minutes, so a heartbeat thread refreshes the TTL; the indexer calls
:meth:`IndexLock.check` before every commit and stops (:class:`LockLost`) if another worker
holds the key. A process killed with SIGKILL leaves the key until the TTL ends; a holder on
this machine whose process is gone is taken over at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from redis import Redis
from redis.exceptions import RedisError

from connect_app.errors import AppError

log = logging.getLogger(__name__)

LOCK_TTL = timedelta(seconds=60)
LOCK_HEARTBEAT = timedelta(seconds=15)

_REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_TAKE_OVER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0"
)


class LockLost(AppError):
    """Another worker took over this repository's index lock."""

    code = "index_lock_lost"


class IndexLock:
    """``SET gcj:index-lock:<id> <host>:<pid>:<token> NX PX ttl``, kept alive by a heartbeat thread
    (a clone of a big repository writes nothing for minutes). A process killed with SIGKILL leaves
    the key until the TTL ends; a holder on this machine whose process is gone is taken over."""

    def __init__(self, client: Redis, repository_id: int, ttl: timedelta = LOCK_TTL) -> None:
        self.client = client
        self.key = f"gcj:index-lock:{repository_id}"
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self.ttl_ms = int(ttl.total_seconds() * 1000)
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        taken = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        if not taken:
            holder = self.client.get(self.key)
            if holder is not None and _holder_is_gone(
                holder.decode(errors="replace") if isinstance(holder, bytes) else str(holder)
            ):
                taken = bool(self.client.eval(_TAKE_OVER, 1, self.key, holder, self.token, self.ttl_ms))
                if taken:
                    log.warning("took over %s from a process that no longer exists", self.key)
        if taken:
            self._thread = threading.Thread(target=self._beat, name=f"{self.key}-heartbeat", daemon=True)
            self._thread.start()
        return taken

    def refresh(self) -> bool:
        ok = bool(self.client.eval(_REFRESH, 1, self.key, self.token, self.ttl_ms))
        self.lost = self.lost or not ok
        return ok

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock is no longer ours (called before every commit)."""
        try:
            self.refresh()
        except RedisError:
            log.warning("could not refresh %s; carrying on (writes are idempotent)", self.key, exc_info=True)
        if self.lost:
            raise LockLost("another worker took over the indexing of this repository")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(RedisError):
            self.client.eval(_RELEASE, 1, self.key, self.token)

    def _beat(self) -> None:
        while not self._stop.wait(LOCK_HEARTBEAT.total_seconds()):
            try:
                if not self.refresh():
                    return
            except RedisError:
                log.warning("index lock heartbeat failed for %s", self.key, exc_info=True)


def _holder_is_gone(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
