"""Links for projects that became known after their content was indexed: ``relink_projects``
(what a project refresh calls) and ``catch_up`` (what an index run calls at its end)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import RateLimited
from connect_app.extensions import db
from connect_app.indexing import history, relink
from connect_app.indexing.links import KeyFilter
from connect_app.indexing.relink import catch_up, relink_projects
from connect_app.models import IssueLink, JiraProject, utcnow
from tests.indexing import sync_support
from tests.indexing.sync_support import Link, PullRequestGit, add, expected_links, index, pr, put
from tests.support.git_fixtures import ServedRepo
from tests.support.indexing_fixtures import IndexingEnv, make_tenant

history_template = sync_support.history_template  # fixtures
source = sync_support.source
pr_host = sync_support.pr_host


# --------------------------------------------------------------------------- helpers


def keys_of(links: Iterable[Link]) -> set[str]:
    return {key for _, _, key, _ in links}


def add_projects_elsewhere(tenant_id: int, *keys: str) -> None:
    """A project refresh committing new keys on its own connection (as a worker would)."""
    with db.engine.begin() as conn:
        for key in keys:
            conn.execute(
                JiraProject.__table__.insert().values(
                    tenant_id=tenant_id, key=key, project_id=key, name=key, refreshed_at=utcnow()
                )
            )


def refresh_relink_elsewhere(tenant_id: int, *keys: str) -> int:
    """What refresh_projects does after its commit, on its own session: sees committed rows only."""
    with Session(db.engine) as other:
        created = relink_projects(other, tenant_id, set(keys))
        other.commit()
    return created


# --------------------------------------------------------------------------- relink_projects


def test_new_project_links_equal_a_fresh_index(
    indexing: IndexingEnv, source: ServedRepo, pr_host: PullRequestGit
) -> None:
    indexing.add_projects("ABC")
    pr_host.prs = [
        pr(1, "DEF-1 a title", minutes=1, description="ABC-2 and DEF-3; DEF-1 again"),
        pr(2, "Tidy", minutes=2, source="feature/def-4-tidy"),
        pr(3, "ABC-5 only", minutes=3),
    ]
    old = add(indexing, source)
    assert index(old).status == "done"
    before = indexing.links(old)
    assert "ABC-1" in keys_of(before) and not any(k.startswith("DEF") for k in keys_of(before))

    indexing.add_projects("DEF")
    fresh = add(indexing, source)  # the same content, indexed with DEF known from the start
    assert index(fresh).status == "done"
    created = relink_projects(indexing.session, indexing.tenant_id, {"DEF"})
    indexing.session.commit()

    assert indexing.links(old) == indexing.links(fresh) == expected_links(indexing.session, old)
    assert created == len(indexing.links(old) - before) > 0
    assert {
        ("commit", "DEF-7"),
        ("commit", "DEF-8"),
        ("pull_request", "DEF-1"),
        ("pull_request", "DEF-3"),
        ("pull_request", "DEF-4"),
    } <= {(kind, key) for kind, _, key, _ in indexing.links(old)}
    # Idempotent: a second pass (or a concurrent one) adds nothing.
    assert relink_projects(indexing.session, indexing.tenant_id, {"DEF"}) == 0


def test_relink_stays_in_its_tenant_and_repository(indexing: IndexingEnv) -> None:
    s = indexing.session
    content: dict[str, Any] = {
        "commits": [("a1", "DEF-1 one"), ("a2", "ABC-2 two")],
        "branches": ["feature/def-3"],
        "prs": [("9", "DEF-4", "", "x")],
    }
    indexing.add_projects("ABC")
    mine = indexing.add_repository("https://git.example.com/a.git")
    mine_too = indexing.add_repository("https://git.example.com/b.git")
    other_tenant = make_tenant(indexing.app)
    elsewhere = IndexingEnv(indexing.app, indexing.settings, other_tenant)
    elsewhere.add_projects("ABC")
    theirs = elsewhere.add_repository("https://git.example.com/a.git")
    for repo in (mine, mine_too, theirs):
        put(s, repo, **content)
    indexing.add_projects("DEF")

    assert relink_projects(s, indexing.tenant_id, {"DEF"}, repository_id=mine.id) == 3
    s.commit()
    assert keys_of(indexing.links(mine)) == {"DEF-1", "ABC-2", "DEF-3", "DEF-4"}
    assert keys_of(indexing.links(mine_too)) == {"ABC-2"}
    assert relink_projects(s, indexing.tenant_id, {"DEF"}) == 3  # the whole tenant: the other repository
    s.commit()
    assert keys_of(indexing.links(mine_too)) == {"DEF-1", "ABC-2", "DEF-3", "DEF-4"}
    # The other tenant mentions DEF too, but DEF is not one of its projects: untouched.
    assert keys_of(indexing.links(theirs)) == {"ABC-2"}
    other_rows = s.scalars(select(IssueLink.tenant_id).where(IssueLink.repository_id == theirs.id)).all()
    assert set(other_rows) == {other_tenant}


def test_key_forms_follow_the_extractor(indexing: IndexingEnv) -> None:
    s = indexing.session
    indexing.add_projects("ABC")
    repo = indexing.add_repository("https://git.example.com/a.git")
    put(
        s,
        repo,
        commits=[
            ("c1", "MY_PROJ-1 underscore key"),
            ("c2", "MYXPROJ-2 is another project ('_' is no wildcard)"),
            ("c3", "fix_MY_PROJ-3 after an underscore"),
            ("c4", "my_proj-4 lower case in text is not a key"),
            ("c5", "PROJ-MY_PROJ-5 after a dash is not a key"),
            ("c6", "A_MY_PROJ-6 ambiguous: both readings are candidates"),
        ],
        branches=["bugfix-my_proj-7", "MY_PROJ-8", "main"],
        prs=[("1", "x", "MY_PROJ-9 in the description", "feature/my_proj-10")],
    )
    indexing.add_projects("MY_PROJ")
    # Not project keys: ignored without a scan.
    assert relink_projects(s, indexing.tenant_id, {"", "abc", "%", "A-B", "1X"}) == 0
    relink_projects(s, indexing.tenant_id, {"MY_PROJ"})
    s.commit()
    assert indexing.links(repo) == expected_links(s, repo)
    assert {(ref, key, src) for _, ref, key, src in indexing.links(repo)} == {
        ("c1", "MY_PROJ-1", "message"),
        ("c3", "MY_PROJ-3", "message"),
        ("c6", "MY_PROJ-6", "message"),
        ("bugfix-my_proj-7", "MY_PROJ-7", "branch_name"),
        ("MY_PROJ-8", "MY_PROJ-8", "branch_name"),
        ("1", "MY_PROJ-9", "description"),
        ("1", "MY_PROJ-10", "branch_name"),
    }


def test_relink_of_twenty_thousand_commits_takes_seconds(
    indexing: IndexingEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relink, "PAGE_SIZE", 300)  # several keyset pages per repository
    s = indexing.session
    indexing.add_projects("ABC")
    repos = [indexing.add_repository(f"https://git.example.com/r{i}.git") for i in range(2)]
    for n, repo in enumerate(repos):
        commits = [
            (f"{n}-{i:06d}", f"DEF-{i + 1} change {i}" if i % 10 == 0 else f"ABC-{i + 1} change {i}\n\nbody {i}")
            for i in range(10_000)
        ]
        put(s, repo, commits=commits, branches=[f"feature/def-{i}" for i in range(1, 51)])
    indexing.add_projects("DEF", "GHI")

    started = time.perf_counter()
    created = relink_projects(s, indexing.tenant_id, {"DEF", "GHI"})
    s.commit()
    took = time.perf_counter() - started

    assert created == 2 * (1000 + 50)
    for repo in repos:
        assert indexing.links(repo) == expected_links(s, repo)
    assert took < 15, f"relink of 20,000 commits took {took:.1f} s"


# --------------------------------------------------------------------------- catch_up (end of a run)


def test_catch_up_does_nothing_when_the_projects_did_not_change(indexing: IndexingEnv) -> None:
    repo = indexing.add_repository("https://git.example.com/a.git")
    s = indexing.session
    assert catch_up(s, indexing.tenant_id, repo.id, KeyFilter(None)) == 0
    indexing.add_projects("ABC")
    assert catch_up(s, indexing.tenant_id, repo.id, KeyFilter(frozenset({"ABC"}))) == 0
    # Known when the run started, none now (Jira said the site has none): every key is linked
    # from now on, and nothing is pruned.
    assert catch_up(s, indexing.tenant_id + 999, repo.id, KeyFilter(frozenset({"ABC"}))) == 0


@pytest.fixture
def refresh_mid_walk(indexing: IndexingEnv, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Before the run writes its first batch of commits, a project refresh commits the keys put
    in the returned list and relinks on its own connection (it cannot see that batch yet)."""
    keys: list[str] = []
    real = history.write_commits

    def racing(*args: Any, **kwargs: Any) -> tuple[int, int, int]:
        if keys:
            add_projects_elsewhere(indexing.tenant_id, *keys)
            refresh_relink_elsewhere(indexing.tenant_id, *keys)
            keys.clear()
        return real(*args, **kwargs)

    monkeypatch.setattr(history, "write_commits", racing)
    return keys


