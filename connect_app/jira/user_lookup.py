"""Commit authors as Jira users, and calls to Jira *as* such a user.

Finding the user
----------------
``GET /rest/api/3/user/search?query=<email>`` with the app's own signed client (scope READ;
Jira's "Browse users and groups" permission, which the app user has). The query matches the
*prefix* of display names and email addresses, and Jira hides a user's email address when
their profile visibility says so, so :func:`find_user_by_email` decides:

* only active ``atlassian`` accounts count (never ``app`` or ``customer`` accounts);
* exactly one candidate whose visible ``emailAddress`` equals the email (case-insensitively)
  is the user; several are ambiguous;
* with no visible exact match: exactly one candidate whose address is hidden is the user (the
  query was the whole address); several, or none, and nothing is done.

Answers are cached in Redis per tenant for an hour (a miss for ten minutes), keyed by a hash
of the address (no plaintext email in Redis).

Acting as the user
------------------
Atlassian Connect's user impersonation ("two-legged OAuth with impersonation", the OAuth 2.0
JWT bearer grant, developer.atlassian.com/cloud/jira/platform/user-impersonation-for-connect-apps/):

1. the install hook carries ``oauthClientId`` (with the shared secret);
2. the app signs an assertion with the shared secret (HS256): ``iss`` =
   ``urn:atlassian:connect:clientid:<oauthClientId>``, ``sub`` =
   ``urn:atlassian:connect:useraccountid:<accountId>``, ``tnt`` = the site's baseUrl, ``aud`` =
   ``https://oauth-2-authorization-server.services.atlassian.com``, ``iat``/``exp`` (60 s);
3. ``POST <aud>/oauth2/token`` (form: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``,
   ``assertion``, ``scope=READ WRITE``) answers ``{"access_token", "expires_in", "token_type"}``;
4. REST calls to the site carry ``Authorization: Bearer <access_token>``.

The app must declare the ``ACT_AS_USER`` scope (atlassian-connect.json). The tenant row does
not store ``oauthClientId`` yet: :class:`ConnectImpersonation` reads it through
``oauth_client_id_for`` (default: a ``Tenant.oauth_client_id`` attribute when the model has
one) and raises :class:`ImpersonationUnavailable` without it -- the smart-commit executor then
records the command as skipped, with that reason. The token exchange is exercised against a
loopback authorization server in the tests; Atlassian's own server cannot be reached offline.
Tokens are cached in memory only (never in Redis), until a minute before they expire.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

import jwt as pyjwt
import requests
from redis import Redis
from redis.exceptions import RedisError

from connect_app.errors import (
    AppError,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
)
from connect_app.jira.client import DEFAULT_TIMEOUT, retry_after_seconds, send_with_retries
from connect_app.models import Tenant

USER_SEARCH_PATH = "/rest/api/3/user/search"
AUTHORIZATION_SERVER = "https://oauth-2-authorization-server.services.atlassian.com"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a secret
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TTL_SECONDS = 60
DEFAULT_SCOPES = ("READ", "WRITE")
TOKEN_REFRESH_MARGIN = timedelta(seconds=60)
USER_CACHE_SECONDS = 3600
USER_MISS_CACHE_SECONDS = 600
MAX_ERROR_TEXT = 300


class JiraApi(Protocol):
    """What :class:`~connect_app.jira.client.JiraClient` and :class:`ImpersonatedJiraClient` offer."""

    base_url: str

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        expected: tuple[int, ...] = (200, 201, 202, 204),
    ) -> requests.Response: ...

    def get_json(self, path: str, *, params: Mapping[str, str | int] | None = None) -> Any: ...


# ----------------------------------------------------------------------------- finding users


@dataclass(frozen=True)
class UserMatch:
    account_id: str | None
    reason: str | None = None  # why there is no (unique) match; user-facing
    display_name: str | None = None

    @property
    def found(self) -> bool:
        return self.account_id is not None


def _bad_answer(detail: str) -> HostError:
    return HostError(f"Jira answered {USER_SEARCH_PATH} with an unexpected body ({detail}).", code="jira_bad_response")


def find_user_by_email(client: JiraApi, email: str) -> UserMatch:
    """The one active Jira user with this email address, as the module docstring decides."""
    email = (email or "").strip()
    if "@" not in email:
        return UserMatch(None, "the commit has no author email address")
    body = client.get_json(USER_SEARCH_PATH, params={"query": email, "maxResults": 50})
    if not isinstance(body, list):
        raise _bad_answer("not a list of users")
    candidates = [
        u
        for u in body
        if isinstance(u, dict)
        and isinstance(u.get("accountId"), str)
        and u.get("accountId")
        and u.get("accountType", "atlassian") == "atlassian"
        and u.get("active", True) is True
    ]
    wanted = email.casefold()
    exact = [u for u in candidates if str(u.get("emailAddress") or "").casefold() == wanted]
    hidden = [u for u in candidates if not u.get("emailAddress")]
    if len(exact) == 1:
        return UserMatch(exact[0]["accountId"], None, exact[0].get("displayName"))
    if len(exact) > 1:
        return UserMatch(None, f"{len(exact)} Jira users have the email address {email}")
    if len(hidden) == 1:
        return UserMatch(hidden[0]["accountId"], None, hidden[0].get("displayName"))
    if hidden:
        return UserMatch(None, f"{len(hidden)} Jira users match {email} (their addresses are hidden)")
    return UserMatch(None, f"no active Jira user has the email address {email}")


class UserDirectory:
    """:func:`find_user_by_email` with a per-tenant Redis cache (and a per-run memo)."""

    def __init__(
        self,
        client: JiraApi,
        *,
        tenant_id: int,
        cache: Redis | None = None,
        ttl: int = USER_CACHE_SECONDS,
        miss_ttl: int = USER_MISS_CACHE_SECONDS,
    ) -> None:
        self._client = client
        self._tenant_id = tenant_id
        self._cache = cache
        self._ttl = ttl
        self._miss_ttl = miss_ttl
        self._memo: dict[str, UserMatch] = {}

    def _key(self, email: str) -> str:
        digest = hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:40]
        return f"gcj:jira-user:{self._tenant_id}:{digest}"

    def account_for(self, email: str) -> UserMatch:
        folded = (email or "").strip().casefold()
        if folded in self._memo:
            return self._memo[folded]
        match = self._cached(email)
        if match is None:
            match = find_user_by_email(self._client, email)
            self._store(email, match)
        self._memo[folded] = match
        return match

    def _cached(self, email: str) -> UserMatch | None:
        if self._cache is None:
            return None
        try:
            raw = self._cache.get(self._key(email))
        except RedisError:
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return UserMatch(data.get("a"), data.get("r"), data.get("n"))
        except (ValueError, AttributeError):
            return None

    def _store(self, email: str, match: UserMatch) -> None:
        if self._cache is None:
            return
        value = json.dumps({"a": match.account_id, "r": match.reason, "n": match.display_name})
        try:
            self._cache.set(self._key(email), value, ex=self._ttl if match.found else self._miss_ttl)
        except RedisError:
            pass


# ----------------------------------------------------------------------------- impersonation


class ImpersonationUnavailable(AppError):
    """The app cannot act as this user (no oauthClientId, scope not granted, token refused)."""

    code = "impersonation_unavailable"
    status = 409


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    expires_at: datetime
    account_id: str = ""

    def fresh(self, now: datetime) -> bool:
        return now < self.expires_at - TOKEN_REFRESH_MARGIN


class UserTokenProvider(Protocol):
    def token_for(self, tenant: Tenant, account_id: str, *, refresh: bool = False) -> AccessToken: ...


def default_oauth_client_id(tenant: Tenant) -> str | None:
    value = getattr(tenant, "oauth_client_id", None)
    return value if isinstance(value, str) and value else None


def impersonation_assertion(
    *,
    oauth_client_id: str,
    account_id: str,
    tenant_base_url: str,
    secret: str,
    audience: str = AUTHORIZATION_SERVER,
    now: float | None = None,
    ttl_seconds: int = ASSERTION_TTL_SECONDS,
) -> str:
    """The JWT the app trades for a user's access token (claims as Atlassian documents them)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": f"urn:atlassian:connect:clientid:{oauth_client_id}",
        "sub": f"urn:atlassian:connect:useraccountid:{account_id}",
        "tnt": tenant_base_url.rstrip("/"),
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return pyjwt.encode(claims, secret, algorithm="HS256")


