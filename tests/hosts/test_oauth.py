"""The shared OAuth authorization code flow (hosts/oauth.py), alone and as each host uses it.

Request shapes per host are the documented ones:
* GitHub, "Authorizing OAuth apps" (docs.github.com): ``GET /login/oauth/authorize`` with
  client_id, redirect_uri, scope, state; ``POST /login/oauth/access_token`` with client_id,
  client_secret, code, redirect_uri, and for refresh grant_type=refresh_token + refresh_token;
* GitLab, docs.gitlab.com/api/oauth2/ "Authorization code flow" (see test_gitlab.py);
* Bitbucket Cloud, "OAuth 2.0" in developer.atlassian.com/cloud/bitbucket: ``curl -X POST
  -u "client_id:secret" .../site/oauth2/access_token -d grant_type=authorization_code -d
  code={code}`` and ``-d grant_type=refresh_token -d refresh_token={refresh_token}``;
* Microsoft Entra ID v2.0 "authorization code flow" (learn.microsoft.com): authorize with
  client_id, response_type=code, redirect_uri, response_mode=query, scope, state; token
  requests with client_id, scope, code | refresh_token, redirect_uri, grant_type, client_secret.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from connect_app.errors import AuthError, HostAuthError, HostError, HostUnavailable, UnsafeInput, ValidationError
from connect_app.hosts.azure_devops import AzureDevOpsHost
from connect_app.hosts.base import AuthType, Credentials, OAuthTokens
from connect_app.hosts.bitbucket_cloud import BitbucketCloud
from connect_app.hosts.github import GitHubHost
from connect_app.hosts.gitlab import GitLabSelfManagedHost
from connect_app.hosts.http_errors import HostStatusError
from connect_app.hosts.oauth import ClientAuth, OAuthCodeFlow, check_state, new_state
from tests.support.stub_host import Handler, Reply, Seen, StubHost, loopback_only

CLIENT_ID = "client-id-123"
CLIENT_SECRET = "client-s3cret-value"
CODE = "one-time-c0de-xyz"
ACCESS = "access-t0ken-abc"
REFRESH = "refresh-t0ken-def"
API_TOKEN = "api-token-of-the-integration"
REDIRECT = "https://app.test/oauth/callback"
NOW = 1_700_000_000.0
TOKEN_ANSWER = {"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 3600, "token_type": "bearer"}


@pytest.fixture
def make_stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Handler], StubHost]]:
    """Token endpoints on loopback (nothing else is reachable), closed after the test."""
    loopback_only(monkeypatch)
    with contextlib.ExitStack() as running:

        def make(handler: Handler) -> StubHost:
            stub = StubHost(handler)
            running.callback(stub.close)
            return stub

        yield make


def form(seen: Seen) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(seen.body.decode(), keep_blank_values=True))


def flow(url: str, **kw: Any) -> OAuthCodeFlow:
    options: dict[str, Any] = {
        "name": "Example",
        "authorize_endpoint": f"{url}/oauth/authorize",
        "token_endpoint": f"{url}/oauth/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "http_options": {"allow_private": True, "max_retries": 0},
        "clock": lambda: NOW,
        **kw,
    }
    return OAuthCodeFlow(**options)


def query_of(url: str) -> tuple[str, dict[str, list[str]]]:
    parts = urllib.parse.urlsplit(url)
    return parts.path, urllib.parse.parse_qs(parts.query, keep_blank_values=True)


# --- state -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["st4te", "a b&c=d/é+%", new_state()])
def test_state_round_trips_unchanged(state: str) -> None:
    path, query = query_of(flow("https://login.example.com").authorize_url(state=state, redirect_uri=REDIRECT))
    assert path == "/oauth/authorize" and query["state"] == [state]
    check_state(state, query["state"][0])  # what the callback brings back is what we sent


def test_state_is_required_and_checked() -> None:
    with pytest.raises(ValidationError, match="state"):
        flow("https://login.example.com").authorize_url(state="", redirect_uri=REDIRECT)
    for returned in (None, "", "other-state"):
        with pytest.raises(AuthError):
            check_state("the-state", returned)
    assert new_state() != new_state() and len(new_state()) >= 40


def test_authorize_url_parameters_and_scope_separator() -> None:
    f = flow(
        "https://login.example.com",
        scopes=("read", "write"),
        scope_separator=",",
        authorize_params={"response_mode": "query"},
    )
    _, query = query_of(f.authorize_url(state="s", redirect_uri=REDIRECT))
    assert query == {
        "client_id": [CLIENT_ID],
        "redirect_uri": [REDIRECT],
        "response_type": ["code"],
        "state": ["s"],
        "scope": ["read,write"],
        "response_mode": ["query"],
    }
    _, query = query_of(f.authorize_url(state="s", redirect_uri=REDIRECT, scopes=["admin"]))
    assert query["scope"] == ["admin"]
    _, query = query_of(flow("https://x.test", response_type=None).authorize_url(state="s", redirect_uri=REDIRECT))
    assert "response_type" not in query and "scope" not in query  # no scopes: no scope parameter
    assert CLIENT_SECRET not in repr(f)


def test_not_configured_names_what_to_set() -> None:
    for client_id, secret in ((None, CLIENT_SECRET), (CLIENT_ID, None), ("", "")):
        f = flow("https://x.test", client_id=client_id, client_secret=secret, client_label="consumer key and secret")
        with pytest.raises(ValidationError, match="consumer key and secret"):
            f.authorize_url(state="s", redirect_uri=REDIRECT)
        with pytest.raises(ValidationError):
            f.exchange_code(code=CODE, redirect_uri=REDIRECT)


# --- token requests ------------------------------------------------------------------------


def test_form_client_auth_exchange_and_refresh(make_stub: Callable[[Handler], StubHost]) -> None:
    stub = make_stub(lambda seen: Reply(200, TOKEN_ANSWER))
    f = flow(stub.url)
    tokens = f.exchange_code(code=CODE, redirect_uri=REDIRECT)
    assert tokens == OAuthTokens(ACCESS, REFRESH, datetime.fromtimestamp(NOW + 3600, tz=UTC))
    assert form(stub.seen[0]) == {
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert stub.seen[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in stub.seen[0].headers
    f.refresh(REFRESH)
    assert form(stub.seen[1]) == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert ACCESS not in repr(tokens) and REFRESH not in repr(tokens)


def test_basic_client_auth_keeps_the_secret_out_of_the_body(make_stub: Callable[[Handler], StubHost]) -> None:
    stub = make_stub(lambda seen: Reply(200, TOKEN_ANSWER))
    flow(stub.url, client_auth=ClientAuth.BASIC).exchange_code(code=CODE, redirect_uri=REDIRECT)
    pair = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert stub.seen[0].headers["authorization"] == f"Basic {pair}"
    assert form(stub.seen[0]) == {"grant_type": "authorization_code", "code": CODE, "redirect_uri": REDIRECT}


def test_the_integrations_api_credentials_never_reach_the_token_endpoint(
    make_stub: Callable[[Handler], StubHost],
) -> None:
    stub = make_stub(lambda seen: Reply(200, TOKEN_ANSWER))
    options = {
        "allow_private": True,
        "auth": {"Authorization": f"Bearer {API_TOKEN}"},
        "credential_key": "integration-7",
        "decode_body": lambda body: b"not json",
    }
    flow(stub.url, http_options=options).exchange_code(code=CODE, redirect_uri=REDIRECT)
    assert API_TOKEN not in str(stub.seen[0].headers) and "authorization" not in stub.seen[0].headers


def test_scope_in_token_requests_and_issued_at_field(make_stub: Callable[[Handler], StubHost]) -> None:
    answer = {"access_token": ACCESS, "expires_in": "7200", "created_at": 1607635748}
    stub = make_stub(lambda seen: Reply(200, answer))
    f = flow(
        stub.url, scopes=("a/vso.code", "offline_access"), scope_in_token_request=True, issued_at_field="created_at"
    )
    tokens = f.refresh(REFRESH)
    assert form(stub.seen[0])["scope"] == "a/vso.code offline_access"
    assert tokens.expires_at == datetime.fromtimestamp(1607635748 + 7200, tz=UTC) and tokens.refresh_token is None


@pytest.mark.parametrize(
    ("answer", "expires_at"),
    [
        ({"access_token": ACCESS}, None),  # GitHub OAuth apps: tokens that do not expire
        ({"access_token": ACCESS, "expires_in": 28800}, datetime.fromtimestamp(NOW + 28800, tz=UTC)),
        ({"access_token": ACCESS, "expires_in": True}, None),
        ({"access_token": ACCESS, "expires_in": "soon"}, None),
    ],
)
def test_expires_in_becomes_expires_at(
    make_stub: Callable[[Handler], StubHost], answer: dict[str, Any], expires_at: datetime | None
) -> None:
    stub = make_stub(lambda seen: Reply(200, answer))
    assert flow(stub.url).exchange_code(code=CODE, redirect_uri=REDIRECT).expires_at == expires_at


def test_code_exchange_without_grant_type(make_stub: Callable[[Handler], StubHost]) -> None:
    stub = make_stub(lambda seen: Reply(200, TOKEN_ANSWER))
    flow(stub.url, code_grant_type=False).exchange_code(code=CODE, redirect_uri=REDIRECT)
    assert "grant_type" not in form(stub.seen[0])


@pytest.mark.parametrize(
    ("reply", "error", "says"),
    [
        # RFC 6749 §5.2 on a 400 (GitLab/Doorkeeper, Bitbucket, Entra ID)
        (
            Reply(400, {"error": "invalid_grant", "error_description": f"code {CODE} was already used"}),
            HostAuthError,
            "invalid_grant",
        ),
        # GitHub: 200 with the error in the body
        (
            Reply(200, {"error": "bad_verification_code", "error_description": f"The code {CODE} is incorrect."}),
            HostAuthError,
            "is incorrect",
        ),
        (
            Reply(401, {"error": "invalid_client", "error_description": "Client authentication failed"}),
            HostAuthError,
            "invalid_client",
        ),
        (Reply(503, "maintenance", {"Content-Type": "text/plain"}), HostUnavailable, "503"),
        (Reply(200, {"token_type": "bearer"}), HostError, "did not return an access token"),
        (Reply(200, ["not", "an", "object"]), HostError, "did not answer with a token"),
    ],
)
def test_refusals_are_clear_and_never_carry_secrets(
    make_stub: Callable[[Handler], StubHost],
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
    error: type[Exception],
    says: str,
) -> None:
    stub = make_stub(lambda seen: reply)
    with caplog.at_level(logging.DEBUG), pytest.raises(error) as e:
        flow(stub.url).exchange_code(code=CODE, redirect_uri=REDIRECT)
    assert says in str(e.value)
    text = f"{e.value!s} {e.value!r} {caplog.text}"
    assert CODE not in text and CLIENT_SECRET not in text


def test_a_redirecting_token_endpoint_gets_no_second_request(make_stub: Callable[[Handler], StubHost]) -> None:
    elsewhere = make_stub(lambda seen: Reply(200, TOKEN_ANSWER))
    stub = make_stub(lambda seen: Reply(307, headers={"Location": f"{elsewhere.url}/oauth/token"}))
    with pytest.raises(HostStatusError):
        flow(stub.url).exchange_code(code=CODE, redirect_uri=REDIRECT)
    assert len(stub.seen) == 1 and elsewhere.seen == []


def test_token_endpoint_must_pass_the_ssrf_guard() -> None:
    f = flow("http://169.254.169.254", http_options={"allow_private": True})
    with pytest.raises(UnsafeInput):  # link-local / metadata: refused even with allow_private
        f.exchange_code(code=CODE, redirect_uri=REDIRECT)


def test_tokens_and_secrets_are_never_logged(
    make_stub: Callable[[Handler], StubHost], caplog: pytest.LogCaptureFixture
) -> None:
    stub = make_stub(lambda seen: Reply(200, TOKEN_ANSWER))
    f = flow(stub.url)
    with caplog.at_level(logging.DEBUG):
        f.authorize_url(state="s", redirect_uri=REDIRECT)
        f.exchange_code(code=CODE, redirect_uri=REDIRECT)
        f.refresh(REFRESH)
    assert caplog.records  # the client does log each request...
    for secret in (CODE, CLIENT_SECRET, ACCESS, REFRESH):
        assert secret not in caplog.text  # ...but never what it carries


# --- the four hosts use it with their documented shapes ----------------------------------------

HostFactory = Callable[[str], Any]


def _github(url: str) -> Any:
    creds = Credentials(AuthType.PAT, token=API_TOKEN)
    return GitHubHost(
        creds,
        api_url=url,
        web_url=url,
        allow_private=True,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=CLIENT_SECRET,
    )


def _gitlab(url: str) -> Any:
    creds = Credentials(AuthType.PAT, token=API_TOKEN)
    return GitLabSelfManagedHost(
        creds, base_url=url, allow_private=True, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )


def _bitbucket(url: str) -> Any:
    creds = Credentials(AuthType.PAT, token=API_TOKEN)
    return BitbucketCloud(
        creds, oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET, oauth_url=url, allow_private=True
    )


def _azure(url: str) -> Any:
    creds = Credentials(AuthType.OAUTH, token=API_TOKEN)
    return AzureDevOpsHost.services(
        "fabrikam",
        creds,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=CLIENT_SECRET,
        entra_authority=url,
        allow_private=True,
    )


ADO_SCOPES = (
    "499b84ac-1321-427f-aa17-267ca6975798/vso.code_write "
    "499b84ac-1321-427f-aa17-267ca6975798/vso.hooks_write offline_access"
)
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
SECRETS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


@dataclass(frozen=True)
class HostCase:
    name: str
    factory: HostFactory
    authorize_path: str
    authorize: dict[str, str]  # the authorize URL's query
    token_path: str
    exchange: dict[str, str]  # the code exchange's form
    refresh: dict[str, str]  # the refresh's form
    authorization: str | None = None  # the token requests' Authorization header


HOSTS = [
    HostCase(
        "github",
        _github,
        "/login/oauth/authorize",
        {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": "st", "scope": "repo admin:repo_hook read:user"},
        "/login/oauth/access_token",
        {**SECRETS, "code": CODE, "redirect_uri": REDIRECT},
        {**SECRETS, "grant_type": "refresh_token", "refresh_token": REFRESH},
    ),
    HostCase(
        "gitlab",
        _gitlab,
        "/oauth/authorize",
        {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code", "state": "st", "scope": "api"},
        "/oauth/token",
        {**SECRETS, "code": CODE, "grant_type": "authorization_code", "redirect_uri": REDIRECT},
        {**SECRETS, "refresh_token": REFRESH, "grant_type": "refresh_token"},
    ),
    HostCase(
        "bitbucket-cloud",
        _bitbucket,
        "/authorize",
        {"client_id": CLIENT_ID, "response_type": "code", "state": "st", "redirect_uri": REDIRECT},
        "/access_token",
        {"grant_type": "authorization_code", "code": CODE, "redirect_uri": REDIRECT},
        {"grant_type": "refresh_token", "refresh_token": REFRESH},
        BASIC,
    ),
    HostCase(
        "azure-devops",
        _azure,
        "/organizations/oauth2/v2.0/authorize",
        {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "response_mode": "query",
            "scope": ADO_SCOPES,
            "state": "st",
        },
        "/organizations/oauth2/v2.0/token",
        {**SECRETS, "scope": ADO_SCOPES, "code": CODE, "redirect_uri": REDIRECT, "grant_type": "authorization_code"},
        {**SECRETS, "scope": ADO_SCOPES, "refresh_token": REFRESH, "grant_type": "refresh_token"},
    ),
]


@pytest.mark.parametrize("case", HOSTS, ids=[h.name for h in HOSTS])
def test_each_host_sends_its_documented_requests(make_stub: Callable[[Handler], StubHost], case: HostCase) -> None:
    stub = make_stub(lambda seen: Reply(200, TOKEN_ANSWER))
    host = case.factory(stub.url)
    assert isinstance(host.oauth_flow(), OAuthCodeFlow)
    path, query = query_of(host.authorize_url(state="st", redirect_uri=REDIRECT))
    assert path == case.authorize_path and {k: v[0] for k, v in query.items()} == case.authorize
    tokens = host.exchange_code(code=CODE, redirect_uri=REDIRECT)
    assert (tokens.access_token, tokens.refresh_token) == (ACCESS, REFRESH) and tokens.expires_at is not None
    host.refresh(REFRESH)
    for seen, expected in zip(stub.seen, (case.exchange, case.refresh), strict=True):
        assert (seen.method, seen.path) == ("POST", case.token_path)
        assert form(seen) == expected
        assert seen.headers.get("authorization") == case.authorization  # never the integration's API token
