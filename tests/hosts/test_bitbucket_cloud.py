"""Bitbucket Cloud provider: webhooks with real HMACs, behaviour against a stub host, and
contract tests against Atlassian's OpenAPI description served by Prism."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
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
from connect_app.hosts.bitbucket_cloud import BitbucketCloud
from connect_app.hosts.bitbucket_common import sign
from tests.support.prism import PrismMock, fix_bitbucket_cloud, shared_spec_path
from tests.support.stub_host import Handler, Reply, Seen, StubHost, loopback_only

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bitbucket_cloud"
TOKEN = "ATCTT3xFfGN0-cloud-token-value-1234567890"
PAT = Credentials(AuthType.PAT, token=TOKEN)
APP_PASSWORD = Credentials(AuthType.PASSWORD, username="emma", password="app-pa55word-XYZ123")
SECRET = "webhook-secret-9f8e7d"
REPO = RemoteRepository(
    external_id="{85d08b4e-571d-44e9-a507-fa476535aa98}",
    name="acme/widgets",
    clone_url="https://bitbucket.org/acme/widgets.git",
    namespace="acme",
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


def provider(url: str, creds: Credentials = PAT, **kw: Any) -> BitbucketCloud:
    return BitbucketCloud(creds, base_url=url, allow_private=True, max_retries=0, **kw)


def test_is_a_git_host() -> None:
    assert isinstance(BitbucketCloud(PAT), GitHost)


# --- webhooks ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["repo_push.json", "pullrequest_created.json", "pullrequest_fulfilled.json"])
def test_webhook_signature_good(name: str) -> None:
    body = fixture(name)
    BitbucketCloud(PAT).verify_webhook({"x-hub-signature": sign(body, SECRET)}, body, SECRET)


@pytest.mark.parametrize(
    "headers_for, body_change, secret",
    [
        (lambda b: {"X-Hub-Signature": sign(b, SECRET)}, b" ", SECRET),  # tampered body
        (lambda b: {}, b"", SECRET),  # missing header
        (lambda b: {"X-Hub-Signature": sign(b, "other-secret")}, b"", SECRET),  # wrong secret
        (lambda b: {"X-Hub-Signature": sign(b, SECRET).replace("sha256=", "sha1=")}, b"", SECRET),
        (lambda b: {"X-Hub-Signature": sign(b, SECRET)}, b"", ""),  # no secret configured
    ],
    ids=["tampered", "missing", "wrong-secret", "wrong-algorithm", "no-secret"],
)
def test_webhook_signature_refused(
    headers_for: Callable[[bytes], dict[str, str]], body_change: bytes, secret: str
) -> None:
    body = fixture("repo_push.json")
    with pytest.raises(AuthError) as err:
        BitbucketCloud(PAT).verify_webhook(headers_for(body), body + body_change, secret)
    assert SECRET not in str(err.value)


def test_parse_push() -> None:
    headers = {"X-Event-Key": "repo:push", "X-Request-UUID": "req-1", "X-Hook-UUID": "hook-1"}
    [event] = BitbucketCloud(PAT).parse_webhook(headers, fixture("repo_push.json"))
    assert event.type is WebhookEventType.PUSH
    assert event.delivery_id == "req-1"
    assert event.repository_external_id == REPO.external_id and event.repository_name == "acme/widgets"
    assert event.refs == (
        RefUpdate(
            "refs/heads/main", "a3d6e0e2b4c1f7b9d8e5c2a1f0b9e8d7c6b5a493", "f09c8889a2d234985734958795a31589cd91ffda"
        ),
        RefUpdate("refs/tags/v1.2.0", None, "f09c8889a2d234985734958795a31589cd91ffda"),
        RefUpdate("refs/heads/WID-9-old-spike", "22671f0349857934857983457983475ec39f196b", None),
    )
    assert event.commit_ids == ("f09c8889a2d234985734958795a31589cd91ffda", "22671f0349857934857983457983475ec39f196b")


@pytest.mark.parametrize(
    "key, name, action, state",
    [
        ("pullrequest:created", "pullrequest_created.json", PullRequestAction.OPENED, PullRequestState.OPEN),
        ("pullrequest:fulfilled", "pullrequest_fulfilled.json", PullRequestAction.MERGED, PullRequestState.MERGED),
        ("pullrequest:rejected", "pullrequest_rejected.json", PullRequestAction.DECLINED, PullRequestState.DECLINED),
    ],
)
def test_parse_pull_request(key: str, name: str, action: PullRequestAction, state: PullRequestState) -> None:
    [event] = BitbucketCloud(PAT).parse_webhook({"x-event-key": key, "x-request-uuid": "r"}, fixture(name))
    assert event.type is WebhookEventType.PULL_REQUEST and event.pull_request_action is action
    pr = event.pull_request
    assert pr is not None and pr.state is state
    assert (pr.external_id, pr.source_branch, pr.target_branch) == ("7", "feature/WID-12-sizing", "main")
    assert pr.url == "https://bitbucket.org/acme/widgets/pull-requests/7" and pr.author == "Emma Example"
    assert pr.updated_at.tzinfo is not None and pr.title.startswith("WID-12")


def test_unknown_event_is_ignored_and_bad_json_refused() -> None:
    host = BitbucketCloud(PAT)
    assert host.parse_webhook({"X-Event-Key": "issue:created"}, b"{}") == []
    with pytest.raises(AppError):
        host.parse_webhook({"X-Event-Key": "repo:push"}, b"not json")


# --- behaviour against a stub host ------------------------------------------------------


def _page(values: list[Any], next_url: str | None = None) -> dict[str, Any]:
    return {"values": values, "pagelen": len(values), **({"next": next_url} if next_url else {})}


def _pr(number: int, updated: str, state: str = "OPEN") -> dict[str, Any]:
    return {
        "id": number,
        "title": f"PR {number}",
        "state": state,
        "source": {"branch": {"name": f"b{number}"}},
        "destination": {"branch": {"name": "main"}},
        "updated_on": updated,
        "links": {"html": {"href": f"https://bitbucket.org/acme/widgets/pull-requests/{number}"}},
    }


def test_pull_requests_follow_next_map_states_and_stop_at_updated_since(stub: Callable[[Handler], StubHost]) -> None:
    def handle(seen: Seen) -> Reply:
        if seen.query.get("page") == "2":
            return Reply(body=_page([_pr(2, "2024-05-01T00:00:00+00:00"), _pr(1, "2024-01-01T00:00:00+00:00")]))
        nxt = f"{host.url}/2.0/repositories/acme/widgets/pullrequests?page=2"
        return Reply(body=_page([_pr(4, "2024-06-01T00:00:00Z"), _pr(3, "2024-05-20T00:00:00Z", "SUPERSEDED")], nxt))

    host = stub(handle)
    prs = list(provider(host.url + "/2.0").list_pull_requests(REPO, updated_since=datetime(2024, 3, 1, tzinfo=UTC)))
    assert [p.external_id for p in prs] == ["4", "3", "2"]
    assert prs[1].state is PullRequestState.DECLINED
    first = host.seen[0]
    assert first.path == "/2.0/repositories/acme/widgets/pullrequests" and first.query["sort"] == "-updated_on"
    assert first.query["state"] == "SUPERSEDED"  # the stub keeps the last of the repeated values
    assert len(host.seen) == 2


def test_stops_without_fetching_the_next_page_when_older(stub: Callable[[Handler], StubHost]) -> None:
    host = stub(lambda s: Reply(body=_page([_pr(1, "2023-01-01T00:00:00Z")], f"{host.url}/2.0/x?page=2")))
    assert (
        list(provider(host.url + "/2.0").list_pull_requests(REPO, updated_since=datetime(2024, 1, 1, tzinfo=UTC))) == []
    )
    assert len(host.seen) == 1


def test_access_token_falls_back_to_workspace(stub: Callable[[Handler], StubHost]) -> None:
    def handle(seen: Seen) -> Reply:
        if seen.path == "/2.0/user":
            return Reply(403, {"type": "error", "error": {"message": "Access token cannot access this resource"}})
        return Reply(body=_page([]))

    host = stub(handle)
    assert provider(host.url + "/2.0", workspace="acme").validate_credentials() == "access token for acme"
    assert host.seen[1].path == "/2.0/repositories/acme"
    with pytest.raises(HostAuthError, match="set the workspace"):
        provider(host.url + "/2.0").validate_credentials()


def test_credentials_never_in_errors(stub: Callable[[Handler], StubHost]) -> None:
    def echo(seen: Seen) -> Reply:
        return Reply(
            401, {"type": "error", "error": {"message": f"bad credentials {seen.headers.get('authorization')}"}}
        )

    host = stub(echo)
    for creds in (PAT, APP_PASSWORD):
        with pytest.raises(HostAuthError) as err:
            provider(host.url + "/2.0", creds).validate_credentials()
        text = str(err.value) + repr(err.value)
        assert TOKEN not in text and "app-pa55word-XYZ123" not in text
    basic = host.seen[-1].headers["authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"emma:app-pa55word-XYZ123"


def test_permission_from_workspace_grants_then_public_read(stub: Callable[[Handler], StubHost]) -> None:
    grants: dict[str, list[Any]] = {"alice": [{"permission": "write"}], "bob": []}

    def handle(seen: Seen) -> Reply:
        user = seen.headers["authorization"].removeprefix("Bearer ")
        if seen.path.endswith("/permissions/repositories"):
            assert seen.query["q"] == 'repository.full_name="acme/widgets"'
            return Reply(body=_page(grants.get(user, [])))
        return Reply(200, {}) if user == "bob" else Reply(404, {"error": {"message": "not found"}})

    host = stub(handle)
    p = provider(host.url + "/2.0")
    assert p.repository_permission(REPO, Credentials(AuthType.OAUTH, token="alice")) is Permission.WRITE
    assert p.repository_permission(REPO, Credentials(AuthType.OAUTH, token="bob")) is Permission.READ
    assert p.repository_permission(REPO, Credentials(AuthType.OAUTH, token="carol")) is Permission.NONE
    assert host.seen[0].path == "/2.0/user/workspaces/acme/permissions/repositories"


def test_git_auth() -> None:
    token_auth = BitbucketCloud(PAT).git_auth()
    assert (token_auth.username, token_auth.password) == ("x-token-auth", TOKEN)
    password_auth = BitbucketCloud(APP_PASSWORD).git_auth()
    assert (password_auth.username, password_auth.password) == ("emma", "app-pa55word-XYZ123")
    assert TOKEN not in repr(token_auth)


def test_oauth_flow(stub: Callable[[Handler], StubHost]) -> None:
    def handle(seen: Seen) -> Reply:
        form = dict(urllib.parse.parse_qsl(seen.body.decode()))
        assert seen.headers["authorization"] == "Basic " + base64.b64encode(b"client-id:client-s3cret").decode()
        if form.get("code") == "used-code":
            return Reply(400, {"error": "invalid_grant", "error_description": "used-code is no longer valid"})
        return Reply(body={"access_token": f"acc-{form['grant_type']}", "refresh_token": "ref-2", "expires_in": 7200})

    host = stub(handle)
    p = BitbucketCloud(
        PAT, oauth_client_id="client-id", oauth_client_secret="client-s3cret", oauth_url=host.url, allow_private=True
    )
    url = urllib.parse.urlsplit(p.authorize_url(state="st4te", redirect_uri="https://app.test/cb"))
    query = dict(urllib.parse.parse_qsl(url.query))
    assert url.path.endswith("/authorize") and query["state"] == "st4te" and query["response_type"] == "code"
    tokens = p.exchange_code(code="abc", redirect_uri="https://app.test/cb")
    assert tokens.access_token == "acc-authorization_code" and tokens.refresh_token == "ref-2"
    assert tokens.expires_at is not None and "acc-" not in repr(tokens)
    assert p.refresh("ref-1").access_token == "acc-refresh_token"
    with pytest.raises(HostAuthError) as err:
        p.exchange_code(code="used-code", redirect_uri="https://app.test/cb")
    assert "used-code" not in str(err.value) and "client-s3cret" not in str(err.value)
    with pytest.raises(ValidationError):
        BitbucketCloud(PAT).authorize_url(state="s", redirect_uri="https://app.test/cb")


def test_bad_repository_name_is_refused() -> None:
    with pytest.raises(ValidationError):
        list(BitbucketCloud(PAT).list_branches(RemoteRepository("x", "no-slash", "https://x")))


# --- contract tests against the official description (Prism) ---------------------------


def _declare_documented_bodies(doc: dict[str, Any]) -> None:
    """Gaps of the description that its own prose documents (on top of ``fix_bitbucket_cloud``):

    * ``POST .../hooks`` shows its JSON body only in a curl example -> declare that body;
    * ``GET .../pullrequests`` says "repeat the ``state`` parameter for each state" but
      declares a single string -> declare an exploded array of the same enum.
    """
    fix_bitbucket_cloud(doc)
    for path, item in doc["paths"].items():
        if path.endswith("/repositories/{workspace}/{repo_slug}/hooks") and "requestBody" not in item["post"]:
            properties = {
                "description": {"type": "string"},
                "url": {"type": "string", "format": "uri"},
                "active": {"type": "boolean"},
                "secret": {"type": "string"},
                "events": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            }
            schema = {"type": "object", "properties": properties, "required": ["url", "events"]}
            item["post"]["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        if path.endswith("/repositories/{workspace}/{repo_slug}/pullrequests"):
            for param in item["get"].get("parameters", []):
                if param.get("name") == "state":
                    param["schema"] = {"type": "array", "items": param["schema"]}
                    param["explode"] = True


@pytest.fixture(scope="module")
def cloud_mock() -> Iterator[PrismMock]:
    with PrismMock(shared_spec_path("bitbucket-cloud"), transform=_declare_documented_bodies) as mock:
        yield mock


@pytest.mark.slow
def test_contract_every_call(cloud_mock: PrismMock) -> None:
    p = provider(cloud_mock.base_url, workspace="acme")
    with cloud_mock.recording() as rec:
        assert p.validate_credentials()  # /user example: display_name "string"
        first = next(iter(p.list_repositories()))
        assert first.name and first.clone_url
        # Example pages link to a next page on api.bitbucket.org: read the first item only.
        branch = next(iter(p.list_branches(REPO)))
        assert branch.name and branch.head_sha
        prs = p.list_pull_requests(REPO)
        pr = next(iter(prs), None)
        created_branch = p.create_branch(REPO, "feature/WID-1", "a3d6e0e2b4c1f7b9d8e5c2a1f0b9e8d7c6b5a493")
        from_name = p.create_branch(REPO, "feature/WID-2", "main")
        created_pr = p.create_pull_request(REPO, source="feature/WID-1", target="main", title="WID-1", body="x")
        permission = p.repository_permission(REPO, Credentials(AuthType.OAUTH, token="user-token"))
        hook = p.register_webhook(REPO, "https://app.test/webhooks/1/abc", SECRET)
        p.delete_webhook(REPO, hook.id)
    rec.assert_all_valid(min_requests=11)
    assert created_branch.name and from_name.name
    assert permission in (Permission.READ, Permission.WRITE, Permission.ADMIN)
    assert hook.id
    sent = json.loads(rec.exchanges[-2].response.request.body)
    assert sent["secret"] == SECRET and "repo:push" in sent["events"]
    if pr is not None:
        assert pr.state in PullRequestState
    assert created_pr.external_id


@pytest.mark.slow
def test_contract_foreign_next_link_is_not_followed(cloud_mock: PrismMock) -> None:
    # The description's example page says next = http://example.com: never follow it.
    repos = provider(cloud_mock.base_url).list_repositories(namespace="acme")
    next(repos)
    with pytest.raises(HostError, match="another host"):
        list(repos)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_fixture_entities_match_the_description(name: str) -> None:
    """The webhook fixtures' repository / pull request / account objects fit the 2.0 schemas."""
    jsonschema = pytest.importorskip("jsonschema")
    components = json.loads(shared_spec_path("bitbucket-cloud").read_text())["components"]
    body = json.loads(fixture(name))
    entities = {"repository": body["repository"], "account": body["actor"]}
    if "pullrequest" in body:
        entities["pullrequest"] = body["pullrequest"]
    for change in body.get("push", {}).get("changes", []):
        entities.update({f"ref#{i}": side for i, side in enumerate((change["old"], change["new"])) if side})
    for schema, entity in entities.items():
        validator = jsonschema.Draft4Validator(
            {"$ref": f"#/components/schemas/{schema.split('#')[0]}", "components": components}
        )
        assert [e.message for e in validator.iter_errors(entity)] == [], schema
