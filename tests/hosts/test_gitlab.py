"""GitLab provider against a loopback stub that checks the documented requests and
answers with the example payloads of GitLab's documentation (tests/fixtures/gitlab)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connect_app.errors import (
    AuthError,
    HostAuthError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
    ValidationError,
)
from connect_app.hosts.base import (
    AuthType,
    Credentials,
    GitHost,
    Permission,
    PullRequestAction,
    PullRequestState,
    RemoteRepository,
    RepositoryAction,
    WebhookEventType,
)
from connect_app.hosts.gitlab import GitLabHost, GitLabSelfManagedHost, access_to_permission
from connect_app.hosts.gitlab_events import signing_token_for
from connect_app.hosts.http_errors import HostStatusError
from tests.hosts.doc_stub import Answer, Call, DocStub, fixture, fixture_bytes, serve_stub

TOKEN = "glpat-Sup3rSecretTokenValue123"
USER_TOKEN = "user-oauth-T0kenValue-456"
SECRET = "hook-secret-7f3a9c"
NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def server() -> Iterator[DocStub]:
    with serve_stub() as s:
        yield s


@pytest.fixture
def stub(server: DocStub) -> DocStub:
    server.reset()
    return server


def host(stub: DocStub, **kw: object) -> GitLabSelfManagedHost:
    creds = Credentials(AuthType.PAT, token=TOKEN)
    return GitLabSelfManagedHost(
        creds, base_url=stub.url, allow_private=True, sleep=lambda _s: None, clock=lambda: NOW, **kw
    )


def form(call: Call) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(call.body.decode(), keep_blank_values=True))


def repo(external_id: str = "6") -> RemoteRepository:
    return RemoteRepository(external_id=external_id, name="brightbox/puppet", clone_url="http://x/y.git")


def test_is_a_git_host_with_the_documented_base_url() -> None:
    gitlab = GitLabHost(Credentials(AuthType.PAT, token=TOKEN))
    assert isinstance(gitlab, GitHost)
    assert gitlab.base_url == "https://gitlab.com/api/v4"
    assert gitlab.instance_url == "https://gitlab.com"


def test_validate_credentials_reads_user_and_token_scopes(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/user", Answer(body=fixture_bytes("gitlab", "user.json")))
    stub.on(
        "GET", "/api/v4/personal_access_tokens/self", Answer(body=fixture_bytes("gitlab", "personal_access_token.json"))
    )
    gitlab = host(stub)
    assert gitlab.validate_credentials() == "john_smith"
    assert gitlab.scope_warnings == []
    assert [c.raw_path for c in stub.calls] == ["/api/v4/user", "/api/v4/personal_access_tokens/self"]
    assert all(c.headers["private-token"] == TOKEN for c in stub.calls)
    assert all("authorization" not in c.headers for c in stub.calls)


def _token_with(scopes: list[str]) -> Answer:
    body = fixture("gitlab", "personal_access_token.json")
    body["scopes"] = scopes
    return Answer(body=body)


def test_validate_credentials_names_missing_scopes(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/user", Answer(body=fixture_bytes("gitlab", "user.json")))
    stub.on("GET", "/api/v4/personal_access_tokens/self", _token_with(["read_api"]))
    with pytest.raises(HostPermissionDenied) as e:
        host(stub).validate_credentials()
    assert "read_repository" in e.value.message and "read_api" in e.value.message
    assert TOKEN not in str(e.value)

    stub.on("GET", "/api/v4/personal_access_tokens/self", _token_with(["read_api", "read_repository"]))
    gitlab = host(stub)
    assert gitlab.validate_credentials() == "john_smith"
    assert any("write_repository" in w for w in gitlab.scope_warnings)


def test_validate_credentials_when_scopes_are_unknown(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/user", Answer(body=fixture_bytes("gitlab", "user.json")))
    gitlab = host(stub)  # /personal_access_tokens/self answers 404 (OAuth token, old GitLab)
    assert gitlab.validate_credentials() == "john_smith"


def test_refused_token_is_an_auth_error_without_the_token(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/user", Answer(401, {"message": f"401 Unauthorized {TOKEN}"}))
    with pytest.raises(HostAuthError) as e:
        host(stub).validate_credentials()
    assert TOKEN not in str(e.value) and TOKEN not in e.value.message


def test_bearer_header_for_oauth_credentials(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/user", Answer(body=fixture_bytes("gitlab", "user.json")))
    creds = Credentials(AuthType.OAUTH, token=TOKEN)
    GitLabSelfManagedHost(creds, base_url=stub.url + "/api/v4", allow_private=True).validate_credentials()
    assert stub.calls[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert "private-token" not in stub.calls[0].headers


def test_list_repositories_follows_keyset_link_pages(stub: DocStub) -> None:
    def projects(call: Call) -> Answer:
        if call.arg("id_after") is None:
            next_url = f"{stub.url}/api/v4/projects?pagination=keyset&order_by=id&sort=asc&id_after=4&per_page=100"
            return Answer(
                body=fixture_bytes("gitlab", "projects_simple.json"), headers={"Link": f'<{next_url}>; rel="next"'}
            )
        return Answer(body=[fixture("gitlab", "project_puppet.json")])

    stub.on("GET", "/api/v4/projects", projects)
    repos = list(host(stub).list_repositories())
    first = stub.calls[0]
    assert {k: first.arg(k) for k in ("membership", "simple", "per_page", "pagination", "order_by", "sort")} == {
        "membership": "true",
        "simple": "true",
        "per_page": "100",
        "pagination": "keyset",
        "order_by": "id",
        "sort": "asc",
    }
    assert stub.calls[1].arg("id_after") == "4"
    assert [(r.external_id, r.name, r.namespace) for r in repos] == [
        ("4", "diaspora/diaspora-client", "diaspora"),
        ("6", "brightbox/puppet", "brightbox"),
    ]
    assert repos[0].clone_url == "http://example.com/diaspora/diaspora-client.git"
    assert repos[1].default_branch == "master" and repos[1].private


def test_list_repositories_falls_back_to_offset_when_keyset_is_refused(stub: DocStub) -> None:
    def projects(call: Call) -> Answer:
        if call.arg("pagination") == "keyset":
            return Answer(405, fixture_bytes("gitlab", "keyset_refused.json"), {"Content-Type": "application/json"})
        if call.arg("page") is None:
            return Answer(body=fixture_bytes("gitlab", "projects_simple.json"), headers={"X-Next-Page": "2"})
        return Answer(body=[fixture("gitlab", "project_puppet.json")], headers={"X-Next-Page": ""})

    stub.on("GET", "/api/v4/projects", projects)
    repos = list(host(stub).list_repositories())
    assert [r.external_id for r in repos] == ["4", "6"]
    assert [(c.arg("pagination"), c.arg("page")) for c in stub.calls] == [("keyset", None), (None, None), (None, "2")]
    offset = stub.calls[1]
    assert {k: offset.arg(k) for k in ("membership", "simple", "per_page", "order_by", "sort")} == {
        "membership": "true",
        "simple": "true",
        "per_page": "100",
        "order_by": "id",
        "sort": "asc",
    }


def test_keyset_fallback_only_for_a_refusal_of_the_first_page(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/projects", Answer(403, {"message": "403 Forbidden"}))
    with pytest.raises(HostPermissionDenied):
        list(host(stub).list_repositories())
    assert len(stub.calls) == 1  # a 403 is not a keyset refusal: no second request

    stub.reset()

    def projects(call: Call) -> Answer:
        if call.arg("id_after") is None:
            next_url = f"{stub.url}/api/v4/projects?pagination=keyset&order_by=id&sort=asc&id_after=4&per_page=100"
            return Answer(
                body=fixture_bytes("gitlab", "projects_simple.json"), headers={"Link": f'<{next_url}>; rel="next"'}
            )
        return Answer(405, fixture_bytes("gitlab", "keyset_refused.json"))

    stub.on("GET", "/api/v4/projects", projects)
    with pytest.raises(HostStatusError) as e:
        list(host(stub).list_repositories())
    assert e.value.host_status == 405 and len(stub.calls) == 2  # restarting would repeat project 4


def test_group_repositories_follow_x_next_page(stub: DocStub) -> None:
    def projects(call: Call) -> Answer:
        if call.arg("page") is None:
            return Answer(body=fixture_bytes("gitlab", "projects_simple.json"), headers={"X-Next-Page": "2"})
        return Answer(body=[fixture("gitlab", "project_puppet.json")], headers={"X-Next-Page": ""})

    stub.on("GET", "/api/v4/groups/brightbox%2Finfra/projects", projects)
    repos = list(host(stub).list_repositories(namespace="brightbox/infra"))
    assert [r.external_id for r in repos] == ["4", "6"]
    assert [c.arg("page") for c in stub.calls] == [None, "2"]
    assert stub.calls[0].arg("include_subgroups") == "true"


def test_branches_and_create_branch(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/projects/6/repository/branches", Answer(body=fixture_bytes("gitlab", "branches.json")))
    stub.on(
        "POST", "/api/v4/projects/6/repository/branches", Answer(201, fixture_bytes("gitlab", "branch_created.json"))
    )
    gitlab = host(stub)
    [main] = list(gitlab.list_branches(repo()))
    assert (main.name, main.head_sha) == ("main", "7b5c3cc8be40ee161ae89a06bba6229da1032a0c")
    created = gitlab.create_branch(repo(), "newbranch", "main")
    post = stub.calls[-1]
    assert (post.arg("branch"), post.arg("ref")) == ("newbranch", "main")
    assert created.name == "newbranch"


def test_merge_requests_since_and_state_mapping(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/projects/6/merge_requests", Answer(body=fixture_bytes("gitlab", "merge_requests.json")))
    since = datetime(2017, 1, 1, 12, 0, tzinfo=UTC)
    [mr] = list(host(stub).list_pull_requests(repo(), updated_since=since))
    call = stub.calls[0]
    assert (call.arg("state"), call.arg("order_by"), call.arg("updated_after")) == (
        "all",
        "updated_at",
        "2017-01-01T12:00:00Z",
    )
    assert (mr.external_id, mr.state, mr.source_branch, mr.target_branch) == (
        "1",
        PullRequestState.MERGED,
        "test1",
        "main",
    )
    assert mr.author == "admin" and mr.url.endswith("/merge_requests/1")
    assert mr.updated_at == datetime(2017, 4, 29, 8, 46, tzinfo=UTC)


def test_create_merge_request_posts_documented_fields(stub: DocStub) -> None:
    stub.on("POST", "/api/v4/projects/6/merge_requests", Answer(201, fixture("gitlab", "merge_requests.json")[0]))
    mr = host(stub).create_pull_request(repo(), source="test1", target="main", title="test1", body="ABC-1 fix")
    assert stub.calls[0].json() == {
        "source_branch": "test1",
        "target_branch": "main",
        "title": "test1",
        "description": "ABC-1 fix",
    }
    assert mr.external_id == "1"


def test_permission_uses_the_users_token_and_highest_access_level(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/projects/6", Answer(body=fixture_bytes("gitlab", "project_puppet.json")))
    user = Credentials(AuthType.OAUTH, token=USER_TOKEN)
    assert host(stub).repository_permission(repo(), user) is Permission.ADMIN  # project 10, group 50
    assert stub.calls[0].headers["authorization"] == f"Bearer {USER_TOKEN}"
    assert host(stub).repository_permission(repo("404"), user) is Permission.NONE
    assert [access_to_permission(n) for n in (10, 20, 30, 40, 50)] == [
        Permission.READ,
        Permission.READ,
        Permission.WRITE,
        Permission.ADMIN,
        Permission.ADMIN,
    ]


def test_register_and_delete_webhook(stub: DocStub) -> None:
    stub.on("POST", "/api/v4/projects/6/hooks", Answer(201, fixture_bytes("gitlab", "project_hook.json")))
    stub.on("DELETE", "/api/v4/projects/6/hooks/1", Answer(204))
    gitlab = host(stub)
    hook = gitlab.register_webhook(repo(), "https://app.test/webhooks/1/abc", SECRET)
    sent = stub.calls[0].json()
    assert sent["url"] == "https://app.test/webhooks/1/abc" and sent["token"] == SECRET
    assert sent["push_events"] and sent["merge_requests_events"] and sent["enable_ssl_verification"]
    assert sent["signing_token"] != SECRET and sent["signing_token"].startswith("whsec_")
    assert hook.id == "1"
    gitlab.delete_webhook(repo(), hook.id)
    assert stub.calls[-1].method == "DELETE"


def test_errors_are_mapped(stub: DocStub) -> None:
    stub.on("GET", "/api/v4/projects/6/repository/branches", Answer(503, {"message": "down"}))
    stub.on(
        "GET",
        "/api/v4/projects/7/repository/branches",
        Answer(429, {"message": "slow down"}, {"RateLimit-Reset": str(int(NOW) + 3600), "RateLimit-Remaining": "0"}),
    )
    with pytest.raises(HostNotFound):
        list(host(stub).list_branches(repo("5")))
    with pytest.raises(HostUnavailable):
        list(host(stub).list_branches(repo("6")))
    with pytest.raises(RateLimited):
        list(host(stub).list_branches(repo("7")))


# --- webhooks ---------------------------------------------------------------------------


def _headers(event: str, **extra: str) -> dict[str, str]:
    return {
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": SECRET,
        "X-Gitlab-Event-UUID": "9cebe914-4827-408f-b014-cfa23a47a35f",
        "X-Gitlab-Webhook-UUID": "3c5c0404-c866-44bc-a5f6-452bb1bfc76e",
        "Idempotency-Key": "3a427872-00df-429c-9bc9-a9475de2efe4",
        **extra,
    }


def _signed(body: bytes, *, msg_id: str = "3a427872-00df-429c-9bc9-a9475de2efe4", at: int = int(NOW)) -> dict[str, str]:
    key = base64.b64decode(signing_token_for(SECRET).removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{at}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def test_verify_token_good_missing_wrong() -> None:
    gitlab = GitLabHost(Credentials(AuthType.PAT, token=TOKEN), clock=lambda: NOW)
    body = fixture_bytes("gitlab", "webhook_push.json")
    gitlab.verify_webhook(_headers("Push Hook"), body, SECRET)
    gitlab.verify_webhook({k.lower(): v for k, v in _headers("Push Hook").items()}, body, SECRET)
    missing = {k: v for k, v in _headers("Push Hook").items() if k != "X-Gitlab-Token"}
    with pytest.raises(AuthError):
        gitlab.verify_webhook(missing, body, SECRET)
    with pytest.raises(AuthError) as e:
        gitlab.verify_webhook(_headers("Push Hook", **{"X-Gitlab-Token": "nope"}), body, SECRET)
    assert SECRET not in str(e.value)


def test_verify_signed_delivery_good_tampered_replayed() -> None:
    gitlab = GitLabHost(Credentials(AuthType.PAT, token=TOKEN), clock=lambda: NOW)
    body = fixture_bytes("gitlab", "webhook_push.json")
    gitlab.verify_webhook(_headers("Push Hook", **_signed(body)), body, SECRET)
    with pytest.raises(AuthError):
        gitlab.verify_webhook(_headers("Push Hook", **_signed(body)), body.replace(b"master", b"main"), SECRET)
    with pytest.raises(AuthError):
        gitlab.verify_webhook(_headers("Push Hook", **_signed(body, at=int(NOW) - 3600)), body, SECRET)
    unsigned_id = _signed(body)
    del unsigned_id["webhook-id"]
    with pytest.raises(AuthError):
        gitlab.verify_webhook(_headers("Push Hook", **unsigned_id), body, SECRET)


def test_parse_push_hook() -> None:
    gitlab = GitLabHost(Credentials(AuthType.PAT, token=TOKEN))
    [event] = gitlab.parse_webhook(_headers("Push Hook"), fixture_bytes("gitlab", "webhook_push.json"))
    assert event.type is WebhookEventType.PUSH
    assert event.repository_external_id == "15" and event.repository_name == "mike/diaspora"
    assert event.delivery_id == "3a427872-00df-429c-9bc9-a9475de2efe4"
    assert event.refs[0].ref == "refs/heads/master"
    assert event.refs[0].before == "95790bf891e76fee5e1747ab589903a6a1f80f22"
    assert event.commit_ids == ("b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7")


def test_parse_merge_request_hook_actions() -> None:
    gitlab = GitLabHost(Credentials(AuthType.PAT, token=TOKEN))
    payload = fixture("gitlab", "webhook_merge_request.json")
    [event] = gitlab.parse_webhook(_headers("Merge Request Hook"), json.dumps(payload).encode())
    assert event.type is WebhookEventType.PULL_REQUEST and event.pull_request is not None
    assert event.pull_request_action is PullRequestAction.OPENED
    pr = event.pull_request
    assert (pr.external_id, pr.state, pr.source_branch, pr.target_branch) == (
        "1",
        PullRequestState.OPEN,
        "ms-viewport",
        "master",
    )
    assert pr.url == "http://example.com/diaspora/merge_requests/1" and event.repository_external_id == "1"
    for action, expected in [
        ("merge", PullRequestAction.MERGED),
        ("close", PullRequestAction.DECLINED),
        ("update", PullRequestAction.UPDATED),
    ]:
        payload["object_attributes"]["action"] = action
        [event] = gitlab.parse_webhook(_headers("Merge Request Hook"), json.dumps(payload).encode())
        assert event.pull_request_action is expected


def test_parse_system_hooks_and_unknown_events() -> None:
    gitlab = GitLabHost(Credentials(AuthType.PAT, token=TOKEN))
    [created] = gitlab.parse_webhook(
        _headers("System Hook"), fixture_bytes("gitlab", "system_hook_project_create.json")
    )
    [deleted] = gitlab.parse_webhook(
        _headers("System Hook"), fixture_bytes("gitlab", "system_hook_project_destroy.json")
    )
    assert (created.type, created.repository_action, created.repository_external_id) == (
        WebhookEventType.REPOSITORY,
        RepositoryAction.CREATED,
        "74",
    )
    assert (deleted.repository_action, deleted.repository_name) == (RepositoryAction.DELETED, "jsmith/underscore")
    assert gitlab.parse_webhook(_headers("Wiki Page Hook"), b'{"object_kind": "wiki_page"}') == []


# --- OAuth --------------------------------------------------------------------------------


def test_oauth_authorize_exchange_refresh(stub: DocStub) -> None:
    stub.on("POST", "/oauth/token", Answer(body=fixture_bytes("gitlab", "oauth_token.json")))
    gitlab = host(stub, client_id="app-id", client_secret="app-secret-value")
    url = gitlab.authorize_url(state="st4te", redirect_uri="https://app.test/oauth/gitlab")
    assert url.startswith(f"{stub.url}/oauth/authorize?")
    assert "state=st4te" in url and "response_type=code" in url and "client_id=app-id" in url
    tokens = gitlab.exchange_code(code="c0de", redirect_uri="https://app.test/oauth/gitlab")
    # docs.gitlab.com/api/oauth2/ "Authorization code flow": a form body (RestClient.post with a query string)
    # 'client_id=APP_ID&client_secret=APP_SECRET&code=RETURNED_CODE&grant_type=authorization_code&redirect_uri=...'
    assert stub.calls[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(stub.calls[0]) == {
        "client_id": "app-id",
        "client_secret": "app-secret-value",
        "grant_type": "authorization_code",
        "code": "c0de",
        "redirect_uri": "https://app.test/oauth/gitlab",
    }
    assert "private-token" not in stub.calls[0].headers and "authorization" not in stub.calls[0].headers
    assert tokens.refresh_token == "8257e65c97202ed1726cf9571600918f3bffb2544b26e00a61df9897668c33a1"
    assert tokens.expires_at == datetime.fromtimestamp(1607635748 + 7200, tz=UTC)  # created_at + expires_in
    # 'client_id=APP_ID&client_secret=APP_SECRET&refresh_token=REFRESH_TOKEN&grant_type=refresh_token&redirect_uri=...'
    gitlab.refresh(tokens.refresh_token, redirect_uri="https://app.test/oauth/gitlab")
    assert form(stub.calls[1]) == {
        "client_id": "app-id",
        "client_secret": "app-secret-value",
        "grant_type": "refresh_token",
        "refresh_token": tokens.refresh_token,
        "redirect_uri": "https://app.test/oauth/gitlab",
    }
    gitlab.refresh(tokens.refresh_token)
    assert "redirect_uri" not in form(stub.calls[2]) and form(stub.calls[2])["grant_type"] == "refresh_token"
    assert "8257e65c" not in repr(tokens)


def test_oauth_scopes_are_space_separated_and_state_is_required(stub: DocStub) -> None:
    gitlab = host(stub, client_id="app-id", client_secret="app-secret-value")
    url = urllib.parse.urlsplit(
        gitlab.authorize_url(state="a b&c=d", redirect_uri="https://app.test/cb", scopes=["read_user", "profile"])
    )
    query = dict(urllib.parse.parse_qsl(url.query))
    assert (url.path, query["scope"], query["state"]) == ("/oauth/authorize", "read_user profile", "a b&c=d")
    with pytest.raises(ValidationError):
        gitlab.authorize_url(state="", redirect_uri="https://app.test/cb")
    with pytest.raises(ValidationError, match="application id and secret"):
        host(stub).authorize_url(state="s", redirect_uri="https://app.test/cb")


def test_oauth_refused_grant_is_an_auth_error_without_secrets(stub: DocStub) -> None:
    # Doorkeeper's RFC 6749 §5.2 answer to a used or expired code
    refusal = {
        "error": "invalid_grant",
        "error_description": "The provided authorization grant is invalid, expired, revoked, does not match "
        "the redirection URI used in the authorization request, or was issued to another client.",
    }
    stub.on("POST", "/oauth/token", Answer(400, refusal))
    gitlab = host(stub, client_id="app-id", client_secret="app-secret-value")
    with pytest.raises(HostAuthError) as e:
        gitlab.exchange_code(code="c0de-used", redirect_uri="https://app.test/cb")
    assert "invalid_grant" in str(e.value) and "grant is invalid" in str(e.value)
    assert "app-secret-value" not in str(e.value) and "c0de-used" not in str(e.value)
