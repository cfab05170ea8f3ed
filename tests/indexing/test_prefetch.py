"""connect_app.indexing.prefetch: batches read in a background thread, errors raised in the caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from connect_app.indexing.prefetch import Prefetch


class Stream:
    """Items 0..n-1, counting how many were read; ``fail_at`` raises there instead."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at, self.read = n, fail_at, 0

    def __iter__(self) -> Iterator[int]:
        for i in range(self.n):
            if i == self.fail_at:
                raise ValueError(f"broken at {i}")
            self.read += 1
            yield i


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name == "history-prefetch"}


def _all(stream: Stream, size: int, paced: bool) -> list[list[int]]:
    got = []
    with Prefetch(iter(stream), size, paced=paced) as batches:
        for batch in batches:
            got.append(batch)
            batches.go_ahead()
    return got


@pytest.mark.parametrize("paced", [False, True])
def test_batches_come_in_order_with_a_short_last_one(paced: bool) -> None:
    assert _all(Stream(11), 4, paced) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert _all(Stream(8), 4, paced) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert _all(Stream(0), 4, paced) == []
    assert not _threads()


def test_paced_reads_the_next_batch_only_when_told() -> None:
    stream = Stream(100)
    with Prefetch(iter(stream), 10, paced=True) as batches:
        it = iter(batches)
        assert next(it) == list(range(10))
        # Not told to go on: the reader is idle, nothing more is read while the caller writes.
        assert stream.read == 10
        batches.go_ahead()
        assert next(it) == list(range(10, 20))
        assert stream.read == 20


def test_unpaced_reads_at_most_one_batch_ahead() -> None:
    stream = Stream(100)
    with Prefetch(iter(stream), 10) as batches:
        it = iter(batches)
        assert next(it) == list(range(10))
        second = next(it)  # ready (or being read) while the first was handled
        assert second == list(range(10, 20))
        assert stream.read <= 30


@pytest.mark.parametrize("paced", [False, True])
def test_a_stream_error_reaches_the_caller_after_the_batches_before_it(paced: bool) -> None:
    got = []
    with pytest.raises(ValueError, match="broken at 25"), Prefetch(iter(Stream(100, 25)), 10, paced=paced) as batches:
        for batch in batches:
            got.append(batch)
            batches.go_ahead()
    assert got == [list(range(10)), list(range(10, 20))]  # 20..24 never became a batch
    assert not _threads()


@pytest.mark.parametrize("paced", [False, True])
def test_a_caller_that_stops_early_stops_the_reader(paced: bool) -> None:
    stream = Stream(10_000)
    with pytest.raises(RuntimeError), Prefetch(iter(stream), 10, paced=paced) as batches:
        for _ in batches:
            batches.go_ahead()
            raise RuntimeError("the database write failed")
    assert not _threads()
    assert stream.read <= 30  # the reader stopped; the rest of the stream is never read
