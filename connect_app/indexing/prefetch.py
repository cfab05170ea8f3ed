"""Batches of a stream built in a background thread while the caller writes the previous ones.

The history walk reads ``git log`` and prepares rows (pure Python: parsing, issue keys) and
writes them to the database (mostly C: SQLite's B-trees, the commit's WAL writes and fsync,
PostgreSQL's round trips). :class:`Prefetch` runs the first in a thread so that it overlaps the
second, with at most one batch ready ahead (memory stays bounded).

The database work in the caller's thread stays exactly as it was: same session, same
transactions, same order; nothing here touches the database. Errors of the stream (git
failing, a parse error) are raised in the caller's thread, at the batch where they happened.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class Prefetch(Generic[T]):
    """``with Prefetch(items, size) as batches: for batch in batches: ...`` -- ``items`` in lists
    of ``size`` (the last may be shorter), read by a background thread.

    ``paced``: the reader builds the next batch only once the caller calls :meth:`go_ahead`
    (after its inserts, before its commit), so it never competes with the caller's inserts
    for the GIL: sqlite3's ``executemany`` gives the GIL up once per row and would wait for
    it each time."""

    def __init__(self, items: Iterator[T], size: int, *, paced: bool = False) -> None:
        self._items = items
        self._size = max(1, size)
        self._paced = paced
        self._ready: queue.Queue[list[T] | BaseException | None] = queue.Queue(maxsize=1)
        self._permits = threading.Semaphore(1)  # the first batch needs none
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="history-prefetch", daemon=True)

    def __enter__(self) -> Prefetch[T]:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[list[T]]:
        while True:
            item = self._ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if not self._paced:
                self._permits.release()
            yield item

    def go_ahead(self) -> None:
        """(paced) Let the reader build the next batch now."""
        if self._paced:
            self._permits.release()

    def close(self) -> None:
        """Stop the reader and wait for it: the stream must not be closed while it reads. A reader
        blocked on the stream stops at its next item or when the stream ends (git's own deadline
        kills a git that hangs)."""
        self._stop.set()
        self._permits.release()
        self._thread.join()

    def _read(self) -> None:
        try:
            while True:
                self._permits.acquire()
                if self._stop.is_set():
                    return
                batch: list[T] = []
                for item in self._items:
                    batch.append(item)
                    if len(batch) >= self._size or self._stop.is_set():
                        break
                if self._stop.is_set():
                    return
                if batch:
                    self._put(batch)
                if len(batch) < self._size:
                    self._put(None)
                    return
        except BaseException as e:  # handed to the caller's thread, raised there
            self._put(e)

    def _put(self, item: list[T] | BaseException | None) -> None:
        while not self._stop.is_set():  # the caller may have stopped taking batches
            try:
                self._ready.put(item, timeout=0.05)
                return
            except queue.Full:
                continue