def test_a_project_added_while_a_run_writes_is_linked_at_its_end(
    indexing: IndexingEnv, source: ServedRepo, refresh_mid_walk: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    indexing.add_projects("ABC")
    repo = add(indexing, source)
    refresh_mid_walk.append("DEF")

    result = index(repo)

    assert result.status == "done" and not refresh_mid_walk
    assert ("commit", "DEF-7") in {(kind, key) for kind, _, key, _ in indexing.links(repo)}
    assert indexing.links(repo) == expected_links(indexing.session, repo)
    monkeypatch.undo()
    fresh = add(indexing, source)
    index(fresh)
    assert indexing.links(repo) == indexing.links(fresh)


def test_a_run_that_stops_still_catches_up(
    indexing: IndexingEnv, source: ServedRepo, refresh_mid_walk: list[str], pr_host: PullRequestGit
) -> None:
    indexing.add_projects("ABC")
    repo = add(indexing, source)
    pr_host.prs = [pr(1, "ABC-1 one", minutes=1), pr(2, "ABC-2 two", minutes=2)]
    pr_host.fail = RateLimited("rate limited", reset_at=None)
    refresh_mid_walk.append("DEF")

    result = index(repo)

    assert result.status == "rate_limited"
    assert {"DEF-7", "DEF-8"} <= keys_of(indexing.links(repo))
    assert indexing.links(repo) == expected_links(indexing.session, repo)
    assert indexing.runs(repo)[-1].links_created == result.links_created == len(indexing.links(repo))


def test_a_run_that_linked_every_key_is_pruned_when_projects_arrive(
    indexing: IndexingEnv, source: ServedRepo, refresh_mid_walk: list[str]
) -> None:
    repo = add(indexing, source)  # no projects known: every valid key is linked
    other = indexing.add_repository("https://git.example.com/other.git")
    put(indexing.session, other, commits=[("o1", "XYZ-1 UTF-8")])
    refresh_mid_walk.extend(["ABC", "DEF"])

    assert index(repo).status == "done"

    assert keys_of(indexing.links(repo)) and not any(
        k.startswith(("XYZ", "UTF")) for k in keys_of(indexing.links(repo))
    )
    assert indexing.links(repo) == expected_links(indexing.session, repo)
    # Only the run's own repository: the tenant-wide prune is the first refresh's job.
    assert keys_of(indexing.links(other)) == {"XYZ-1", "UTF-8"}
