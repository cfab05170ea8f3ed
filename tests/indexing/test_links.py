"""Issue links: which keys become links, from where, and how a target's links are replaced."""

from __future__ import annotations

from datetime import UTC, datetime

from connect_app.indexing.links import (
    KeyFilter,
    LinkBuilder,
    insert_links,
    project_filter,
    prune_unknown_projects,
    replace_links,
)
from connect_app.models import LinkKind
from tests.support.indexing_fixtures import IndexingEnv

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def builder(projects: set[str] | None = None) -> LinkBuilder:
    return LinkBuilder(7, 11, KeyFilter(frozenset(projects) if projects is not None else None), NOW)


def keys(rows: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(r["issue_key"], r["source"]) for r in rows]


def test_commit_links_only_known_projects() -> None:
    rows = builder({"ABC"}).commit("abc", "ABC-1 and ABC-1 again, XYZ-2, UTF-8, abc-3")
    assert keys(rows) == [("ABC-1", "message")]
    assert rows[0] == {
        "tenant_id": 7,
        "repository_id": 11,
        "issue_key": "ABC-1",
        "project_key": "ABC",
        "kind": "commit",
        "ref": "abc",
        "source": "message",
        "created_at": NOW,
    }


def test_unknown_projects_link_every_valid_key() -> None:
    assert keys(builder(None).commit("s", "ABC-1 XYZ-2 UTF-8")) == [
        ("ABC-1", "message"),
        ("XYZ-2", "message"),
        ("UTF-8", "message"),
    ]


def test_branch_names_match_any_case() -> None:
    assert keys(builder({"ABC"}).branch("feature/abc-12-fix")) == [("ABC-12", "branch_name")]
    assert builder({"ABC"}).branch("main") == []


def test_pull_request_key_comes_from_the_first_place_it_appears() -> None:
    rows = builder({"ABC", "DEF"}).pull_request("42", "DEF-2 title", "ABC-1, DEF-2", "feature/abc-1-and-def-9")
    assert keys(rows) == [("DEF-2", "title"), ("ABC-1", "description"), ("DEF-9", "branch_name")]
    assert {r["kind"] for r in rows} == {"pull_request"} and {r["ref"] for r in rows} == {"42"}


def test_project_filter_reads_the_tenants_projects(indexing: IndexingEnv) -> None:
    assert project_filter(indexing.session, indexing.tenant_id).projects is None
    indexing.add_projects("ABC", "DEF")
    assert project_filter(indexing.session, indexing.tenant_id).projects == {"ABC", "DEF"}
    assert project_filter(indexing.session, indexing.tenant_id + 1000).projects is None


def test_replace_links_adds_removes_and_updates_the_source(indexing: IndexingEnv) -> None:
    repo = indexing.add_repository("https://git.example.com/a.git")
    links = LinkBuilder(indexing.tenant_id, repo.id, KeyFilter(None), NOW)
    s = indexing.session
    assert replace_links(s, repo.id, LinkKind.PULL_REQUEST, ["1"], links.pull_request("1", "ABC-1", "ABC-2", "x")) == 2
    assert replace_links(s, repo.id, LinkKind.PULL_REQUEST, ["1"], links.pull_request("1", "ABC-1", "ABC-2", "x")) == 0
    # ABC-1 dropped from the title, ABC-2 moved from description to title, ABC-3 new.
    new = links.pull_request("1", "ABC-2 ABC-3", "", "x")
    assert replace_links(s, repo.id, LinkKind.PULL_REQUEST, ["1"], new) == 1
    s.commit()
    assert {(k, r, key, src) for k, r, key, src in indexing.links(repo)} == {
        ("pull_request", "1", "ABC-2", "title"),
        ("pull_request", "1", "ABC-3", "title"),
    }


def test_prune_unknown_projects_once_the_projects_are_known(indexing: IndexingEnv) -> None:
    repo = indexing.add_repository("https://git.example.com/a.git")
    links = LinkBuilder(indexing.tenant_id, repo.id, KeyFilter(None), NOW)
    assert insert_links(indexing.session, links.commit("c1", "ABC-1 UTF-8 XYZ-2")) == 3
    indexing.session.commit()
    assert prune_unknown_projects(indexing.session, indexing.tenant_id) == 0  # projects unknown: keep all
    indexing.add_projects("ABC")
    assert prune_unknown_projects(indexing.session, indexing.tenant_id) == 2
    indexing.session.commit()
    assert indexing.links(repo) == {("commit", "c1", "ABC-1", "message")}
