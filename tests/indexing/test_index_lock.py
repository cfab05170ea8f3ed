"""The repository index lock on its own: exclusive, refreshed, released only by its holder."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from flask import Flask

from connect_app.extensions import redis_conn
from connect_app.indexing.index_lock import IndexLock, LockLost


def test_one_holder_at_a_time_and_only_the_holder_releases(app: Flask) -> None:
    with app.app_context():
        client = redis_conn.client
        first, second = IndexLock(client, 41), IndexLock(client, 41)
        assert first.acquire()
        try:
            assert not second.acquire()  # same machine, but the holder (this process) is alive
            assert IndexLock(client, 42).acquire()  # another repository
            second.release()  # not the holder: nothing happens
            assert client.get(first.key) == first.token.encode()
            first.check()
        finally:
            first.release()
        assert client.get(first.key) is None
        assert second.acquire()
        second.release()


def test_a_lock_taken_over_raises_at_the_next_check(app: Flask) -> None:
    with app.app_context():
        client = redis_conn.client
        lock = IndexLock(client, 43, ttl=timedelta(seconds=30))
        assert lock.acquire()
        try:
            assert 0 < int(client.pttl(lock.key)) <= 30_000
            client.set(lock.key, "another-machine:1:token")
            with pytest.raises(LockLost):
                lock.check()
        finally:
            lock.release()
        assert client.get(lock.key) == b"another-machine:1:token"  # never deletes another's lock


def test_a_lock_of_a_dead_local_process_is_taken_over(app: Flask) -> None:
    with app.app_context():
        client = redis_conn.client
        pid = os.getpid()
        dead = pid + 1
        while True:  # a pid no process has
            try:
                os.kill(dead, 0)
                dead += 1
            except ProcessLookupError:
                break
            except PermissionError:
                dead += 1
        client.set("gcj:index-lock:44", f"{socket.gethostname()}:{dead}:x", px=60_000)
        lock = IndexLock(client, 44)
        assert lock.acquire()
        lock.release()
        client.set("gcj:index-lock:44", f"elsewhere:{dead}:x", px=60_000)  # another machine: wait for the TTL
        assert not IndexLock(client, 44).acquire()
