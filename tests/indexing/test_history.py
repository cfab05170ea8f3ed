"""The history walk's cursor in ``walk_state`` next to other cursors kept there (the pull
request full-scan time), and the helpers that read it."""

from __future__ import annotations

import logging

import pytest

from connect_app.indexing.history import pending_walk, take_chunks, walk_extras
from connect_app.models import RepositoryStatus
from tests.indexing import sync_support
from tests.indexing.sync_support import add, crash_after, index
from tests.support.git_fixtures import ServedRepo
from tests.support.indexing_fixtures import IndexingEnv, rev_list_all

small_batches = sync_support.small_batches  # fixtures
bulk_source = sync_support.bulk_source
history_template = sync_support.history_template
source = sync_support.source

STAMP = {"pr_full_scan_at": "2024-05-01T12:00:00+00:00"}


def test_a_crashed_walk_keeps_the_other_cursors_and_resumes(
    indexing: IndexingEnv, bulk_source: ServedRepo, small_batches: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = add(indexing, bulk_source)
    repo.walk_state = dict(STAMP)
    indexing.session.commit()
    crash_after(monkeypatch, 2)
    with pytest.raises(RuntimeError):
        index(repo)

    state = indexing.reload(repo).walk_state
    assert state is not None and state["done"] == 2 * small_batches
    assert walk_extras(state) == STAMP and pending_walk(state) is not None
    assert indexing.reload(repo).status == RepositoryStatus.FAILED.value

    monkeypatch.undo()
    assert index(repo).status == "done"
    repo = indexing.reload(repo)
    assert set(indexing.commit_shas(repo)) == rev_list_all(bulk_source.path)
    indexing.assert_no_duplicates(repo)
    assert repo.walk_state == STAMP  # the walk's keys gone, the other cursor kept


def test_an_unreadable_walk_is_dropped_but_not_the_other_cursors(
    indexing: IndexingEnv, source: ServedRepo, caplog: pytest.LogCaptureFixture
) -> None:
    repo = add(indexing, source)
    repo.walk_state = {**STAMP, "revs": "not a list", "done": 3}
    indexing.session.commit()
    with caplog.at_level(logging.WARNING):
        assert index(repo).status == "done"
    assert "unreadable walk state dropped" in caplog.text
    repo = indexing.reload(repo)
    assert repo.walk_state == STAMP
    assert set(indexing.commit_shas(repo)) == rev_list_all(source.path)


def test_only_other_cursors_is_no_walk(
    indexing: IndexingEnv, source: ServedRepo, caplog: pytest.LogCaptureFixture
) -> None:
    repo = add(indexing, source)
    repo.walk_state = dict(STAMP)
    indexing.session.commit()
    with caplog.at_level(logging.WARNING):
        assert index(repo).status == "done"
    assert "walk state" not in caplog.text
    assert indexing.reload(repo).walk_state == STAMP


def test_walk_state_readers() -> None:
    walk = {"revs": ["a"], "exclude": [], "done": 4}
    assert pending_walk(walk) == (["a"], [], 4)
    assert pending_walk({**walk, **STAMP}) == (["a"], [], 4)
    assert pending_walk(STAMP) is None and pending_walk(None) is None
    assert pending_walk({**walk, "done": -1}) is None and pending_walk({**walk, "revs": [1]}) is None
    assert walk_extras({**walk, **STAMP}) == STAMP
    assert walk_extras(walk) == {} and walk_extras(None) == {} and walk_extras(["x"]) == {}


def test_take_chunks_reads_only_what_it_takes() -> None:
    items = iter(range(10))
    assert list(take_chunks(items, 5, 2)) == [[0, 1], [2, 3], [4]]
    assert next(items) == 5
    assert list(take_chunks(iter(range(3)), 5, 2)) == [[0, 1], [2]]
