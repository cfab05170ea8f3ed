"""The tenant's Jira projects: paged fetch through the signed client, one-transaction replace,
staleness, and the request checked against Atlassian's published platform description."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from connect_app.config import Settings
from connect_app.errors import (
    HostAuthError,
    HostError,
    HostUnavailable,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from connect_app.extensions import db
from connect_app.jira.client import JiraClient
from connect_app.jira.projects import (
    PROJECT_SEARCH_PATH,
    ProjectInfo,
    fetch_projects,
    known_project_keys,
    parse_project_page,
    projects_stale,
    refresh_projects,
    replace_projects,
)
from connect_app.models import JiraProject, Tenant, utcnow
from tests.conftest import APP_KEY
from tests.indexing.sync_support import expected_links, put
from tests.support.connect import JiraSite
from tests.support.indexing_fixtures import IndexingEnv
from tests.support.jira_stub import JiraStub, stub_project
from tests.support.prism import PrismMock, request_violations, shared_spec_path


@pytest.fixture(autouse=True)
def _reset_stub_projects(jira_stub: JiraStub) -> Iterator[None]:
    yield
    jira_stub.reset_projects()


def _projects(n: int, prefix: str = "P") -> list[dict[str, Any]]:
    return [stub_project(10000 + i, f"{prefix}{i:04d}", f"Project {i}") for i in range(n)]


def _tenant_id(client_key: str) -> int:
    tid = db.session.scalar(select(Tenant.id).where(Tenant.client_key == client_key))
    assert tid is not None
    return tid


def _rows(tenant_id: int) -> list[tuple[str, str, str]]:
    db.session.rollback()
    rows = db.session.scalars(
        select(JiraProject).where(JiraProject.tenant_id == tenant_id).order_by(JiraProject.key)
    ).all()
    return [(r.key, r.project_id, r.name) for r in rows]


def _client(site: JiraSite, **kw: Any) -> JiraClient:
    return JiraClient(base_url=site.base_url, app_key=APP_KEY, shared_secret=site.shared_secret, **kw)


# ---------------------------------------------------------------------------------- fetching


def test_fetch_pages_through_every_page_with_signed_calls(site: JiraSite, jira_stub: JiraStub) -> None:
    jira_stub.projects_by_client[site.client_key] = _projects(123)
    projects = fetch_projects(_client(site))
    assert len(projects) == 123
    assert [p.key for p in projects] == sorted(p["key"] for p in _projects(123))
    assert projects[0] == ProjectInfo(id="10000", key=_projects(1)[0]["key"], name="Project 0")
    calls = jira_stub.calls_to(PROJECT_SEARCH_PATH)
    assert [c.query["startAt"] for c in calls] == [["0"], ["50"], ["100"]]
    assert all(c.query["maxResults"] == ["50"] and c.query["orderBy"] == ["key"] for c in calls)
    assert all(c.auth_ok and c.client_key == site.client_key for c in calls)


def test_fetch_advances_by_what_jira_returned_not_by_what_it_asked(site: JiraSite, jira_stub: JiraStub) -> None:
    jira_stub.projects_by_client[site.client_key] = _projects(20)
    jira_stub.project_page_cap = 7  # Jira may return fewer than maxResults
    projects = fetch_projects(_client(site))
    assert len(projects) == 20
    assert [c.query["startAt"] for c in jira_stub.calls_to(PROJECT_SEARCH_PATH)] == [["0"], ["7"], ["14"]]


def test_fetch_of_a_site_without_projects_is_one_call(site: JiraSite, jira_stub: JiraStub) -> None:
    assert fetch_projects(_client(site)) == []
    assert len(jira_stub.calls_to(PROJECT_SEARCH_PATH)) == 1


class _FakeResponse:
    def __init__(self, body: Any) -> None:
        self._body = body

    def json(self) -> Any:
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


class _ScriptedClient:
    """Answers project/search from a list of bodies (for shapes the stub never sends)."""

    def __init__(self, *bodies: Any) -> None:
        self.bodies = list(bodies)
        self.params: list[dict[str, Any]] = []

    def request(self, method: str, path: str, *, params: dict[str, Any], expected: tuple[int, ...]) -> _FakeResponse:
        assert (method, path) == ("GET", PROJECT_SEARCH_PATH)
        self.params.append(dict(params))
        return _FakeResponse(self.bodies.pop(0))


def _page(*keys: str, **extra: Any) -> dict[str, Any]:
    return {"values": [{"id": str(i), "key": k, "name": k.title()} for i, k in enumerate(keys)], **extra}


def test_without_is_last_paging_stops_at_total_or_an_empty_page() -> None:
    by_total = _ScriptedClient(_page("AA", "BB", total=3), _page("CC", total=3))
    assert [p.key for p in fetch_projects(by_total, page_size=2)] == ["AA", "BB", "CC"]  # type: ignore[arg-type]
    assert [p["startAt"] for p in by_total.params] == [0, 2]
    by_empty = _ScriptedClient(_page("AA"), _page("BB"), _page())
    assert [p.key for p in fetch_projects(by_empty, page_size=1)] == ["AA", "BB"]  # type: ignore[arg-type]


def test_pages_that_never_advance_raise_instead_of_looping() -> None:
    stuck = _ScriptedClient(*[_page("AA", "BB", isLast=False)] * 5)
    with pytest.raises(HostError) as info:
        fetch_projects(stuck)  # type: ignore[arg-type]
    assert info.value.code == "jira_paging_stuck"
    assert len(stuck.params) == 2


def test_a_project_seen_twice_across_pages_is_kept_once() -> None:
    # A project created while paging shifts the next page by one (orderBy=key).
    shifted = _ScriptedClient(_page("AA", "BB", isLast=False), _page("BB", "CC", isLast=True))
    assert [p.key for p in fetch_projects(shifted)] == ["AA", "BB", "CC"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        ValueError("not json"),
        [],
        {"isLast": True},
        {"values": "nope"},
        {"values": ["ABC"], "isLast": True},
        {"values": [{"id": "1", "name": "No key"}], "isLast": True},
        {"values": [{"id": "1", "key": "", "name": "Empty key"}], "isLast": True},
        {"values": [{"key": "ABC", "name": "No id"}], "isLast": True},
        {"values": [{"id": True, "key": "ABC"}], "isLast": True},
        {"values": [{"id": "1" * 40, "key": "ABC"}], "isLast": True},
        {"values": [{"id": "1", "key": "K" * 256}], "isLast": True},
    ],
)
def test_a_body_that_is_not_a_page_of_projects_is_a_clear_error(body: Any) -> None:
    with pytest.raises(HostError) as info:
        fetch_projects(_ScriptedClient(body))  # type: ignore[arg-type]
    assert info.value.code == "jira_bad_response"
    assert PROJECT_SEARCH_PATH in info.value.message


def test_page_parsing_keeps_keys_as_jira_returns_them() -> None:
    page = parse_project_page({"values": [{"id": 7, "key": "abc_Lower", "name": ""}], "isLast": True, "total": 1})
    assert page.values == [ProjectInfo(id="7", key="abc_Lower", name="abc_Lower")]
    assert (page.is_last, page.total) == (True, 1)


def test_stub_pages_fit_the_published_page_bean_project_schema(site: JiraSite, jira_stub: JiraStub) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    components = json.loads(shared_spec_path("jira-platform").read_text())["components"]
    validator = jsonschema.Draft4Validator({"$ref": "#/components/schemas/PageBeanProject", "components": components})
    jira_stub.projects_by_client[site.client_key] = _projects(3)
    jira_stub.project_page_cap = 2
    client = _client(site)
    for start in (0, 2):
        body = client.get_json(PROJECT_SEARCH_PATH, params={"startAt": start, "maxResults": 2})
        assert [e.message for e in validator.iter_errors(body)] == []
        assert body["isLast"] is (start == 2)


# --------------------------------------------------------------------------------- refreshing


def test_refresh_stores_the_tenants_projects(app: Flask, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    jira_stub.projects_by_client[installed_site.client_key] = [
        stub_project(10000, "ABC", "Alphabetical"),
        stub_project(10001, "EX", "Example"),
        stub_project(10002, "MY_PROJ2", "Underscored"),
    ]
    with app.app_context():
        tid = _tenant_id(installed_site.client_key)
        before = utcnow()
        assert refresh_projects(tid) == 3
        assert _rows(tid) == [
            ("ABC", "10000", "Alphabetical"),
            ("EX", "10001", "Example"),
            ("MY_PROJ2", "10002", "Underscored"),
        ]
        assert known_project_keys(db.session, tid) == frozenset({"ABC", "EX", "MY_PROJ2"})
        stamps = db.session.scalars(select(JiraProject.refreshed_at).where(JiraProject.tenant_id == tid)).all()
        assert all(s >= before - timedelta(seconds=1) for s in stamps)
        assert not projects_stale(db.session, tid)


def test_refresh_inserts_updates_and_deletes(app: Flask, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    key = installed_site.client_key
    jira_stub.projects_by_client[key] = [
        stub_project(1, "ABC", "Old name"),
        stub_project(2, "GONE"),
        stub_project(3, "KEEP"),
    ]
    with app.app_context():
        tid = _tenant_id(key)
        refresh_projects(tid)
        keep_row_id = db.session.scalar(select(JiraProject.id).where(JiraProject.key == "KEEP"))
        jira_stub.projects_by_client[key] = [
            stub_project(1, "ABC", "New name"),
            stub_project(3, "KEEP"),
            stub_project(4, "NEW"),
        ]
        assert refresh_projects(tid) == 3
        assert _rows(tid) == [("ABC", "1", "New name"), ("KEEP", "3", "Project KEEP"), ("NEW", "4", "Project NEW")]
        assert db.session.scalar(select(JiraProject.id).where(JiraProject.key == "KEEP")) == keep_row_id
        # A project whose key changed in Jira: the old key goes, the new one comes.
        jira_stub.projects_by_client[key] = [stub_project(1, "ABCD", "New name")]
        assert refresh_projects(tid) == 1
        assert _rows(tid) == [("ABCD", "1", "New name")]
        # Jira says the site has no projects (any more): that is the list.
        jira_stub.projects_by_client[key] = []
        assert refresh_projects(tid) == 0
        assert _rows(tid) == []
        assert projects_stale(db.session, tid)


def test_refresh_touches_only_its_own_tenant(
    app: Flask, installed_site: JiraSite, other_site: JiraSite, jira_stub: JiraStub
) -> None:
    jira_stub.projects_by_client[installed_site.client_key] = [stub_project(1, "MINE")]
    jira_stub.projects_by_client[other_site.client_key] = [stub_project(1, "THEIRS"), stub_project(2, "ALSO")]
    with app.app_context():
        mine, theirs = _tenant_id(installed_site.client_key), _tenant_id(other_site.client_key)
        assert refresh_projects(theirs) == 2
        assert refresh_projects(mine) == 1
        assert _rows(mine) == [("MINE", "1", "Project MINE")]
        assert _rows(theirs) == [("ALSO", "2", "Project ALSO"), ("THEIRS", "1", "Project THEIRS")]
        jira_stub.projects_by_client[installed_site.client_key] = []
        refresh_projects(mine)
        assert _rows(theirs) == [("ALSO", "2", "Project ALSO"), ("THEIRS", "1", "Project THEIRS")]
        assert known_project_keys(db.session, mine) == frozenset()
        assert known_project_keys(db.session, theirs) == frozenset({"ALSO", "THEIRS"})
    # Each tenant's calls were signed with its own secret.
    by_client = {c.client_key for c in jira_stub.calls_to(PROJECT_SEARCH_PATH)}
    assert by_client == {installed_site.client_key, other_site.client_key}


@pytest.mark.parametrize(
    ("failure", "error", "code"),
    [
        (500, HostUnavailable, "host_unavailable"),
        (404, HostError, "host_not_found"),
        (403, PermissionDenied, "host_forbidden"),
        ("garbage", HostError, "jira_bad_response"),
    ],
)
def test_a_jira_failure_on_any_page_leaves_the_stored_list_alone(
    app: Flask, installed_site: JiraSite, jira_stub: JiraStub, failure: int | str, error: type[Exception], code: str
) -> None:
    key = installed_site.client_key
    jira_stub.projects_by_client[key] = _projects(60)
    with app.app_context():
        tid = _tenant_id(key)
        refresh_projects(tid)
        stored = _rows(tid)
        stamps = sorted(db.session.scalars(select(JiraProject.refreshed_at).where(JiraProject.tenant_id == tid)))
        jira_stub.projects_by_client[key] = [stub_project(1, "ONLY"), *_projects(60)[1:]]
        jira_stub.project_search_failures[50] = failure  # the second page fails
        with pytest.raises(error) as info:
            refresh_projects(tid)
        assert getattr(info.value, "code", None) == code
        assert _rows(tid) == stored
        db.session.rollback()
        assert (
            sorted(db.session.scalars(select(JiraProject.refreshed_at).where(JiraProject.tenant_id == tid))) == stamps
        )


def test_refused_credentials_and_rate_limits_are_app_errors(
    app: Flask, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    key = installed_site.client_key
    jira_stub.projects_by_client[key] = [stub_project(1, "ABC")]
    with app.app_context():
        tid = _tenant_id(key)
        jira_stub.rate_limit_next = 1
        jira_stub.retry_after = "600"  # longer than the client waits: RateLimited with a reset time
        with pytest.raises(RateLimited) as limited:
            refresh_projects(tid)
        assert limited.value.reset_at is not None
        secret = jira_stub.secrets_by_client[key]
        jira_stub.secrets_by_client[key] = "rotated-" + secret  # Jira no longer accepts our secret
        try:
            with pytest.raises(HostAuthError) as refused:
                refresh_projects(tid)
        finally:
            jira_stub.secrets_by_client[key] = secret
        assert secret not in refused.value.message
        assert _rows(tid) == []


def test_unknown_and_disabled_tenants(app: Flask, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    with app.app_context():
        with pytest.raises(NotFound):
            refresh_projects(987654)
        tid = _tenant_id(installed_site.client_key)
        tenant = db.session.get(Tenant, tid)
        assert tenant is not None
        tenant.enabled = False
        db.session.commit()
        with pytest.raises(PermissionDenied) as info:
            refresh_projects(tid)
        assert info.value.code == "app_disabled"
    assert jira_stub.calls_to(PROJECT_SEARCH_PATH) == []


def test_replace_for_a_tenant_that_was_uninstalled_meanwhile_is_not_found(app: Flask) -> None:
    with app.app_context():
        with pytest.raises(NotFound):
            replace_projects(db.session, 424242, [ProjectInfo("1", "ABC", "x")])
        db.session.rollback()


def test_concurrent_refreshes_of_one_tenant_both_succeed(
    app: Flask, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    jira_stub.projects_by_client[installed_site.client_key] = _projects(120)
    with app.app_context():
        tid = _tenant_id(installed_site.client_key)
    results: list[int | BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        with app.app_context():
            start.wait()
            try:
                results.append(refresh_projects(tid))
            except BaseException as e:  # reported below
                results.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [120, 120]
    with app.app_context():
        assert len(_rows(tid)) == 120


def test_the_worker_job_refreshes(app: Flask, installed_site: JiraSite, jira_stub: JiraStub) -> None:
    from workers.jobs import refresh_jira_projects

    jira_stub.projects_by_client[installed_site.client_key] = [stub_project(1, "JOB")]
    with app.app_context():
        tid = _tenant_id(installed_site.client_key)
        assert refresh_jira_projects(tid) == 1
        assert known_project_keys(db.session, tid) == frozenset({"JOB"})


# ---------------------------------------------------------------------------- links after a refresh


def _linked_keys(env: IndexingEnv, repo: Any) -> set[str]:
    return {key for _, _, key, _ in env.links(repo)}


def test_a_refresh_links_stored_content_to_new_projects_in_its_tenant_only(
    app: Flask, settings: Settings, installed_site: JiraSite, other_site: JiraSite, jira_stub: JiraStub
) -> None:
    mine_key, theirs_key = installed_site.client_key, other_site.client_key
    jira_stub.projects_by_client[mine_key] = [stub_project(1, "ABC")]
    jira_stub.projects_by_client[theirs_key] = [stub_project(1, "ABC")]
    content: dict[str, Any] = {
        "commits": [("c1", "ABC-1 and DEF-2"), ("c2", "DEF-3 alone"), ("c3", "def-9 is no key in text")],
        "branches": ["feature/def-4-login", "main"],
        "prs": [("7", "DEF-5 in the title", "ABC-6 in the body", "topic")],
    }
    with app.app_context():
        mine = IndexingEnv(app, settings, _tenant_id(mine_key))
        theirs = IndexingEnv(app, settings, _tenant_id(theirs_key))
        refresh_projects(mine.tenant_id)
        refresh_projects(theirs.tenant_id)
        repo = mine.add_repository("https://git.example.com/a.git")
        their_repo = theirs.add_repository("https://git.example.com/a.git")
        put(db.session, repo, **content)  # indexed while ABC was the only project
        put(db.session, their_repo, **content)
        assert _linked_keys(mine, repo) == _linked_keys(theirs, their_repo) == {"ABC-1", "ABC-6"}

        jira_stub.projects_by_client[mine_key] = [stub_project(1, "ABC"), stub_project(2, "DEF")]
        assert refresh_projects(mine.tenant_id) == 2

        assert _linked_keys(mine, repo) == {"ABC-1", "DEF-2", "DEF-3", "DEF-4", "DEF-5", "ABC-6"}
        assert mine.links(repo) == expected_links(db.session, repo)  # exactly what indexing links now
        assert _linked_keys(theirs, their_repo) == {"ABC-1", "ABC-6"}  # DEF is not their project

        # DEF disappears (deleted, archived, trashed, renamed, hidden): its links stay.
        jira_stub.projects_by_client[mine_key] = [stub_project(1, "ABC")]
        assert refresh_projects(mine.tenant_id) == 1
        assert "DEF-2" in _linked_keys(mine, repo)


def test_the_first_refresh_prunes_links_made_while_every_key_was_linked(
    app: Flask, settings: Settings, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    with app.app_context():
        env = IndexingEnv(app, settings, _tenant_id(installed_site.client_key))
        repo = env.add_repository("https://git.example.com/a.git")
        put(db.session, repo, commits=[("c1", "ABC-1 UTF-8 XYZ-2")], branches=["sha-256-abc-3"])
        assert _linked_keys(env, repo) == {"ABC-1", "UTF-8", "XYZ-2", "SHA-256", "ABC-3"}

        jira_stub.projects_by_client[installed_site.client_key] = [stub_project(1, "ABC")]
        assert refresh_projects(env.tenant_id) == 1

        assert _linked_keys(env, repo) == {"ABC-1", "ABC-3"}


def test_a_failed_relink_keeps_the_new_list_and_says_which_keys(
    app: Flask,
    settings: Settings,
    installed_site: JiraSite,
    jira_stub: JiraStub,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from connect_app.jira import projects

    key = installed_site.client_key
    jira_stub.projects_by_client[key] = [stub_project(1, "ABC")]
    with app.app_context():
        env = IndexingEnv(app, settings, _tenant_id(key))
        refresh_projects(env.tenant_id)
        env.add_repository("https://git.example.com/a.git")

        def broken(*args: Any, **kwargs: Any) -> int:
            raise RuntimeError("database went away")

        monkeypatch.setattr(projects, "relink_projects", broken)
        jira_stub.projects_by_client[key] = [stub_project(1, "ABC"), stub_project(2, "NEW")]
        with pytest.raises(RuntimeError):
            refresh_projects(env.tenant_id)
        assert known_project_keys(db.session, env.tenant_id) == frozenset({"ABC", "NEW"})
        assert "updating links after the project refresh failed (new keys: ['NEW'])" in caplog.text


# ---------------------------------------------------------------------------------- staleness


def test_staleness_follows_the_oldest_row(app: Flask, installed_site: JiraSite, other_site: JiraSite) -> None:
    now = utcnow()
    with app.app_context():
        tid, other = _tenant_id(installed_site.client_key), _tenant_id(other_site.client_key)
        assert projects_stale(db.session, tid)  # no rows yet
        replace_projects(db.session, tid, [ProjectInfo("1", "AA", "a"), ProjectInfo("2", "BB", "b")], now=now)
        db.session.commit()
        assert not projects_stale(db.session, tid, now=now + timedelta(minutes=59))
        assert projects_stale(db.session, tid, now=now + timedelta(minutes=61))
        assert not projects_stale(db.session, tid, timedelta(hours=3), now=now + timedelta(hours=2))
        # One row left behind by an older refresh makes the list stale.
        db.session.execute(
            JiraProject.__table__.update()
            .where(JiraProject.tenant_id == tid, JiraProject.key == "BB")
            .values(refreshed_at=now - timedelta(hours=2))
        )
        db.session.commit()
        assert projects_stale(db.session, tid, now=now)
        # Another tenant's rows say nothing about this one.
        replace_projects(db.session, other, [ProjectInfo("1", "AA", "a")], now=now)
        db.session.commit()
        assert not projects_stale(db.session, other, now=now)
        assert known_project_keys(db.session, other) == frozenset({"AA"})


# ------------------------------------------------------------------------------ contract (Prism)


@pytest.mark.slow
def test_project_search_requests_fit_the_platform_description(prism_jira_platform: PrismMock) -> None:
    """Our calls are valid ``searchProjects`` requests. Prism answers every page with the
    description's static example (``isLast: false``, the same two projects), so the fetch must
    also notice that paging does not advance and stop with an error instead of looping."""
    client = JiraClient(base_url=prism_jira_platform.root_url, app_key=APP_KEY, shared_secret="s" * 32)
    with prism_jira_platform.recording() as rec:
        with pytest.raises(HostError) as info:
            fetch_projects(client)
    rec.assert_all_valid(min_requests=2)
    assert info.value.code == "jira_paging_stuck"
    first = rec.exchanges[0]
    assert first.status == 200 and "startAt=0" in first.url and "maxResults=50" in first.url
    page = parse_project_page(first.response.json())
    assert [(p.id, p.key, p.name) for p in page.values] == [
        ("10000", "EX", "Example"),
        ("10001", "ABC", "Alphabetical"),
    ]
    assert (page.is_last, page.total) == (False, 7)
    # The harness can fail: a parameter outside the description's enum is flagged.
    bad = requests.get(
        prism_jira_platform.root_url + PROJECT_SEARCH_PATH,
        params={"orderBy": "colour"},
        headers={"Authorization": "JWT a.b.c"},
        timeout=30,
    )
    assert request_violations(bad)