class ConnectImpersonation:
    """Access tokens from Atlassian's authorization server (JWT bearer grant), cached in memory."""

    def __init__(
        self,
        *,
        secret_for: Callable[[Tenant], str],
        oauth_client_id_for: Callable[[Tenant], str | None] = default_oauth_client_id,
        authorization_server: str = AUTHORIZATION_SERVER,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._secret_for = secret_for
        self._client_id_for = oauth_client_id_for
        self._server = authorization_server.rstrip("/")
        self._scopes = scopes
        self._session = session or requests.Session()
        self._timeout = timeout
        self._clock = clock
        self._tokens: dict[tuple[int, str], AccessToken] = {}
        self._lock = threading.Lock()

    def token_for(self, tenant: Tenant, account_id: str, *, refresh: bool = False) -> AccessToken:
        key = (tenant.id, account_id)
        now = self._clock()
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and not refresh and cached.fresh(now):
            return cached
        token = self._exchange(tenant, account_id, now)
        with self._lock:
            self._tokens[key] = token
        return token

    def _exchange(self, tenant: Tenant, account_id: str, now: datetime) -> AccessToken:
        client_id = self._client_id_for(tenant)
        if not client_id:
            raise ImpersonationUnavailable(
                "The app cannot act as Jira users on this site yet: the install did not record Jira's "
                "oauthClientId (reinstall or update the app).",
            )
        assertion = impersonation_assertion(
            oauth_client_id=client_id,
            account_id=account_id,
            tenant_base_url=tenant.base_url,
            secret=self._secret_for(tenant),
            audience=AUTHORIZATION_SERVER,
            now=now.timestamp(),
        )
        data = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion, "scope": " ".join(self._scopes)}
        try:
            response = self._session.post(
                self._server + TOKEN_PATH,
                data=data,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as e:
            raise HostUnavailable("Atlassian's authorization server could not be reached.") from e
        if response.status_code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise RateLimited(
                "Atlassian's authorization server is rate limiting this app.",
                reset_at=datetime.now(UTC) + timedelta(seconds=60 if wait is None else wait),
            )
        if response.status_code >= 500:
            raise HostUnavailable(f"Atlassian's authorization server answered {response.status_code}.")
        if response.status_code != 200:
            raise ImpersonationUnavailable(
                f"Atlassian refused to let the app act as this user (HTTP {response.status_code}"
                f"{': ' + _oauth_error(response) if _oauth_error(response) else ''}); "
                "the app needs the ACT_AS_USER scope and a current install."
            )
        try:
            body = response.json()
        except ValueError as e:
            raise HostError("Atlassian's authorization server answered with no JSON.", code="oauth_bad_response") from e
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise HostError("Atlassian's authorization server sent no access token.", code="oauth_bad_response")
        expires_in = body.get("expires_in")
        seconds = expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool) else 900
        return AccessToken(token, now + timedelta(seconds=max(0, seconds)), account_id)


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    text = str(body.get("error_description") or body.get("error") or "")
    return text[:MAX_ERROR_TEXT]


