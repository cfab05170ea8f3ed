"""The issue development query layer: input parsing, signed keyset cursors, the visibility
rules, and pages (order, tags, branch heads, round trips) against the real schema."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from connect_app.errors import ValidationError
from connect_app.extensions import db
from connect_app.models import IntegrationStatus, RepositoryStatus
from connect_app.services import development as dev
from connect_app.services.development import (
    Cursor,
    IntegrationRow,
    NoUserTokens,
    RepositoryRow,
    decode_cursor,
    encode_cursor,
    filter_visible,
    issue_development,
    visible_repository_ids,
)
from tests.support.indexing_fixtures import make_tenant
from tests.web.development_data import T0, DevData

KEY = dev.cursor_key("test-secret")


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ABC-1", "ABC-1"), ("abc-12", "ABC-12"), ("A_B2-99", "A_B2-99"), ("PROJ-123456789012345678", None)],
)
def test_parse_issue_key_accepts_jira_keys(raw: str, expected: str | None) -> None:
    assert dev.parse_issue_key(raw) == (expected or raw.strip().upper())


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ABC",
        "ABC-",
        "ABC-0",
        "ABC-01",
        "A-1",
        "1BC-1",
        "ABC-1x",
        "ABC-1-2",
        "AB C-1",
        " ABC-1",
        "ABC-1\n",
        "ÄBC-1",
        "ABC-1234567890123456789",
        "A" * 300 + "-1",
    ],
)
def test_parse_issue_key_refuses_the_rest(raw: str) -> None:
    with pytest.raises(ValidationError) as e:
        dev.parse_issue_key(raw)
    assert e.value.code == "bad_issue_key" and e.value.status == 400


def test_parse_limit() -> None:
    assert dev.parse_limit(None) == dev.parse_limit("") == 50
    assert dev.parse_limit("1") == 1 and dev.parse_limit("500") == 500
    assert dev.parse_limit("501") == dev.parse_limit("100000") == 500  # capped, not refused
    for bad in ("0", "-1", "abc", "1.5", "\uff11\uff12", "9" * 20, " "):
        with pytest.raises(ValidationError) as e:
            dev.parse_limit(bad)
        assert e.value.code == "bad_limit"


# --------------------------------------------------------------------------- cursors


def _cursor() -> Cursor:
    return Cursor((T0, 17), None, (T0 + timedelta(microseconds=1), 2**40))


def test_cursor_round_trips_exactly() -> None:
    text = encode_cursor(_cursor(), key=KEY, tenant_id=3, issue_key="ABC-1")
    assert decode_cursor(text, key=KEY, tenant_id=3, issue_key="ABC-1") == _cursor()
    assert text.isascii() and "=" not in text and len(text) < dev.CURSOR_MAX_CHARS


def _refused(text: str, *, tenant_id: int = 3, issue_key: str = "ABC-1", key: bytes = KEY) -> None:
    with pytest.raises(ValidationError) as e:
        decode_cursor(text, key=key, tenant_id=tenant_id, issue_key=issue_key)
    assert e.value.code == "bad_cursor" and e.value.status == 400


def test_cursor_is_bound_to_the_tenant_the_issue_and_the_key() -> None:
    text = encode_cursor(_cursor(), key=KEY, tenant_id=3, issue_key="ABC-1")
    _refused(text, tenant_id=4)
    _refused(text, issue_key="ABC-2")
    _refused(text, key=dev.cursor_key("another-secret"))


def test_tampered_cursors_are_refused() -> None:
    text = encode_cursor(_cursor(), key=KEY, tenant_id=3, issue_key="ABC-1")
    payload, mac = text.split(".")
    forged = json.dumps({"v": 1, "c": [0, 1], "b": None, "p": None}).encode()
    forged_text = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    for bad in (
        "",
        "x",
        text[:-1],
        text + "A",
        payload,
        f"{forged_text}.{mac}",
        f"{payload}.{mac}.{mac}",
        f"{payload}!.{mac}",
        "a" * 1000 + "." + mac,
        text.replace(".", ""),
    ):
        _refused(bad)


def test_well_signed_but_malformed_payloads_are_refused() -> None:
    """Defence in depth: even a payload carrying a valid MAC must have the exact shape."""

    def signed(data: Any) -> str:
        raw = json.dumps(data).encode()
        return f"{dev._b64(raw)}.{dev._b64(dev._mac(KEY, 3, 'ABC-1', raw))}"

    good = {"v": 1, "c": [1_700_000_000_000_000, 5], "b": None, "p": None}
    assert decode_cursor(signed(good), key=KEY, tenant_id=3, issue_key="ABC-1").commits is not None
    for bad in (
        [1, 2],
        {**good, "v": 2},
        {**good, "x": 1},
        {"v": 1, "c": None, "b": None, "p": None},  # nothing left: never handed out
        {**good, "c": [1.5, 5]},
        {**good, "c": [1, 0]},
        {**good, "c": [1, True]},
        {**good, "c": [10**20, 5]},
        {**good, "c": [1, 2, 3]},
        {**good, "c": "1,2"},
    ):
        _refused(signed(bad))


# --------------------------------------------------------------------------- visibility (no database)


def _integration(
    iid: int, *, enforce: bool = False, keys: tuple[str, ...] = (), status: str = "active"
) -> IntegrationRow:
    return IntegrationRow(iid, f"int-{iid}", "github", status, enforce, keys)


def _repo(rid: int, iid: int, **kw: Any) -> RepositoryRow:
    fields: dict[str, Any] = {
        "name": f"repo-{rid}",
        "provider": "github",
        "web_url": None,
        "enabled": True,
        "removed": False,
        "status": "ok",
        "project_keys": (),
        "first_index_running": False,
    }
    fields.update(kw)
    return RepositoryRow(id=rid, integration_id=iid, **fields)


class Grants:
    """A checker that lets the user read ``grants[integration]`` (absent: no token)."""

    def __init__(self, grants: Mapping[int, set[int]]) -> None:
        self.grants = grants
        self.calls: list[dict[int, frozenset[int]]] = []

    def readable(
        self, session: Any, tenant_id: int, account_id: str | None, candidates: Mapping[int, frozenset[int]]
    ) -> Mapping[int, frozenset[int] | None]:
        self.calls.append(dict(candidates))
        return {i: frozenset(self.grants[i]) for i in candidates if i in self.grants}


def _visible(rows: list[tuple[IntegrationRow, RepositoryRow | None]], checker: Any = None, project: str = "ABC") -> Any:
    return filter_visible(None, 1, "acct", rows, project_key=project, checker=checker or NoUserTokens())  # type: ignore[arg-type]


def test_project_association_repository_overrides_integration() -> None:
    open_i, abc_i, xyz_i = _integration(1), _integration(2, keys=("ABC",)), _integration(3, keys=("XYZ",))
    rows = [
        (open_i, _repo(10, 1)),  # no association anywhere: every project
        (open_i, _repo(11, 1, project_keys=("XYZ",))),  # the repository's own keys exclude ABC
        (abc_i, _repo(20, 2)),  # follows its integration: ABC
        (abc_i, _repo(21, 2, project_keys=("DEF",))),  # its own keys win over the integration's
        (xyz_i, _repo(30, 3)),  # follows its integration: XYZ only
        (xyz_i, _repo(31, 3, project_keys=("XYZ", "ABC"))),  # its own keys include ABC
    ]
    assert set(_visible(rows).repositories) == {10, 20, 31}
    assert set(_visible(rows, project="XYZ").repositories) == {10, 11, 30, 31}


def test_disabled_removed_and_disabled_integrations_never_show() -> None:
    active, disabled = _integration(1), _integration(2, status=IntegrationStatus.DISABLED.value)
    rows = [
        (active, _repo(10, 1)),
        (active, _repo(11, 1, enabled=False)),
        (active, _repo(12, 1, removed=True)),
        (active, _repo(13, 1, status=RepositoryStatus.REMOVED.value)),
        (active, _repo(14, 1, status=RepositoryStatus.FAILED.value)),  # failing still shows what it has
        (disabled, _repo(20, 2)),
        (active, None),
    ]
    assert set(_visible(rows).repositories) == {10, 14}


def test_enforced_permissions_without_a_token_show_nothing_and_ask_for_one() -> None:
    plain, enforcing, other_project = (
        _integration(1),
        _integration(2, enforce=True),
        _integration(3, enforce=True, keys=("XYZ",)),
    )
    idle = _integration(4, enforce=True)  # no repository linked to the issue: still asked for
    rows = [(plain, _repo(10, 1)), (enforcing, _repo(20, 2)), (enforcing, _repo(21, 2)), (other_project, _repo(30, 3))]
    rows.append((idle, None))
    result = _visible(rows)
    assert set(result.repositories) == {10}
    assert [i.id for i in result.needs_token] == [2, 4]  # never the integration of another project


def test_enforced_permissions_with_a_token_show_what_it_reads() -> None:
    enforcing, untokened = _integration(2, enforce=True), _integration(3, enforce=True)
    checker = Grants({2: {20, 99}})  # 99 is not a candidate: ignored
    rows = [(enforcing, _repo(20, 2)), (enforcing, _repo(21, 2)), (untokened, _repo(30, 3))]
    result = _visible(rows, checker)
    assert set(result.repositories) == {20}
    assert [i.id for i in result.needs_token] == [3]
    assert checker.calls == [{2: frozenset({20, 21}), 3: frozenset({30})}]  # one batched call


def test_the_checker_is_not_called_without_enforcing_integrations() -> None:
    checker = Grants({})
    assert set(_visible([(_integration(1), _repo(10, 1))], checker).repositories) == {10}
    assert checker.calls == []


# --------------------------------------------------------------------------- against the database


@pytest.fixture
def data(app: Flask) -> Iterator[DevData]:
    with app.app_context():
        yield DevData(make_tenant(app))


def _page(data: DevData, key: str = "ABC-1", **kw: Any) -> dev.DevelopmentPage:
    kw.setdefault("cursor_secret", KEY)
    return issue_development(db.session(), tenant_id=data.tenant_id, account_id="acct", issue_key=key, **kw)


def test_visible_repository_ids_hook(data: DevData, app: Flask) -> None:
    acme = data.integration("acme")
    locked = data.integration("locked", enforce_permissions=True)
    a, b = data.repository(acme, "a"), data.repository(acme, "b", project_keys=("XYZ",))
    c, d = data.repository(acme, "c", enabled=False), data.repository(locked, "d")
    foreign = DevData(make_tenant(app))
    x = foreign.repository(foreign.integration("theirs"), "x")
    session = db.session()
    assert visible_repository_ids(session, data.tenant_id, "acct", [a.id, b.id, c.id, d.id, x.id]) == {a.id, b.id}
    assert visible_repository_ids(session, data.tenant_id, "acct", [a.id, b.id], project_key="ABC") == {a.id}
    assert visible_repository_ids(session, data.tenant_id, "acct", []) == set()
    grants = Grants({locked.id: {d.id}})
    assert visible_repository_ids(session, data.tenant_id, "acct", [d.id, x.id], checker=grants) == {d.id}


def test_page_orders_newest_first_and_pages_each_kind(data: DevData) -> None:
    repo = data.repository(data.integration())
    commits = [data.commit(repo, f"ABC-1 change {i}", at=T0 + timedelta(hours=i)) for i in range(5)]
    same_time = [data.commit(repo, f"ABC-1 twin {i}", at=T0 + timedelta(hours=10)) for i in range(2)]
    data.commit(repo, "ABC-2 another issue")
    branches = [data.branch(repo, f"feature/ABC-1-{i}", at=T0 + timedelta(days=i)) for i in range(3)]
    prs = [data.pull_request(repo, f"ABC-1 pr {i}", at=T0 + timedelta(days=i)) for i in range(2)]

    seen: dict[str, list[Any]] = {"commits": [], "branches": [], "pull_requests": []}
    cursor, pages = None, 0
    while True:
        page = _page(data, limit=2, cursor=cursor)
        pages += 1
        assert page.counts == {"commits": 7, "branches": 3, "pull_requests": 2}
        for kind in seen:
            seen[kind].extend(item["id"] for item in getattr(page, kind))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 4
    twins = sorted((c.id for c in same_time), reverse=True)
    assert seen["commits"] == [*twins, *(c.id for c in reversed(commits))]
    assert seen["branches"] == [b.id for b in reversed(branches)]
    assert seen["pull_requests"] == [p.external_id for p in reversed(prs)]


def test_page_payload_shape(data: DevData) -> None:
    repo = data.repository(data.integration("acme"), "widgets")
    head = data.commit(repo, "ABC-1 add the thing\n\nBody text", author=("Zoë", "zoe@example.com"))
    data.tag(repo, "v1.0", head.sha)
    data.tag(repo, "v0.9", "0" * 40)  # points elsewhere
    data.branch(repo, "feature/abc-1-thing", head=head.sha)
    data.pull_request(repo, "ABC-1: the thing", number="42", source="feature/abc-1-thing", state="MERGED")
    # linked through its source branch's name, as the indexer does
    data.pull_request(repo, "Another from the same branch", number="43", source="feature/abc-1-thing")

    body = _page(data).payload()
    (commit,) = body["commits"]
    assert commit["sha"] == head.sha and commit["short_sha"] == head.sha[:7]
    assert commit["message"] == "ABC-1 add the thing\n\nBody text" and commit["message_truncated"] is False
    assert commit["author"] == {"name": "Zoë", "email": "zoe@example.com"}
    assert commit["time"].endswith("Z") and commit["url"] == f"https://github.com/{repo.name}/commit/{head.sha}"
    assert commit["repository"] == {"id": repo.id, "name": "acme/widgets"} and commit["tags"] == ["v1.0"]
    assert body["tags"] == [{"name": "v1.0", "sha": head.sha, "url": commit["url"], "repository": commit["repository"]}]
    (branch,) = body["branches"]
    assert branch["name"] == "feature/abc-1-thing"
    assert branch["url"] == f"https://github.com/{repo.name}/tree/feature/abc-1-thing"
    assert branch["last_commit"]["sha"] == head.sha and branch["last_commit"]["message"] == "ABC-1 add the thing"
    assert branch["pull_request"]["id"] == "43"  # an open pull request from the branch beats a merged one
    assert [p["id"] for p in body["pull_requests"]] == ["43", "42"]  # newest first
    pr = body["pull_requests"][1]
    assert pr == {
        "id": "42",
        "title": "ABC-1: the thing",
        "state": "MERGED",
        "source": "feature/abc-1-thing",
        "target": "main",
        "author": "bob",
        "url": f"https://github.com/{repo.name}/pull/42",
        "updated": pr["updated"],
        "repository": {"id": repo.id, "name": "acme/widgets"},
    }
    assert body["counts"] == {"commits": 1, "branches": 1, "pull_requests": 2}
    assert body["repositories"] == [{"id": repo.id, "name": "acme/widgets", "url": "https://github.com/acme/widgets"}]
    assert body["next_cursor"] is None and body["needs_token"] == [] and body["indexing"] == []


def test_long_messages_are_cut_and_unsafe_urls_dropped(data: DevData) -> None:
    repo = data.repository(data.integration(), web_url="javascript:alert(1)//")
    data.commit(repo, "ABC-1 " + "x" * 5000, url="javascript:alert(1)")
    data.branch(repo, "ABC-1-b", url="data:text/html,<script>alert(1)</script>")
    data.pull_request(repo, "ABC-1 pr", url="JAVASCRIPT:alert(1)")
    body = _page(data).payload()
    (commit,) = body["commits"]
    assert len(commit["message"]) == dev.MESSAGE_MAX_CHARS and commit["message_truncated"] is True
    assert commit["url"] is None and body["branches"][0]["url"] is None
    assert body["pull_requests"][0]["url"] is None and body["repositories"][0]["url"] is None


def test_branch_head_not_indexed_yet(data: DevData) -> None:
    repo = data.repository(data.integration())
    data.branch(repo, "ABC-1-wip", head="f" * 40)
    (branch,) = _page(data).branches
    assert branch["last_commit"] == {
        "sha": "f" * 40,
        "short_sha": "fffffff",
        "message": None,
        "author": None,
        "time": None,
        "url": f"https://github.com/{repo.name}/commit/{'f' * 40}",
    }


def test_indexing_hint_lists_visible_repositories_in_their_first_index(data: DevData) -> None:
    acme = data.integration()
    data.repository(acme, "fresh", status=RepositoryStatus.INDEXING.value, indexed=False)
    data.repository(acme, "queued", status=RepositoryStatus.QUEUED.value, indexed=False)
    data.repository(acme, "reindexing", status=RepositoryStatus.INDEXING.value, indexed=True)  # not a first index
    data.repository(acme, "failed", status=RepositoryStatus.FAILED.value, indexed=False)
    data.repository(acme, "elsewhere", status=RepositoryStatus.NEW.value, indexed=False, project_keys=("XYZ",))
    page = _page(data).payload()
    assert [r["name"] for r in page["indexing"]] == ["acme/fresh", "acme/queued"] and page["indexing_total"] == 2
    assert page["commits"] == [] and page["next_cursor"] is None


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)


@pytest.fixture
def statements(data: DevData) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    engine = db.engine
    event.listen(engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine, "before_cursor_execute", counter)


def test_round_trips(data: DevData, statements: StatementCounter) -> None:
    repo = data.repository(data.integration())
    other = data.repository(data.integration("other"))
    for i in range(30):
        data.commit(repo if i % 2 else other, f"ABC-1 commit {i}", flush=False)
    data.session.commit()
    db.session.remove()

    statements.statements.clear()
    page = _page(data, limit=10)
    assert len(page.commits) == 10 and page.next_cursor
    assert len(statements.statements) == 4, statements.statements  # link counts, repositories, commits, tags

    data.branch(repo, "ABC-1-x")
    data.pull_request(repo, "ABC-1 y")
    db.session.remove()
    statements.statements.clear()
    _page(data, limit=10)
    assert len(statements.statements) == 7, statements.statements

    statements.statements.clear()
    _page(data, key="ABC-999")  # no repository linked to it: nothing more to ask
    assert len(statements.statements) == 2, statements.statements


def test_issue_key_is_checked_again_at_the_service(data: DevData) -> None:
    with pytest.raises(ValidationError):
        _page(data, key="abc-1")


def test_times_are_utc(data: DevData) -> None:
    repo = data.repository(data.integration())
    data.commit(repo, "ABC-1 x", at=datetime(2024, 1, 2, 3, 4, 5, 678900, tzinfo=UTC))
    assert _page(data).commits[0]["time"] == "2024-01-02T03:04:05.678900Z"
