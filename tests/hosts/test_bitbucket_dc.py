"""Bitbucket Data Center provider: webhooks with real HMACs, behaviour against a stub host,
and contract tests against Atlassian's 9.2 OpenAPI description served by Prism."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connect_app.errors import AppError, AuthError, HostAuthError, HostError, ValidationError
from connect_app.hosts.base import (
    AuthType,
    Credentials,
    GitHost,
    Permission,
    PullRequestAction,
    PullRequestState,
    RefUpdate,
    RemoteRepository,
    WebhookEventType,
)
from connect_app.hosts.bitbucket_common import sign
from connect_app.hosts.bitbucket_dc import BitbucketDataCenter
from tests.support.prism import PrismMock, alias_bitbucket_dc_versions, shared_spec_path
from tests.support.stub_host import Handler, Reply, Seen, StubHost, loopback_only

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bitbucket_dc"
TOKEN = "BBDC-NjY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAx"
PAT = Credentials(AuthType.PAT, token=TOKEN)
PASSWORD = Credentials(AuthType.PASSWORD, username="jsmith", password="pa55-w0rd-jsmith")
SECRET = "dc-webhook-secret-42"
SERVER = "https://bitbucket.example.com"
REPO = RemoteRepository(
    external_id="84", name="WID/widgets", clone_url="https://bitbucket.example.com/scm/wid/widgets.git", namespace="WID"
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture
def stub() -> Iterator[Callable[[Handler], StubHost]]:
    started: list[StubHost] = []

    def make(handler: Handler) -> StubHost:
        started.append(StubHost(handler))
        return started[-1]

    yield make
    for s in started:
        s.close()


def provider(url: str, creds: Credentials = PAT) -> BitbucketDataCenter:
    return BitbucketDataCenter(url, creds, allow_private=True, max_retries=0)


def test_is_a_git_host() -> None:
    assert isinstance(BitbucketDataCenter(SERVER, PAT), GitHost)


# --- webhooks ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["repo_refs_changed.json", "pr_opened.json", "pr_merged.json"])
def test_webhook_signature_good(name: str) -> None:
    body = fixture(name)
    BitbucketDataCenter(SERVER, PAT).verify_webhook({"X-Hub-Signature": sign(body, SECRET)}, body, SECRET)


@pytest.mark.parametrize(
    "headers_for, body_change, secret",
    [
        (lambda b: {"X-Hub-Signature": sign(b, SECRET)}, b"\n", SECRET),
        (lambda b: {}, b"", SECRET),
        (lambda b: {"X-Hub-Signature": sign(b, "not-the-secret")}, b"", SECRET),
        (lambda b: {"X-Hub-Signature": sign(b, SECRET)[7:]}, b"", SECRET),  # hex without "sha256="
    ],
    ids=["tampered", "missing", "wrong-secret", "malformed"],
)
def test_webhook_signature_refused(
    headers_for: Callable[[bytes], dict[str, str]], body_change: bytes, secret: str
) -> None:
    body = fixture("repo_refs_changed.json")
    with pytest.raises(AuthError) as err:
        BitbucketDataCenter(SERVER, PAT).verify_webhook(headers_for(body), body + body_change, secret)
    assert SECRET not in str(err.value)


def test_parse_refs_changed() -> None:
    headers = {"X-Event-Key": "repo:refs_changed", "X-Request-Id": "d2a7c3c6-1f50-4f6b-9b38-4c4c5ef1c1a3"}
    [event] = BitbucketDataCenter(SERVER, PAT).parse_webhook(headers, fixture("repo_refs_changed.json"))
    assert event.type is WebhookEventType.PUSH and event.delivery_id == headers["X-Request-Id"]
    assert (event.repository_external_id, event.repository_name) == ("84", "WID/widgets")
    assert event.refs == (
        RefUpdate(
            "refs/heads/master", "a3d6e0e2b4c1f7b9d8e5c2a1f0b9e8d7c6b5a493", "f09c8889a2d234985734958795a31589cd91ffda"
        ),
        RefUpdate("refs/heads/feature/WID-12-sizing", None, "22671f0349857934857983457983475ec39f196b"),
        RefUpdate("refs/tags/v0.9", "9b1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4", None),
    )
    assert event.commit_ids == ("f09c8889a2d234985734958795a31589cd91ffda", "22671f0349857934857983457983475ec39f196b")


@pytest.mark.parametrize(
    "key, name, action, state",
    [
        ("pr:opened", "pr_opened.json", PullRequestAction.OPENED, PullRequestState.OPEN),
        ("pr:from_ref_updated", "pr_from_ref_updated.json", PullRequestAction.UPDATED, PullRequestState.OPEN),
        ("pr:merged", "pr_merged.json", PullRequestAction.MERGED, PullRequestState.MERGED),
        ("pr:declined", "pr_declined.json", PullRequestAction.DECLINED, PullRequestState.DECLINED),
    ],
)
def test_parse_pull_request(key: str, name: str, action: PullRequestAction, state: PullRequestState) -> None:
    [event] = BitbucketDataCenter(SERVER, PAT).parse_webhook({"x-event-key": key}, fixture(name))
    pr = event.pull_request
    assert event.pull_request_action is action and pr is not None and pr.state is state
    assert (pr.external_id, pr.source_branch, pr.target_branch) == ("7", "feature/WID-12-sizing", "master")
    assert pr.url.endswith("/projects/WID/repos/widgets/pull-requests/7") and pr.author == "Administrator"
    assert pr.created_at == datetime(2024, 5, 2, 10, 0, tzinfo=UTC)
    assert event.repository_external_id == "84"


def test_ping_and_unknown_events() -> None:
    host = BitbucketDataCenter(SERVER, PAT)
    [ping] = host.parse_webhook({"X-Event-Key": "diagnostics:ping"}, fixture("diagnostics_ping.json"))
    assert ping.type is WebhookEventType.PING
    assert host.parse_webhook({"X-Event-Key": "repo:comment:added"}, b"{}") == []
    with pytest.raises(AppError):
        host.parse_webhook({"X-Event-Key": "pr:opened"}, b"[1]")


# --- behaviour against a stub host ------------------------------------------------------


def _page(values: list[Any], next_start: int | None = None) -> dict[str, Any]:
    return {
        "values": values,
        "size": len(values),
        "isLastPage": next_start is None,
        **({"nextPageStart": next_start} if next_start is not None else {}),
    }


def _repo(slug: str, key: str = "WID", name: str | None = None) -> dict[str, Any]:
    return {"slug": slug, "id": 84, "name": name or slug.title(), "project": {"key": key}}


def test_repositories_follow_next_page_start(stub: Callable[[Handler], StubHost]) -> None:
    def handle(seen: Seen) -> Reply:
        if seen.query.get("start") == "1":
            return Reply(body=_page([_repo("two")]))
        return Reply(body=_page([_repo("one")], next_start=1))

    host = stub(handle)
    repos = list(provider(host.url).list_repositories(namespace="WID"))
    assert [r.name for r in repos] == ["WID/one", "WID/two"]
    assert repos[0].clone_url == f"{host.url}/scm/wid/one.git"  # no links in the answer: the /scm convention
    assert [s.path for s in host.seen] == ["/rest/api/1.0/projects/WID/repos"] * 2


# --- pull request listing: correct whichever date order=NEWEST sorts by ---------------------

SINCE = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)  # what the engine passes as updated_since
PULLS = "/rest/api/1.0/projects/WID/repos/widgets/pull-requests"
_PR_TEMPLATE = json.loads(fixture("pr_opened.json"))["pullRequest"]


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _pr(number: int, state: str, created: datetime, updated: datetime | None = None) -> dict[str, Any]:
    """A pull request shaped like the webhook fixture (which fits the 9.2 schema), re-dated."""
    pr: dict[str, Any] = copy.deepcopy(_PR_TEMPLATE)
    closed = state != "OPEN"
    pr.update(
        id=number,
        title=f"WID-{number} change {number}",
        state=state,
        open=not closed,
        closed=closed,
        createdDate=_ms(created),
        updatedDate=_ms(updated or created),
    )
    if closed:
        pr["closedDate"] = pr["updatedDate"]
    pr["links"] = {
        "self": [{"href": f"https://bitbucket.example.com/projects/WID/repos/widgets/pull-requests/{number}"}]
    }
    return pr


class FakePullRequests:
    """``GET .../pull-requests`` as Data Center answers it: ``state`` filter (OPEN by default),
    ``order=NEWEST`` by ``sort_key`` (the undocumented part), ``start``/``limit`` pages."""

    def __init__(self, prs: list[dict[str, Any]], sort_key: str) -> None:
        self.prs, self.sort_key = prs, sort_key

    def __call__(self, seen: Seen) -> Reply:
        assert seen.path == PULLS and seen.query["order"] == "NEWEST"
        state = seen.query.get("state", "OPEN")
        rows = [p for p in self.prs if state == "ALL" or p["state"] == state]
        rows.sort(key=lambda p: (p[self.sort_key], p["id"]), reverse=True)
        start, limit = int(seen.query.get("start", "0")), int(seen.query["limit"])
        following = start + limit if start + limit < len(rows) else None
        return Reply(body={**_page(rows[start : start + limit], following), "start": start, "limit": limit})


def _requests(host: StubHost) -> list[tuple[str, int]]:
    return [(s.query["state"], int(s.query.get("start", "0"))) for s in host.seen]


def _history() -> list[dict[str, Any]]:
    """234 pull requests around ``SINCE``; 500-503 changed since, nothing else did."""
    day, hour = timedelta(days=1), timedelta(hours=1)
    old = [_pr(n, "MERGED", SINCE - 400 * day + n * hour) for n in range(1, 151)]
    old = [{**p, "updatedDate": p["createdDate"] + 86_400_000 * (p["id"] % 5)} for p in old]  # varied lags
    recent = [_pr(300 + n, "MERGED", SINCE - 3 * day + n * timedelta(minutes=1)) for n in range(1, 81)]
    recent = [{**p, "updatedDate": p["createdDate"] + 3_600_000} for p in recent]  # merged within the hour
    return [
        *old,
        *recent,
        _pr(500, "OPEN", SINCE + hour),  # new
        _pr(501, "MERGED", SINCE - 5 * day, SINCE + 2 * hour),  # created 5 days before SINCE, merged since
        _pr(502, "OPEN", SINCE - 450 * day, SINCE + 3 * hour),  # ancient, open, pushed to since
        _pr(503, "MERGED", SINCE - 500 * day, SINCE + 4 * hour),  # ancient, merged since
    ]


def test_pull_requests_newest_by_created(stub: Callable[[Handler], StubHost], caplog: pytest.LogCaptureFixture) -> None:
    """If NEWEST sorts by creation, old pull requests updated since sit deep in the ALL listing."""
    host = stub(FakePullRequests(_history(), "createdDate"))
    caplog.set_level("INFO", logger="connect_app.hosts.bitbucket_dc")
    found = list(provider(host.url).list_pull_requests(REPO, updated_since=SINCE))
    # 500 is new; 501 is within the creation lookback of the ALL walk (81st by creation);
    # 502 comes from the OPEN listing; 500 is in both listings and comes once
    assert sorted(int(p.external_id) for p in found) == [500, 501, 502]
    assert {p.external_id: p.state for p in found}["501"] is PullRequestState.MERGED
    # ALL pages 1-2 hold PRs created within the lookback; page 3 does not, and nothing on it changed
    assert _requests(host) == [("ALL", 0), ("ALL", 50), ("ALL", 100), ("OPEN", 0)]
    assert "order=NEWEST by createdDate" in caplog.text


def test_pull_requests_newest_by_created_full_scan_backstop(stub: Callable[[Handler], StubHost]) -> None:
    """503, created 500 days ago and merged since, is out of an incremental listing's reach when
    NEWEST sorts by creation (documented); the full scan (updated_since=None) lists it."""
    host = stub(FakePullRequests(_history(), "createdDate"))
    p = provider(host.url)
    assert "503" not in {pr.external_id for pr in p.list_pull_requests(REPO, updated_since=SINCE)}
    host.seen.clear()
    everything = list(p.list_pull_requests(REPO))
    assert len(everything) == len({pr.external_id for pr in everything}) == 234
    assert next(pr for pr in everything if pr.external_id == "503").state is PullRequestState.MERGED
    assert _requests(host) == [("ALL", 0), ("ALL", 100), ("ALL", 200)]


def test_pull_requests_newest_by_updated(stub: Callable[[Handler], StubHost], caplog: pytest.LogCaptureFixture) -> None:
    """If NEWEST sorts by update, the first page shows it and the walk stops there: one request."""
    host = stub(FakePullRequests(_history(), "updatedDate"))
    caplog.set_level("INFO", logger="connect_app.hosts.bitbucket_dc")
    found = list(provider(host.url).list_pull_requests(REPO, updated_since=SINCE))
    assert [p.external_id for p in found] == ["503", "502", "501", "500"]
    assert _requests(host) == [("ALL", 0)]  # no OPEN listing: the ALL walk is exact
    assert "order=NEWEST by updatedDate" in caplog.text


@pytest.mark.parametrize(
    "sort_key, expected",
    [("createdDate", [("ALL", 0), ("OPEN", 0)]), ("updatedDate", [("ALL", 0)])],
)
def test_pull_requests_stop_early_when_nothing_changed(
    stub: Callable[[Handler], StubHost], sort_key: str, expected: list[tuple[str, int]]
) -> None:
    created = [SINCE - timedelta(days=400) + n * timedelta(hours=1) for n in range(1, 201)]
    prs = [_pr(n, "OPEN" if n % 40 == 0 else "MERGED", c, c + timedelta(days=n % 7)) for n, c in enumerate(created, 1)]
    host = stub(FakePullRequests(prs, sort_key))
    assert list(provider(host.url).list_pull_requests(REPO, updated_since=SINCE)) == []
    assert _requests(host) == expected  # the first of four ALL pages; OPEN unless proven unneeded


def test_pull_requests_without_evidence_list_open_too(stub: Callable[[Handler], StubHost]) -> None:
    """A page that cannot tell the two orders apart: the OPEN listing runs."""
    pr = _pr(1, "OPEN", SINCE - timedelta(days=30), SINCE + timedelta(minutes=1))
    host = stub(FakePullRequests([pr], "updatedDate"))
    assert [p.external_id for p in provider(host.url).list_pull_requests(REPO, updated_since=SINCE)] == ["1"]
    assert _requests(host) == [("ALL", 0), ("OPEN", 0)]


def test_pull_requests_deduplicated_keeping_newer_copies(stub: Callable[[Handler], StubHost]) -> None:
    """Each pull request comes once, unless a later page or listing shows it updated again."""
    minute = timedelta(minutes=1)
    first = [_pr(3, "OPEN", SINCE, SINCE + 9 * minute), _pr(2, "OPEN", SINCE, SINCE + 8 * minute)]
    # a PR was deleted before the second page was read: the offsets shifted and 2 comes again
    second = [_pr(2, "OPEN", SINCE, SINCE + 8 * minute), _pr(1, "OPEN", SINCE, SINCE + 7 * minute)]
    # between the two listings someone pushed to 3; 2 is unchanged
    open_now = [_pr(3, "OPEN", SINCE, SINCE + 11 * minute), _pr(2, "OPEN", SINCE, SINCE + 8 * minute)]

    def handle(seen: Seen) -> Reply:
        if seen.query["state"] == "OPEN":
            return Reply(body=_page(open_now))
        return Reply(body=_page(second) if seen.query.get("start") == "2" else _page(first, next_start=2))

    host = stub(handle)
    p = provider(host.url)
    found = [(pr.external_id, pr.updated_at - SINCE) for pr in p.list_pull_requests(REPO, updated_since=SINCE)]
    assert found == [("3", 9 * minute), ("2", 8 * minute), ("1", 7 * minute), ("3", 11 * minute)]
    assert _requests(host) == [("ALL", 0), ("ALL", 2), ("OPEN", 0)]
    assert [pr.external_id for pr in p.list_pull_requests(REPO)] == ["3", "2", "1"]  # the full scan


def test_pull_requests_refuse_a_page_without_values(stub: Callable[[Handler], StubHost]) -> None:
    host = stub(lambda s: Reply(body={"size": 0, "isLastPage": True}))
    with pytest.raises(HostError, match="unexpected page shape"):
        list(provider(host.url).list_pull_requests(REPO, updated_since=SINCE))


def test_validate_reads_x_ausername(stub: Callable[[Handler], StubHost]) -> None:
    host = stub(
        lambda s: Reply(body=_page([]), headers={"X-AUSERNAME": "jsmith"} if "authorization" in s.headers else {})
    )
    assert provider(host.url).validate_credentials() == "jsmith"
    anonymous = stub(lambda s: Reply(body=_page([])))
    with pytest.raises(HostAuthError, match="anonymously"):
        provider(anonymous.url).validate_credentials()


def test_credentials_never_in_errors(stub: Callable[[Handler], StubHost]) -> None:
    def echo(seen: Seen) -> Reply:
        return Reply(401, {"errors": [{"message": f"Authentication failed for {seen.headers.get('authorization')}"}]})

    host = stub(echo)
    for creds in (PAT, PASSWORD):
        with pytest.raises(HostAuthError) as err:
            provider(host.url, creds).validate_credentials()
        assert TOKEN not in str(err.value) and "pa55-w0rd-jsmith" not in str(err.value)
    assert base64.b64decode(host.seen[-1].headers["authorization"][6:]) == b"jsmith:pa55-w0rd-jsmith"


def test_permission_levels(stub: Callable[[Handler], StubHost]) -> None:
    grants = {"admin-token": "REPO_ADMIN", "writer-token": "REPO_WRITE", "reader-token": None}

    def handle(seen: Seen) -> Reply:
        token = seen.headers["authorization"].removeprefix("Bearer ")
        if token not in grants:
            return Reply(404, {"errors": [{"message": "Repository WID/widgets does not exist."}]})
        if seen.path == "/rest/api/1.0/projects/WID/repos/widgets":
            return Reply(body=_repo("widgets", name="Widgets"))
        assert seen.query["name"] == "Widgets" and seen.query["projectkey"] == "WID"
        levels = ["REPO_ADMIN", "REPO_WRITE", None]
        granted = levels.index(grants[token]) <= levels.index(seen.query["permission"])
        # a same-named repository elsewhere must not count
        return Reply(body=_page([_repo("widgets-old", name="Widgets")] + ([_repo("widgets")] if granted else [])))

    host = stub(handle)
    p = provider(host.url)
    levels = {t: p.repository_permission(REPO, Credentials(AuthType.PAT, token=t)) for t in [*grants, "stranger"]}
    assert levels == {
        "admin-token": Permission.ADMIN,
        "writer-token": Permission.WRITE,
        "reader-token": Permission.READ,
        "stranger": Permission.NONE,
    }


def test_git_auth_and_capabilities() -> None:
    header = BitbucketDataCenter(SERVER, PAT).git_auth()
    assert header.http_header == f"Authorization: Bearer {TOKEN}" and header.username is None
    basic = BitbucketDataCenter(SERVER, PASSWORD).git_auth()
    assert (basic.username, basic.password) == ("jsmith", "pa55-w0rd-jsmith")
    assert "oauth" not in BitbucketDataCenter.info.capabilities
    with pytest.raises(ValidationError):
        BitbucketDataCenter(SERVER, Credentials(AuthType.OAUTH))


# --- contract tests against the official description (Prism) ---------------------------


def _document_gaps(doc: dict[str, Any]) -> None:
    """Serve ``/api/1.0`` (as ``prism_bitbucket_dc`` does) and fill two gaps of the 9.2 description:

    * responses of authenticated calls carry ``X-AUSERNAME`` (not declared) -> declare it on
      ``GET /api/latest/repos``;
    * ``RestWebhook`` has no ``id`` although created webhooks are addressed by it
      (``.../webhooks/{webhookId}``) -> declare it.
    """
    repos_path = next(path for path in doc["paths"] if path.endswith("/api/latest/repos"))  # after the /rest prefix
    repos_ok = doc["paths"][repos_path]["get"]["responses"]["200"]
    repos_ok.setdefault("headers", {})["X-AUSERNAME"] = {"schema": {"type": "string", "example": "jsmith"}}
    webhook = doc["components"]["schemas"]["RestWebhook"]
    webhook["properties"]["id"] = {"type": "integer", "format": "int32", "readOnly": True, "example": 10}
    alias_bitbucket_dc_versions(doc)


@pytest.fixture(scope="module")
def dc_mock() -> Iterator[PrismMock]:
    with PrismMock(shared_spec_path("bitbucket-datacenter"), transform=_document_gaps) as mock:
        yield mock


@pytest.mark.slow
def test_contract_every_call(dc_mock: PrismMock) -> None:
    p = provider(dc_mock.root_url)
    with dc_mock.recording() as rec:
        assert p.validate_credentials() == "jsmith"
        repos = list(p.list_repositories())
        in_project = list(p.list_repositories(namespace="WID"))
        branches = list(p.list_branches(REPO))
        prs = list(p.list_pull_requests(REPO))
        branch = p.create_branch(REPO, "feature/WID-1", "refs/heads/master")
        created = p.create_pull_request(REPO, source="feature/WID-1", target="master", title="WID-1", body="x")
        permission = p.repository_permission(REPO, Credentials(AuthType.PAT, token="user-token"))
        hook = p.register_webhook(REPO, "https://app.test/webhooks/2/abc", SECRET)
        p.delete_webhook(REPO, hook.id)
    rec.assert_all_valid(min_requests=10)
    assert repos and in_project and repos[0].name.count("/") == 1 and repos[0].clone_url.endswith(".git")
    assert branches[0].name and branches[0].head_sha == "8d51122def5632836d1cb1026e879069e10a1e13"
    # the description's example: updatedDate 14490759200 (epoch milliseconds), state DECLINED
    assert prs and prs[0].source_branch == "feature-ABC-1233" and prs[0].title == "Talking Nerdy"
    assert prs[0].updated_at == datetime.fromtimestamp(14490759.2, tz=UTC) and prs[0].state is PullRequestState.DECLINED
    assert branch.name and created.external_id and created.title
    assert permission >= Permission.READ
    assert hook.id == "10"
    sent = json.loads(next(e for e in rec.exchanges if e.url.endswith("/webhooks")).response.request.body)
    assert sent["configuration"] == {"secret": SECRET} and "repo:refs_changed" in sent["events"]


@pytest.mark.slow
def test_contract_incremental_pull_requests(dc_mock: PrismMock) -> None:
    """Both listings of an incremental sync are valid requests; the description's one example
    pull request (created 1970-06-07, updated 1970-06-17) answers both and comes once."""
    p = provider(dc_mock.root_url)
    with dc_mock.recording() as rec:
        prs = list(p.list_pull_requests(REPO, updated_since=datetime(1970, 6, 1, tzinfo=UTC)))
        none = list(p.list_pull_requests(REPO, updated_since=datetime(2024, 1, 1, tzinfo=UTC)))
    rec.assert_all_valid(min_requests=4)
    assert [(pr.external_id, pr.updated_at) for pr in prs] == [("1", datetime.fromtimestamp(14490759.2, tz=UTC))]
    assert none == []
    queries = [e.response.request.url.partition("?")[2] for e in rec.exchanges]
    assert [q.split("state=")[1].split("&")[0] for q in queries] == ["ALL", "OPEN", "ALL", "OPEN"]
    assert all("order=NEWEST" in q for q in queries)


@pytest.mark.slow
def test_contract_pull_request_body_matches_schema(dc_mock: PrismMock) -> None:
    """The spec's own example pull request, served back, keeps its refs (no lossy mapping)."""
    p = provider(dc_mock.root_url)
    with dc_mock.recording() as rec:
        pr = p.create_pull_request(REPO, source="refs/heads/a", target="master", title="t", body="b")
    sent = json.loads(rec.exchanges[0].response.request.body)
    assert sent["fromRef"]["id"] == "refs/heads/a" and sent["toRef"]["id"] == "refs/heads/master"
    assert sent["toRef"]["repository"] == {"slug": "widgets", "project": {"key": "WID"}}
    assert copy.copy(pr).target_branch


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "diagnostics_ping.json"))
def test_fixture_entities_match_the_description(name: str) -> None:
    """The webhook fixtures' pull request / repository / ref change objects fit the 9.2 schemas."""
    jsonschema = pytest.importorskip("jsonschema")
    components = json.loads(shared_spec_path("bitbucket-datacenter").read_text())["components"]
    body = json.loads(fixture(name))
    entities: list[tuple[str, Any]] = [("RestApplicationUser", body["actor"])]
    if "pullRequest" in body:
        entities.append(("RestPullRequest", body["pullRequest"]))
    else:
        entities += [("RestRepository", body["repository"])] + [("RestRefChange", c) for c in body["changes"]]
    for schema, entity in entities:
        validator = jsonschema.Draft4Validator({"$ref": f"#/components/schemas/{schema}", "components": components})
        assert [e.message for e in validator.iter_errors(entity)] == [], schema
