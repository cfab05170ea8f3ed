"""Pull request sync: the daily full listing that backs up the ``updated_since`` cursor, and
what happens to pull requests a full listing no longer returns."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from connect_app.errors import RateLimited
from connect_app.hosts.base import PullRequestState
from connect_app.indexing import pull_requests, store
from connect_app.indexing.pull_requests import FULL_SCAN_KEY, PR_OVERLAP, full_scan_due, last_full_scan
from connect_app.models import PullRequestRecord, Repository, utcnow
from tests.indexing import sync_support
from tests.indexing.sync_support import T0, PullRequestGit, add, index, pr, pr_links
from tests.support.git_fixtures import ServedRepo
from tests.support.indexing_fixtures import IndexingEnv

history_template = sync_support.history_template  # fixtures
source = sync_support.source
pr_host = sync_support.pr_host


def stored(indexing: IndexingEnv, repo: Repository) -> dict[str, tuple[str, str]]:
    indexing.session.expire_all()
    rows = indexing.session.execute(
        select(PullRequestRecord.external_id, PullRequestRecord.title, PullRequestRecord.state).where(
            PullRequestRecord.repository_id == repo.id
        )
    )
    return {ext: (title, state) for ext, title, state in rows}


def age_full_scan(indexing: IndexingEnv, repo: Repository, by: timedelta) -> None:
    """Pretend the last full scan was ``by`` ago (time passing)."""
    repo = indexing.reload(repo)
    repo.walk_state = {**(repo.walk_state or {}), FULL_SCAN_KEY: (utcnow() - by).isoformat()}
    indexing.session.commit()


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """External ids of the pull request rows each run upserts."""
    ids: list[str] = []
    real = store.upsert

    def spy(session: Any, model: Any, rows: Any, **kw: Any) -> None:
        if model is PullRequestRecord:
            ids.extend(r["external_id"] for r in rows)
        real(session, model, rows, **kw)

    monkeypatch.setattr(store, "upsert", spy)
    return ids


def test_a_pull_request_incremental_listings_miss_is_found_by_the_daily_full_scan(
    indexing: IndexingEnv, source: ServedRepo, pr_host: PullRequestGit, written: list[str]
) -> None:
    indexing.add_projects("ABC", "DEF")
    repo = add(indexing, source)
    pr_host.prs = [pr(1, "ABC-1 one", minutes=1), pr(2, "ABC-2 two", minutes=2)]
    started = utcnow()
    assert index(repo).status == "done"
    assert pr_host.asked == [None]  # the first listing is a full one, and says so
    repo = indexing.reload(repo)
    first_scan = last_full_scan(repo)
    assert first_scan is not None and started <= first_scan <= utcnow()
    assert repo.pull_requests_synced_at == T0 + timedelta(minutes=2)

    # An old pull request is merged now, but the host lists by creation date: the incremental
    # listing stops before it (bitbucket_dc.list_pull_requests' documented blind spot).
    pr_host.prs = [
        pr(1, "ABC-1 one, edited", minutes=12),
        pr(2, "ABC-2 two", minutes=2),
        pr(3, "DEF-3 old, merged today", minutes=10, state=PullRequestState.MERGED),
    ]
    pr_host.hidden_when_incremental = {"3"}
    assert index(repo).status == "done"
    assert pr_host.asked[-1] == T0 + timedelta(minutes=2) - PR_OVERLAP
    assert "3" not in stored(indexing, repo)
    repo = indexing.reload(repo)
    assert repo.pull_requests_synced_at == T0 + timedelta(minutes=12)  # past the missed one
    assert last_full_scan(repo) == first_scan

    # The stored copy of #2 went stale without its update time moving (a host that did not bump it).
    indexing.session.execute(update(PullRequestRecord).where(PullRequestRecord.external_id == "2").values(title="x"))
    indexing.session.commit()
    age_full_scan(indexing, repo, timedelta(days=1, minutes=1))
    written.clear()
    changed_before = indexing.reload(repo).last_changed_at

    result = index(repo)

    assert result.status == "done" and pr_host.asked[-1] is None
    assert result.pull_requests_seen == 3
    assert stored(indexing, repo) == {
        "1": ("ABC-1 one, edited", "OPEN"),
        "2": ("ABC-2 two", "OPEN"),
        "3": ("DEF-3 old, merged today", "MERGED"),
    }
    assert ("3", "DEF-3", "title") in pr_links(indexing, repo) and result.links_created == 1
    assert sorted(written) == ["2", "3"]  # #1 was current: read, not rewritten
    repo = indexing.reload(repo)
    assert repo.pull_requests_synced_at == T0 + timedelta(minutes=12)  # the cursor rules are unchanged
    scanned = last_full_scan(repo)
    assert scanned is not None and first_scan is not None and scanned > first_scan
    assert repo.walk_state == {FULL_SCAN_KEY: scanned.isoformat()}
    assert changed_before is not None and repo.last_changed_at is not None and repo.last_changed_at > changed_before

    # Within the day: incremental again.
    assert index(repo).status == "done"
    assert pr_host.asked[-1] == T0 + timedelta(minutes=12) - PR_OVERLAP


def test_open_pull_requests_a_full_scan_no_longer_returns_are_kept(
    indexing: IndexingEnv, source: ServedRepo, pr_host: PullRequestGit, caplog: pytest.LogCaptureFixture
) -> None:
    indexing.add_projects("ABC")
    repo = add(indexing, source)
    pr_host.prs = [pr(1, "ABC-1 one", minutes=1), pr(2, "ABC-2 deleted on the host later", minutes=2)]
    index(repo)
    pr_host.prs = [pr(1, "ABC-1 one", minutes=1)]
    age_full_scan(indexing, repo, timedelta(days=2))

    with caplog.at_level(logging.INFO, logger=pull_requests.__name__):
        assert index(repo).status == "done"

    assert pr_host.asked[-1] is None
    assert stored(indexing, repo)["2"] == ("ABC-2 deleted on the host later", "OPEN")
    assert ("2", "ABC-2", "title") in pr_links(indexing, repo)
    assert "1 open pull requests were not in the full listing (kept as stored), e.g. 2" in caplog.text


def test_a_full_scan_cut_short_is_done_again_by_the_next_run(
    indexing: IndexingEnv, source: ServedRepo, pr_host: PullRequestGit
) -> None:
    repo = add(indexing, source)
    pr_host.prs = [pr(1, "ABC-1 one", minutes=1)]
    index(repo)
    age_full_scan(indexing, repo, timedelta(days=3))
    aged = last_full_scan(indexing.reload(repo))
    pr_host.prs = [pr(1, "ABC-1 one", minutes=1), pr(2, "ABC-2 two", minutes=5)]
    pr_host.fail = RateLimited("rate limited", reset_at=utcnow() + timedelta(minutes=3))

    assert index(repo).status == "rate_limited"
    repo = indexing.reload(repo)
    assert pr_host.asked[-1] is None
    assert last_full_scan(repo) == aged and repo.pull_requests_synced_at == T0 + timedelta(minutes=1)

    pr_host.fail = None
    assert index(repo).status == "done"
    assert pr_host.asked[-1] is None
    repo = indexing.reload(repo)
    last = last_full_scan(repo)
    assert last is not None and aged is not None and last > aged
    assert repo.pull_requests_synced_at == T0 + timedelta(minutes=5)


def test_the_interval_is_a_module_setting(
    indexing: IndexingEnv, source: ServedRepo, pr_host: PullRequestGit, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = add(indexing, source)
    pr_host.prs = [pr(1, "ABC-1 one", minutes=1)]
    index(repo)
    monkeypatch.setattr(pull_requests, "PR_FULL_SCAN_INTERVAL", timedelta(0))
    index(repo)
    assert pr_host.asked == [None, None]


def test_when_a_full_scan_is_due() -> None:
    now = utcnow()
    repo = Repository(pull_requests_synced_at=None, walk_state=None)
    assert full_scan_due(repo, now)  # never listed: the first listing is a full one
    repo.pull_requests_synced_at = now - timedelta(hours=1)
    assert full_scan_due(repo, now)  # listed before full scans were recorded
    for junk in ({FULL_SCAN_KEY: "yesterday"}, {FULL_SCAN_KEY: 12}, ["not", "a", "dict"]):
        repo.walk_state = junk  # type: ignore[assignment]
        assert full_scan_due(repo, now) and last_full_scan(repo) is None
    repo.walk_state = {FULL_SCAN_KEY: (now - timedelta(hours=23)).isoformat(), "done": 5}
    assert not full_scan_due(repo, now)
    assert full_scan_due(repo, now, timedelta(hours=12))
    repo.walk_state = {FULL_SCAN_KEY: (now - timedelta(hours=24)).isoformat()}
    assert full_scan_due(repo, now)
    repo.walk_state = {FULL_SCAN_KEY: (now + timedelta(days=30)).isoformat()}  # the clock went back
    assert full_scan_due(repo, now)
    repo.walk_state = {FULL_SCAN_KEY: "2024-05-01T12:00:00"}  # naive: read as UTC
    assert last_full_scan(repo) == T0