def jira_error_text(response: requests.Response) -> str:
    """Jira's own words from an error body (``errorMessages`` and ``errors``), shortened.
    ``errorMessages`` holds strings (platform REST) or ``{"message", "errorTraceId"}`` objects
    (the devinfo API, "ErrorMessages" in the Jira Software description)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [
        str(m.get("message") or "") if isinstance(m, dict) else str(m) for m in body.get("errorMessages") or [] if m
    ]
    parts = [p for p in parts if p]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    text = "; ".join(parts)
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


class ImpersonatedJiraClient:
    """REST calls to the tenant's site as one user (``Authorization: Bearer``).

    Same contract as :class:`~connect_app.jira.client.JiraClient`: a timeout, no redirects,
    ``429 Retry-After`` waited briefly or raised as ``RateLimited``, errors mapped to the app's
    hierarchy (with Jira's own message for a 400). A 401 gets one new token and one retry.
    """

    def __init__(
        self,
        *,
        tenant: Tenant,
        account_id: str,
        tokens: UserTokenProvider,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        max_retry_wait: float = 30.0,
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = tenant.base_url.rstrip("/")
        self.account_id = account_id
        self._tenant = tenant
        self._tokens = tokens
        self._session = session or requests.Session()
        self._timeout = timeout
        self._max_retry_wait = max_retry_wait
        self._max_retries = max_retries
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"ImpersonatedJiraClient(base_url={self.base_url!r}, account_id={self.account_id!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        expected: tuple[int, ...] = (200, 201, 202, 204),
    ) -> requests.Response:
        if not path.startswith("/"):
            raise ValueError("Jira API paths are absolute, e.g. /rest/api/3/myself")
        url = self.base_url + path + (("?" + urlencode(params)) if params else "")

        def authorization(refresh: bool) -> str:
            return f"Bearer {self._tokens.token_for(self._tenant, self.account_id, refresh=refresh).token}"

        response = send_with_retries(
            self._session,
            method,
            url,
            authorization=authorization,
            json=json,
            what=f"{method} {path}",
            timeout=self._timeout,
            max_retry_wait=self._max_retry_wait,
            max_retries=self._max_retries,
            sleep=self._sleep,
            refresh_on_401=True,
        )
        if response.status_code in expected:
            return response
        raise _error_for(response, method, path)

    def get_json(self, path: str, *, params: Mapping[str, str | int] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def post_json(self, path: str, body: Any) -> Any:
        response = self.request("POST", path, json=body)
        return response.json() if response.content else None


def _error_for(response: requests.Response, method: str, path: str) -> AppError:
    status = response.status_code
    where = f"{method} {path}"
    said = jira_error_text(response)
    suffix = f": {said}" if said else ""
    if status == 401:
        return HostAuthError(f"Jira refused the user's access token ({where}){suffix}.")
    if status == 403:
        return HostPermissionDenied(f"The user may not do this in Jira ({where}){suffix}.")
    if status == 404:
        return HostNotFound(f"Jira has no such resource, or the user cannot see it ({where}){suffix}.")
    if status >= 500:
        return HostUnavailable(f"Jira answered {status} ({where}).")
    return HostError(f"Jira rejected the request ({where}): HTTP {status}{suffix}.", code="jira_rejected")
