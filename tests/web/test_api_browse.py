"""``/api/browse/...`` against a real repository (with tags) served over HTTP on loopback and
indexed by the real indexer: the repository list, refs, commits with their issue links,
compare (its issue set equals the keys of ``git log A..B``), bad input, tenants, and project
visibility decided by Jira's ``permissions/check``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from connect_app.config import Settings
from connect_app.indexing import mirror, sync
from connect_app.indexing.git import GitRunner
from connect_app.indexing.issue_keys import keys_in_text
from connect_app.models import JiraProject, Repository, RepositoryStatus, Trigger
from connect_app.services.repository_history import sorted_keys
from tests.support.connect import Jira, JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import GitHttpServer, make_bulk_repo, run_git
from tests.support.indexing_fixtures import IndexingEnv
from tests.support.jira_stub_browse import (  # noqa: F401 - fixtures
    BrowseJiraStub,
    browse_jira_server_fixture,
    browse_jira_stub_fixture,
    browse_site_fixture,
)
from tests.web.development_data import DevData, tenant_id_of

BASE = "/api/browse/repositories"


def get(jira: Jira, site: JiraSite, path: str, account_id: str | None = "acct-user-1", **query: Any) -> TestResponse:
    url = path + ("?" + urlencode(query) if query else "")
    return jira.api(site, "GET", url, account_id=account_id)


def ok(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def error(response: TestResponse, status: int) -> dict[str, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, str] = response.get_json()["error"]
    return body


@pytest.fixture
def indexed(app: Flask, settings: Settings, browse_site: JiraSite, git_repo: ServedRepo) -> Iterator[int]:
    with app.app_context():
        env = IndexingEnv(app, settings, tenant_id_of(browse_site))
        repo = env.add_repository(git_repo.url, password=git_repo.server.password, web_url="https://github.com/a/w")
        repo.provider = "github"
        env.session.commit()
        assert sync.run_index(repo.id, Trigger.INITIAL).status == "done"
        yield repo.id


def git_log_keys(repo: ServedRepo, spec: str) -> list[str]:
    messages = run_git("log", "-z", "--format=%B", spec, cwd=repo.path).split("\0")
    return sorted_keys(k for m in messages for k in keys_in_text(m))


def test_repositories_refs_and_commits(jira: Jira, browse_site: JiraSite, indexed: int, git_repo: ServedRepo) -> None:
    listing = ok(get(jira, browse_site, BASE))
    assert listing["total"] == 1 and listing["needs_token"] == [] and listing["next_cursor"] is None
    assert listing["tokens_url"].endswith("/plugins/servlet/ac/git-connect-for-jira/my-git-tokens")
    (repo,) = listing["repositories"]
    newest = run_git("rev-parse", "release/1.x", cwd=git_repo.path).strip()
    assert repo["id"] == indexed and repo["last_commit"]["sha"] == newest
    assert repo["last_commit"]["branch"] == "release/1.x"
    assert repo["last_linked_issue"]["keys"] == ["DEF-7"]
    assert repo["last_linked_issue"]["issues"][0]["url"] == f"{browse_site.base_url}/browse/DEF-7"

    refs = ok(get(jira, browse_site, f"{BASE}/{indexed}/refs"))
    assert [b["name"] for b in refs["branches"]] == ["main", "feature/ABC-12-fix", "release/1.x"]
    assert [t["name"] for t in refs["tags"]] == ["v0.1", "v1.0"]

    page = ok(get(jira, browse_site, f"{BASE}/{indexed}/commits"))  # the default branch
    assert page["ref"]["name"] == "main" and page["ref"]["kind"] == "branch"
    expected = run_git("log", "--format=%H", "main", cwd=git_repo.path).split()
    assert [c["sha"] for c in page["commits"]] == expected
    fix = next(c for c in page["commits"] if c["message"] == "ABC-12 start the fix")
    assert fix["issue_keys"] == [{"key": "ABC-12", "url": f"{browse_site.base_url}/browse/ABC-12"}]
    assert fix["url"] == f"https://github.com/a/w/commit/{fix['sha']}" and fix["indexed"] is True

    linked = ok(get(jira, browse_site, f"{BASE}/{indexed}/commits", filter="linked"))["commits"]
    unlinked = ok(get(jira, browse_site, f"{BASE}/{indexed}/commits", filter="unlinked"))["commits"]
    assert all(c["issue_keys"] for c in linked) and not any(c["issue_keys"] for c in unlinked)
    assert sorted(c["sha"] for c in linked + unlinked) == sorted(expected)
    assert "Unrelated change on main" in [c["message"] for c in unlinked]

    # pages of one commit, following the cursor, give the same list
    seen, cursor = [], None
    while True:
        step = ok(
            get(
                jira,
                browse_site,
                f"{BASE}/{indexed}/commits",
                ref="v1.0",
                limit=1,
                **({"cursor": cursor} if cursor else {}),
            )
        )
        seen += [c["sha"] for c in step["commits"]]
        cursor = step["next_cursor"]
        if not cursor:
            break
    assert seen == run_git("log", "--format=%H", "v1.0", cwd=git_repo.path).split()


COMPARED = [("v0.1", "v1.0"), ("refs/tags/v0.1", "release/1.x"), ("main", "v0.1"), ("v0.1", "main")]


def test_compare_issue_set_equals_git_log_keys(
    jira: Jira, browse_site: JiraSite, indexed: int, git_repo: ServedRepo
) -> None:
    for a, b in COMPARED:
        check_compare(jira, browse_site, indexed, git_repo, a, b)


def check_compare(jira: Jira, browse_site: JiraSite, indexed: int, git_repo: ServedRepo, a: str, b: str) -> None:
    body = ok(get(jira, browse_site, f"{BASE}/{indexed}/compare", **{"from": a, "to": b}))
    spec = f"{a}..{b}"
    keys = git_log_keys(git_repo, spec)
    assert [i["key"] for i in body["issues"]] == keys
    shas = run_git("log", "--format=%H", spec, cwd=git_repo.path).split()
    assert body["total_commits"] == len(shas) and [c["sha"] for c in body["commits"]] == shas
    files = run_git("diff", "--name-only", f"{a}...{b}", cwd=git_repo.path).split() if shas else []
    assert body["files_changed"] == len(files)
    if keys:
        jql = f"key in ({', '.join(keys)})"
        assert body["jira_links"] == [
            {"url": f"{browse_site.base_url}/issues/?jql={quote(jql, safe='')}", "jql": jql, "count": len(keys)}
        ]
    else:
        assert body["jira_links"] == []


def test_compare_pages_with_a_cursor(jira: Jira, browse_site: JiraSite, indexed: int, git_repo: ServedRepo) -> None:
    query = {"from": "v0.1", "to": "release/1.x", "limit": "1"}
    first = ok(get(jira, browse_site, f"{BASE}/{indexed}/compare", **query))
    shas = [c["sha"] for c in first["commits"]]
    cursor = first["next_cursor"]
    while cursor:
        page = ok(get(jira, browse_site, f"{BASE}/{indexed}/compare", **query, cursor=cursor))
        assert page["total_commits"] == first["total_commits"] and page["issues"] == first["issues"]
        shas += [c["sha"] for c in page["commits"]]
        cursor = page["next_cursor"]
    assert shas == run_git("log", "--format=%H", "v0.1..release/1.x", cwd=git_repo.path).split()
    other = ok(get(jira, browse_site, f"{BASE}/{indexed}/compare", **{**query, "to": "main"}))
    assert other["next_cursor"] is not None
    tampered = get(jira, browse_site, f"{BASE}/{indexed}/compare", **query, cursor=other["next_cursor"])
    assert error(tampered, 400)["code"] == "bad_cursor"


BAD_COMPARES: list[tuple[dict[str, str], int, str]] = [
    ({"from": "--output=/tmp/gcj-x", "to": "main"}, 400, "bad_ref"),
    ({"from": "-n1", "to": "main"}, 400, "bad_ref"),
    ({"from": "v0.1", "to": "main..release/1.x"}, 400, "bad_ref"),
    ({"from": "v0.1", "to": "main~2"}, 400, "bad_ref"),
    ({"from": "v0.1", "to": "no-such-branch"}, 404, "unknown_ref"),
    ({"from": "v0.1"}, 400, "bad_ref"),
    ({"from": "v0.1", "to": "main", "limit": "0"}, 400, "bad_limit"),
]


def test_bad_compare_input_is_explained(jira: Jira, browse_site: JiraSite, indexed: int) -> None:
    for query, status, code in BAD_COMPARES:
        body = error(get(jira, browse_site, f"{BASE}/{indexed}/compare", **query), status)
        assert body["code"] == code and body["message"], query
    assert not Path("/tmp/gcj-x").exists()


def test_bad_commit_filters_and_refs(jira: Jira, browse_site: JiraSite, indexed: int) -> None:
    assert error(get(jira, browse_site, f"{BASE}/{indexed}/commits", filter="some"), 400)["code"] == "bad_filter"
    assert error(get(jira, browse_site, f"{BASE}/{indexed}/commits", ref="--all"), 400)["code"] == "bad_ref"
    missing = error(get(jira, browse_site, f"{BASE}/{indexed}/commits", ref="gone"), 404)
    assert missing["code"] == "unknown_ref" and "gone" in missing["message"]


def test_other_tenants_and_unknown_repositories_are_404(
    app: Flask, jira: Jira, browse_site: JiraSite, other_site: JiraSite, indexed: int
) -> None:
    for path in ("refs", "commits", "compare?from=v0.1&to=main"):
        body = error(jira.api(other_site, "GET", f"{BASE}/{indexed}/{path}"), 404)
        assert body["code"] == "repository_not_found"
    assert ok(jira.api(other_site, "GET", BASE))["repositories"] == []
    assert error(get(jira, browse_site, f"{BASE}/987654/refs"), 404)["code"] == "repository_not_found"


def test_a_repository_without_a_mirror_says_not_indexed(app: Flask, jira: Jira, browse_site: JiraSite) -> None:
    with app.app_context():
        data = DevData(tenant_id_of(browse_site))
        repo = data.repository(data.integration("acme"), "fresh", indexed=False, status=RepositoryStatus.NEW.value)
        repo_id = repo.id
    body = error(get(jira, browse_site, f"{BASE}/{repo_id}/commits"), 404)
    assert body["code"] == "not_indexed" and "not been indexed yet" in body["message"]
    listed = ok(get(jira, browse_site, BASE))["repositories"]
    assert listed[0]["indexing_first_time"] is True and listed[0]["last_commit"] is None


def test_an_indexed_repository_whose_mirror_is_elsewhere_says_so(
    app: Flask, jira: Jira, browse_site: JiraSite
) -> None:
    # Indexed by a worker on another machine: this web server has no mirror to read.
    with app.app_context():
        data = DevData(tenant_id_of(browse_site))
        repo_id = data.repository(data.integration("acme"), "elsewhere").id
    for path in ("commits", "compare?from=main&to=main"):
        body = error(get(jira, browse_site, f"{BASE}/{repo_id}/{path}"), 503)
        assert body["code"] == "history_unavailable" and "MIRRORS_PATH" in body["message"]


def test_needs_token_is_listed(app: Flask, jira: Jira, browse_site: JiraSite) -> None:
    with app.app_context():
        data = DevData(tenant_id_of(browse_site))
        repo = data.repository(data.integration("enforced", enforce_permissions=True), "secret")
        pat = data.integration("pat-required")
        pat.require_user_pat = True
        data.session.commit()
        data.repository(pat, "open")
        repo_id = repo.id
    body = ok(get(jira, browse_site, BASE))
    assert body["needs_token"][0]["name"] == "enforced"
    assert [(r["name"], r["token_needed"]) for r in body["repositories"]] == [("pat-required/open", True)]
    assert error(get(jira, browse_site, f"{BASE}/{repo_id}/refs"), 403)["code"] == "token_required"


def test_project_restricted_repositories_follow_jira_browse_permission(
    app: Flask, jira: Jira, browse_site: JiraSite, browse_jira_stub: BrowseJiraStub
) -> None:
    with app.app_context():
        data = DevData(tenant_id_of(browse_site))
        acme = data.integration("acme")
        data.repository(acme, "everyone")
        data.repository(acme, "abc-team", project_keys=("ABC",))
        data.repository(acme, "unknown-project", project_keys=("NOPE",))
        data.session.add(JiraProject(tenant_id=data.tenant_id, key="ABC", project_id="10001", name="ABC"))
        data.session.commit()
    browse_jira_stub.browse[(browse_site.client_key, "acct-allowed")] = {10001}

    def shown(account: str) -> list[str]:
        return [r["name"] for r in ok(get(jira, browse_site, BASE, account_id=account))["repositories"]]

    assert shown("acct-allowed") == ["acme/abc-team", "acme/everyone"]
    assert shown("acct-other") == ["acme/everyone"]
    checks = browse_jira_stub.project_checks()
    assert checks == [
        {
            "accountId": "acct-allowed",
            "projectPermissions": [{"permissions": ["BROWSE_PROJECTS"], "projects": [10001]}],
        },
        {"accountId": "acct-other", "projectPermissions": [{"permissions": ["BROWSE_PROJECTS"], "projects": [10001]}]},
    ]
    assert shown("acct-allowed") == ["acme/abc-team", "acme/everyone"]  # cached: no new call
    assert len(browse_jira_stub.project_checks()) == 2


@pytest.mark.slow
def test_a_range_over_ten_thousand_commits_is_paged(
    app: Flask,
    settings: Settings,
    jira: Jira,
    browse_site: JiraSite,
    open_git_server: GitHttpServer,
    git_repo_name: str,
) -> None:
    source = open_git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, 10_120, files=32))
    root = run_git("rev-list", "--max-parents=0", "main", cwd=source).split()[0]
    with app.app_context():
        env = IndexingEnv(app, settings, tenant_id_of(browse_site))
        repo = env.add_repository(open_git_server.url_for(git_repo_name))
        path = mirror.mirror_path(env.session.get(Repository, repo.id))
        shutil.rmtree(path, ignore_errors=True)  # a former test's repository with the same id (SQLite)
        GitRunner(allow_private=True).clone_mirror(open_git_server.url_for(git_repo_name), path)
        (path / mirror.MARKER).write_text(f"{repo.integration_id}:{repo.external_id}\n")
        repo_id = repo.id
    query = {"from": root, "to": "main", "limit": "100"}
    first = ok(get(jira, browse_site, f"{BASE}/{repo_id}/compare", **query))
    assert first["total_commits"] == 10_119 and len(first["commits"]) == 100
    assert len(first["jira_links"]) == len(first["issues"]) // 250 + (1 if len(first["issues"]) % 250 else 0)
    shas, cursor = [c["sha"] for c in first["commits"]], first["next_cursor"]
    for _ in range(3):  # (every page of such a range: tests/indexing/test_git_compare.py)
        page = ok(get(jira, browse_site, f"{BASE}/{repo_id}/compare", **query, cursor=cursor))
        assert page["total_commits"] == 10_119
        shas += [c["sha"] for c in page["commits"]]
        cursor = page["next_cursor"]
    assert shas == run_git("log", "--format=%H", "--max-count=400", f"{root}..main", cwd=source).split()
    assert cursor is not None
