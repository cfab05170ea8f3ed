"""``GET /api/issues/{key}/development``: the contract, pagination, cursor tampering, and the
visibility rules (tenants, project association, disabled repositories, enforced permissions),
plus one run against a real repository indexed from the loopback git server."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from connect_app.config import Settings
from connect_app.indexing import sync
from connect_app.models import IntegrationStatus, RepositoryStatus, Trigger
from connect_app.services import development
from tests.support.connect import Jira, JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import run_git
from tests.support.indexing_fixtures import IndexingEnv
from tests.web.development_data import T0, DevData, fake_sha, tenant_id_of

URL = "/api/issues/{}/development"


def get(
    jira: Jira, site: JiraSite, key: str = "ABC-1", account_id: str | None = "acct-user-1", **query: Any
) -> TestResponse:
    url = URL.format(key)
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return jira.api(site, "GET", url, account_id=account_id)


def ok(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def error_code(response: TestResponse, status: int = 400) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    code: str = response.get_json()["error"]["code"]
    return code


@pytest.fixture
def data(app: Flask, installed_site: JiraSite) -> Iterator[DevData]:
    with app.app_context():
        yield DevData(tenant_id_of(installed_site))


# --------------------------------------------------------------------------- auth and input


def test_needs_a_context_token(client: Any, installed_site: JiraSite) -> None:
    assert error_code(client.get(URL.format("ABC-1")), 401) == "jwt_missing"
    module_token = installed_site.token("GET", URL.format("ABC-1"))  # a module URL's qsh, not context-qsh
    response = client.get(URL.format("ABC-1"), headers={"Authorization": f"JWT {module_token}"})
    assert response.status_code == 401


@pytest.mark.parametrize("key", ["ABC", "ABC-0", "1ABC-1", "ABC-1x", "A-1", "ABC-1%20", "%3Cscript%3E-1"])
def test_bad_issue_keys_are_400(jira: Jira, installed_site: JiraSite, key: str) -> None:
    assert error_code(get(jira, installed_site, key)) == "bad_issue_key"


def test_bad_limits_are_400(jira: Jira, installed_site: JiraSite) -> None:
    for limit in ("0", "-5", "ten", "2.5"):
        assert error_code(get(jira, installed_site, limit=limit)) == "bad_limit"


def test_empty_issue(jira: Jira, installed_site: JiraSite) -> None:
    body = ok(get(jira, installed_site, "abc-77"))  # any case: keys are upper-cased
    assert body["issue_key"] == "ABC-77"
    assert body["commits"] == body["branches"] == body["pull_requests"] == body["tags"] == []
    assert body["counts"] == {"commits": 0, "branches": 0, "pull_requests": 0}
    assert body["next_cursor"] is None and body["needs_token"] == []


# --------------------------------------------------------------------------- contract


def test_contract_fields(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    repo = data.repository(data.integration("acme"), "widgets")
    head = data.commit(repo, "ABC-1 make it work\n\nDetails", author=("Ann", "ann@example.com"))
    data.tag(repo, "v2.0", head.sha)
    data.branch(repo, "feature/ABC-1-work", head=head.sha)
    data.pull_request(repo, "ABC-1 make it work", number="7", source="feature/ABC-1-work", author="ann")
    data.commit(repo, "ABC-2 not this issue")

    body = ok(get(jira, installed_site))
    (commit,) = body["commits"]
    assert {"sha", "message", "author", "time", "url", "repository"} <= set(commit)
    assert commit["sha"] == head.sha and commit["author"] == {"name": "Ann", "email": "ann@example.com"}
    assert commit["repository"] == {"id": repo.id, "name": "acme/widgets"} and commit["tags"] == ["v2.0"]
    (branch,) = body["branches"]
    assert {"name", "url", "repository", "last_commit"} <= set(branch)
    assert branch["last_commit"]["sha"] == head.sha and branch["pull_request"]["id"] == "7"
    (pr,) = body["pull_requests"]
    assert {"id", "title", "state", "source", "target", "author", "url", "updated", "repository"} <= set(pr)
    assert (pr["id"], pr["state"], pr["source"], pr["target"], pr["author"]) == (
        "7",
        "OPEN",
        "feature/ABC-1-work",
        "main",
        "ann",
    )
    assert body["tags"][0]["name"] == "v2.0"
    assert body["counts"] == {"commits": 1, "branches": 1, "pull_requests": 1}
    assert body["next_cursor"] is None
    assert commit["branch"] is None and branch["ahead_behind"] is None  # not recorded / not counted


def test_ahead_behind_shows_only_when_counted_at_the_branch_head(
    jira: Jira, installed_site: JiraSite, data: DevData
) -> None:
    repo = data.repository(data.integration("acme"), "widgets")
    row = data.branch(repo, "feature/ABC-1-work")
    row.ahead, row.behind, row.compared_head_sha = 2, 5, row.head_sha
    data.session.commit()
    (branch,) = ok(get(jira, installed_site))["branches"]
    assert branch["ahead_behind"] == {"ahead": 2, "behind": 5, "base": "main"}

    row.compared_head_sha = fake_sha("an older head")  # the branch moved since it was counted
    data.session.commit()
    assert ok(get(jira, installed_site))["branches"][0]["ahead_behind"] is None


def _walk(jira: Jira, site: JiraSite, limit: int, key: str = "ABC-1") -> list[dict[str, Any]]:
    pages, cursor = [], None
    while True:
        query: dict[str, Any] = {"limit": limit}
        if cursor:
            query["cursor"] = cursor
        body = ok(get(jira, site, key, **query))
        pages.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50


def test_pagination_walks_everything_once_newest_first(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    acme = data.integration()
    a, b = data.repository(acme, "a"), data.repository(acme, "b")
    for i in range(23):
        data.commit(a if i % 3 else b, f"ABC-1 commit {i}", at=T0 + timedelta(minutes=i), flush=False)
    data.session.commit()
    for i in range(4):
        data.branch(a, f"ABC-1-branch-{i}", at=T0 + timedelta(hours=i))

    pages = _walk(jira, installed_site, limit=5)
    assert len(pages) == 5
    assert [len(p["commits"]) for p in pages] == [5, 5, 5, 5, 3]
    assert [len(p["branches"]) for p in pages] == [4, 0, 0, 0, 0]
    messages = [c["message"] for p in pages for c in p["commits"]]
    assert messages == [f"ABC-1 commit {i}" for i in reversed(range(23))]
    assert all(p["counts"] == {"commits": 23, "branches": 4, "pull_requests": 0} for p in pages)
    assert ok(get(jira, installed_site, limit=100000))["commits"][0]["message"] == "ABC-1 commit 22"  # capped


def test_default_limit_is_50(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    repo = data.repository(data.integration())
    for i in range(51):
        data.commit(repo, f"ABC-1 c{i}", flush=False)
    data.session.commit()
    body = ok(get(jira, installed_site))
    assert len(body["commits"]) == 50 and body["next_cursor"]
    rest = ok(get(jira, installed_site, cursor=body["next_cursor"]))
    assert len(rest["commits"]) == 1 and rest["next_cursor"] is None


def test_tampered_or_foreign_cursors_are_400(
    jira: Jira, installed_site: JiraSite, other_site: JiraSite, data: DevData, app: Flask
) -> None:
    repo = data.repository(data.integration())
    for i in range(3):
        data.commit(repo, f"ABC-1 ABC-2 c{i}")
    cursor = ok(get(jira, installed_site, limit=1))["next_cursor"]
    assert cursor
    payload, mac = cursor.split(".")
    flipped = ("B" if payload[5] != "B" else "C").join((payload[:5], payload[6:]))
    for bad in (f"{flipped}.{mac}", f"{payload}.{mac[:-2]}", "garbage", f"{payload}.", "." + mac, cursor + "x"):
        assert error_code(get(jira, installed_site, limit=1, cursor=bad)) == "bad_cursor", bad
    # valid, but for another issue or another tenant
    assert error_code(get(jira, installed_site, "ABC-2", limit=1, cursor=cursor)) == "bad_cursor"
    assert error_code(get(jira, other_site, limit=1, cursor=cursor)) == "bad_cursor"
    # and unchanged it works, for another user of the same site too
    assert ok(get(jira, installed_site, limit=1, cursor=cursor, account_id="someone-else"))["commits"]


# --------------------------------------------------------------------------- visibility


def test_other_tenants_data_never_shows(
    jira: Jira, installed_site: JiraSite, other_site: JiraSite, data: DevData, app: Flask
) -> None:
    mine = data.repository(data.integration("mine"))
    data.commit(mine, "ABC-1 mine")
    theirs_data = DevData(tenant_id_of(other_site))
    theirs = theirs_data.repository(theirs_data.integration("theirs"))
    theirs_data.commit(theirs, "ABC-1 theirs")
    theirs_data.branch(theirs, "ABC-1-theirs")
    theirs_data.pull_request(theirs, "ABC-1 theirs")
    theirs_data.repository(theirs_data.integration("locked", enforce_permissions=True))

    body = ok(get(jira, installed_site))
    assert [c["message"] for c in body["commits"]] == ["ABC-1 mine"]
    assert body["branches"] == body["pull_requests"] == [] and body["needs_token"] == []
    assert body["counts"] == {"commits": 1, "branches": 0, "pull_requests": 0}
    other = ok(get(jira, other_site))
    assert [c["message"] for c in other["commits"]] == ["ABC-1 theirs"]


def test_project_association(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    open_repo = data.repository(data.integration("open"), "open")
    only_xyz = data.repository(data.integration("xyz-only", project_keys=("XYZ",)), "xyz")
    own_keys = data.repository(data.integration("also-xyz", project_keys=("XYZ",)), "abc", project_keys=("ABC",))
    for repo in (open_repo, only_xyz, own_keys):
        data.commit(repo, f"ABC-1 XYZ-1 in {repo.name}")
        data.branch(repo, f"ABC-1-XYZ-1-{repo.id}")
        data.pull_request(repo, f"ABC-1 XYZ-1 pr in {repo.name}")

    abc = ok(get(jira, installed_site, "ABC-1"))
    names = {item["repository"]["name"] for kind in ("commits", "branches", "pull_requests") for item in abc[kind]}
    assert names == {open_repo.name, own_keys.name}
    assert abc["counts"] == {"commits": 2, "branches": 2, "pull_requests": 2}
    xyz = ok(get(jira, installed_site, "XYZ-1"))
    assert {c["repository"]["name"] for c in xyz["commits"]} == {open_repo.name, only_xyz.name}


def test_disabled_and_removed_repositories_never_show(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    acme = data.integration()
    shown = data.repository(acme, "shown")
    hidden = [
        data.repository(acme, "disabled", enabled=False),
        data.repository(acme, "removed", removed=True),
        data.repository(data.integration("off", status=IntegrationStatus.DISABLED.value), "integration-off"),
    ]
    for repo in (shown, *hidden):
        data.commit(repo, f"ABC-1 in {repo.name}")
        data.pull_request(repo, f"ABC-1 pr in {repo.name}")
    body = ok(get(jira, installed_site))
    assert [c["repository"]["name"] for c in body["commits"]] == [shown.name]
    assert [p["repository"]["name"] for p in body["pull_requests"]] == [shown.name]
    assert body["counts"]["commits"] == 1


class Grants:
    def __init__(self, grants: Mapping[str, Mapping[int, set[int]]]) -> None:
        self.grants = grants  # account -> integration -> readable repository ids

    def readable(
        self, session: Any, tenant_id: int, account_id: str | None, candidates: Mapping[int, frozenset[int]]
    ) -> Mapping[int, frozenset[int] | None]:
        mine = self.grants.get(account_id or "", {})
        return {i: frozenset(mine[i]) for i in candidates if i in mine}


@pytest.fixture
def checker() -> Iterator[Grants]:
    grants = Grants({})
    previous = development.set_permission_checker(grants)
    yield grants
    development.set_permission_checker(previous)


def test_enforced_permissions_without_a_token(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    plain = data.repository(data.integration("plain"))
    locked_integration = data.integration("locked", enforce_permissions=True)
    locked = data.repository(locked_integration)
    quiet = data.integration("quiet", enforce_permissions=True)  # nothing for this issue: listed all the same
    data.integration("xyz-only", enforce_permissions=True, project_keys=("XYZ",))  # another project: not listed
    for repo in (plain, locked):
        data.commit(repo, f"ABC-1 in {repo.name}")
        data.branch(repo, f"ABC-1-{repo.id}")

    body = ok(get(jira, installed_site))
    assert {c["repository"]["id"] for c in body["commits"]} == {plain.id}
    assert body["counts"] == {"commits": 1, "branches": 1, "pull_requests": 0}
    assert body["needs_token"] == sorted([locked_integration.id, quiet.id], key=lambda i: i)
    assert {i["name"] for i in body["needs_token_integrations"]} == {"locked", "quiet"}


def test_enforced_permissions_with_a_token(
    jira: Jira, installed_site: JiraSite, data: DevData, checker: Grants
) -> None:
    locked = data.integration("locked", enforce_permissions=True)
    readable, secret = data.repository(locked, "readable"), data.repository(locked, "secret")
    for repo in (readable, secret):
        data.commit(repo, f"ABC-1 in {repo.name}")
    checker.grants = {"acct-alice": {locked.id: {readable.id}}}

    alice = ok(get(jira, installed_site, account_id="acct-alice"))
    assert [c["repository"]["id"] for c in alice["commits"]] == [readable.id] and alice["needs_token"] == []
    bob = ok(get(jira, installed_site, account_id="acct-bob"))
    assert bob["commits"] == [] and bob["needs_token"] == [locked.id]


def test_indexing_hint(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    acme = data.integration()
    data.repository(acme, "first-run", status=RepositoryStatus.INDEXING.value, indexed=False)
    body = ok(get(jira, installed_site))
    assert [r["name"] for r in body["indexing"]] == ["acme/first-run"] and body["indexing_total"] == 1


def test_openapi_documents_the_route(client: Any) -> None:
    doc = client.get("/api/openapi.json").get_json()
    operation = doc["paths"]["/api/issues/{key}/development"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"key", "limit", "cursor"}
    schema = doc["components"]["schemas"]["IssueDevelopment"]
    assert {"commits", "branches", "pull_requests", "counts", "next_cursor", "needs_token"} <= set(schema["properties"])


# --------------------------------------------------------------------------- a real indexed repository


def test_real_indexed_repository(
    jira: Jira, installed_site: JiraSite, app: Flask, settings: Settings, git_repo: ServedRepo
) -> None:
    with app.app_context():
        env = IndexingEnv(app, settings, tenant_id_of(installed_site))
        repo = env.add_repository(git_repo.url, password=git_repo.server.password, web_url="https://github.com/a/w")
        repo.provider = "github"  # only the stored URLs follow it; git still talks to the loopback server
        env.session.commit()
        result = sync.run_index(repo.id, Trigger.INITIAL)
        assert result.status == "done", result

    body = ok(get(jira, installed_site, "ABC-12"))
    assert [c["message"] for c in body["commits"]] == [
        "Merge branch 'feature/ABC-12-fix'",
        "More work on [ABC-12]",
        "ABC-12 start the fix",
    ]
    assert body["commits"][1]["author"]["name"] == "Bob"
    assert body["commits"][0]["tags"] == ["v1.0"]  # the annotated tag, peeled, points at the merge
    assert body["commits"][0]["url"].startswith("https://github.com/a/w/commit/")
    assert [b["name"] for b in body["branches"]] == ["feature/ABC-12-fix"]
    assert body["branches"][0]["last_commit"]["message"] == "More work on [ABC-12]"
    # The branch each commit was reached through: the merge is on main, the rest on the feature branch.
    assert [c["branch"] for c in body["commits"]] == ["main", "feature/ABC-12-fix", "feature/ABC-12-fix"]
    behind = int(run_git("rev-list", "--count", "feature/ABC-12-fix..main", cwd=git_repo.path).strip())
    assert body["branches"][0]["ahead_behind"] == {"ahead": 0, "behind": behind, "base": "main"}
    assert behind > 0
    one = ok(get(jira, installed_site, "ABC-1"))
    assert [c["message"] for c in one["commits"]] == ["ABC-1 initial import"]
