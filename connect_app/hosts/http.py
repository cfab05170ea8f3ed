"""The one HTTP client every git host provider uses.

Every call has a timeout, goes through the SSRF guard (address checked at
connect time, every redirect hop checked, credentials never sent to another
origin), shares a rate budget per credential with every other process, may be
answered from an ETag cache, and fails only with ``connect_app.errors``
exceptions whose messages never contain the credential.

Bodies go out as JSON (``post_json``/``put_json``) or form-encoded (``post_form``, for
OAuth token endpoints); a provider whose bodies carry a prefix (Gerrit's XSSI guard)
gives ``decode_body`` and reads plain JSON everywhere, pagination included.
"""

from __future__ import annotations

import hashlib
import hmac
import json as jsonlib
import logging
import os
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict

from connect_app.errors import HostError, HostUnavailable, RateLimited
from connect_app.hosts.base import RateBudget
from connect_app.hosts.etags import CachedResponse, EtagCache, kept_headers
from connect_app.hosts.http_errors import Scrubber, host_error
from connect_app.hosts.netguard import DEFAULT_PORTS, check_url, guarded_session
from connect_app.hosts.pagination import LINK_HEADER, PageRequest, Pagination, items_at, walk_pages
from connect_app.hosts.ratelimit import (
    BudgetStore,
    MemoryBudgetStore,
    limited_until,
    parse_rate_headers,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (5.0, 30.0)
DEFAULT_USER_AGENT = "git-connect-for-jira"
SUCCESS: frozenset[int] = frozenset(range(200, 300))
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
_ALWAYS_SENSITIVE = frozenset({"authorization", "proxy-authorization", "cookie", "private-token"})
# Form fields whose values are secrets (RFC 6749 token requests); scrubbed from every error.
SECRET_FORM_FIELDS = frozenset(
    {"client_secret", "code", "refresh_token", "code_verifier", "password", "assertion", "client_assertion"}
)


def credential_fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a credential (rate budgets, cache keys).

    Salted and stretched so a leaked Redis key list does not help guess a weak
    password the way a bare sha256 would. The stretching costs ~3 ms of CPU, paid once
    per credential and process: remembered under an HMAC of the secret with a key that
    never leaves this process (every webhook delivery builds a client).
    """
    memo_key = hmac.new(_FINGERPRINT_MEMO_KEY, secret.encode(), hashlib.sha256).digest()
    known = _fingerprints.get(memo_key)
    if known is not None:
        return known
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), b"git-connect-for-jira/credential", 10_000)
    if len(_fingerprints) >= _FINGERPRINT_MEMO_SIZE:
        _fingerprints.clear()
    _fingerprints[memo_key] = fingerprint = digest.hex()[:32]
    return fingerprint


_FINGERPRINT_MEMO_KEY = os.urandom(32)
_FINGERPRINT_MEMO_SIZE = 4096
_fingerprints: dict[bytes, str] = {}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    from_cache: bool = False

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    def json(self) -> Any:
        if not self.body.strip():
            return None
        try:
            return jsonlib.loads(self.body)
        except ValueError as e:
            host = urllib.parse.urlsplit(self.url).hostname
            raise HostError(f"{host} did not answer with valid JSON", code="host_bad_response") from e


def _origin(parts: urllib.parse.SplitResult) -> tuple[str, str, int]:
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 443)


class HostHttpClient:
    """HTTP to one host with one credential. See the module docstring."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Mapping[str, str] | AuthBase | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        allow_private: bool = False,
        user_agent: str = DEFAULT_USER_AGENT,
        budget_store: BudgetStore | None = None,
        credential_key: str | None = None,
        etag_cache: EtagCache | None = None,
        max_wait_seconds: float = 60.0,
        max_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        decode_body: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """``decode_body`` turns every raw response body into what ``json()`` parses
        (e.g. strips a prefix); it runs before errors are read and before ETag caching."""
        parts = check_url(base_url, allow_private=allow_private, resolve=False)
        self.base_url = base_url.rstrip("/")
        self.host = (parts.hostname or "").lower()
        self._origin = _origin(parts)
        self._allow_private = allow_private
        self._timeout = timeout
        self._auth_headers = dict(auth) if isinstance(auth, Mapping) else {}
        self._auth_obj = auth if isinstance(auth, AuthBase) else None
        self._sensitive = _ALWAYS_SENSITIVE | {k.lower() for k in self._auth_headers}
        self._scrub = Scrubber()
        for value in self._auth_headers.values():
            self._scrub.add_header_value(value)
        if self._auth_obj is not None:
            self._scrub.add_auth_object(self._auth_obj, self.base_url, _ALWAYS_SENSITIVE)
        self._base_headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if credential_key is None:
            joined = "\n".join(sorted(self._scrub.secrets))
            credential_key = credential_fingerprint(joined) if joined else "anonymous"
        self._budget_key = f"{self._origin[1]}:{self._origin[2]}|{credential_key}"
        self._budgets: BudgetStore = budget_store if budget_store is not None else MemoryBudgetStore()
        self._etags = etag_cache
        self._max_wait = max_wait_seconds
        self._max_retries = max_retries
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography
        self._session = guarded_session(allow_private=allow_private)
        self._decode = decode_body

    # --- public API -----------------------------------------------------------

    def budget(self) -> RateBudget | None:
        return self._budgets.get(self._budget_key, now=self._clock())

    def close(self) -> None:
        self._session.close()

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        return self.request("GET", path, params=params, **kw).json()

    def post_json(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw).json()

    def put_json(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("PUT", path, json=json, **kw).json()

    def delete(self, path: str, **kw: Any) -> None:
        self.request("DELETE", path, **kw)

    def post_form(
        self,
        path_or_url: str,
        data: Mapping[str, str],
        *,
        secret_fields: Collection[str] = SECRET_FORM_FIELDS,
        **kw: Any,
    ) -> Any:
        """POST ``application/x-www-form-urlencoded`` and return the JSON answer.

        Same guarantees as every call (SSRF guard, timeout, rate budget, mapped errors),
        plus: a redirect is never followed (the body would carry secrets to wherever it
        points), and the values of ``secret_fields`` are scrubbed from every error."""
        secrets = [v for k, v in data.items() if k in secret_fields]
        return self.request("POST", path_or_url, form=data, secrets=secrets, follow_redirects=False, **kw).json()

    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        strategy: Pagination = LINK_HEADER,
        items_key: str | None = None,
        extractor: Callable[[Any], Iterable[Any]] | None = None,
        max_pages: int | None = None,
    ) -> Iterator[Any]:
        """Yield every item of every page, fetching pages lazily; ``headers`` go with each page."""

        def fetch(page: PageRequest) -> HttpResponse:
            return self.request("GET", page.target, params=page.params, headers=headers)

        key = items_key or strategy.items_key
        items = extractor or (lambda body: items_at(body, key, self.host))
        return walk_pages(fetch, strategy.first(path, params), strategy, items, host=self.host, max_pages=max_pages)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        expected: Collection[int] = SUCCESS,
        rate_resource: str | None = None,
        secrets: Iterable[str] = (),
        follow_redirects: bool = True,
    ) -> HttpResponse:
        """Send one request (plus redirects and allowed retries); map every failure.

        ``json`` or ``form`` is the body; ``secrets`` are scrubbed from errors on top of
        the credential; without ``follow_redirects`` a redirect is an unexpected status."""
        if json is not None and form is not None:
            raise ValueError("send either a JSON or a form body, not both")
        method = method.upper()
        extra_secrets = list(secrets)
        scrub = self._scrub.extended(extra_secrets) if extra_secrets else self._scrub
        body = {"json": json} if form is None else {"data": form}
        hops = MAX_REDIRECTS if follow_redirects else 0
        url = self._url(path_or_url)
        path = urllib.parse.urlsplit(url).path
        cache_key, cached = self._cached(method, url, params)
        send_headers = {**self._base_headers, **self._auth_headers, **(headers or {})}
        if cached is not None:
            send_headers["If-None-Match"] = cached.etag
        # one request counts against one bucket (GitHub: core, graphql, search...); a block
        # of the whole credential (secondary limits) is recorded on the base key and honoured by all
        bucket = f"{self._budget_key}:{rate_resource}" if rate_resource else self._budget_key
        rate_retried = False
        failures = 0
        while True:
            if bucket != self._budget_key:
                self._wait_for_budget(self._budget_key, reserve=False)
            self._wait_for_budget(bucket, reserve=True)
            try:
                resp = self._send(method, url, params, body, send_headers, hops, scrub)
            except HostUnavailable as e:
                # a read timeout is not retried: a slow host would only get slower callers
                read_timeout = isinstance(e.__cause__, requests.ReadTimeout)
                if method not in _IDEMPOTENT or failures >= self._max_retries or read_timeout:
                    raise
                failures += 1
                self._sleep(self._backoff(failures))
                continue
            now = self._clock()
            signal = parse_rate_headers(resp.headers, now)
            resource_key = self._budget_key
            if signal.resource and signal.resource != "core":
                resource_key = f"{self._budget_key}:{signal.resource}"
            if resp.status_code == 304 and cached is not None:
                self._budgets.release(resource_key)  # a 304 does not count against the limit
                self._record(resource_key, signal.budget, now)
                return self._from_cache(cached, resp)
            self._record(resource_key, signal.budget, now)
            until = limited_until(resp.status_code, signal, resp.text, now)
            if until is not None:
                limit = signal.budget.limit if signal.budget else None
                self._record(resource_key, RateBudget(limit, 0, _dt(until)), now)
                if rate_retried or until - now > self._max_wait:
                    raise RateLimited(self._limited_message(until), reset_at=_dt(until))
                rate_retried = True
                bucket = resource_key
                continue  # _wait_for_budget sleeps until the recorded reset
            if resp.status_code >= 500 and method in _IDEMPOTENT and failures < self._max_retries:
                wait = self._backoff(failures + 1, signal.retry_after)
                if wait <= self._max_wait:
                    failures += 1
                    self._sleep(wait)
                    continue
            break
        content = self._decode(resp.content) if self._decode is not None else resp.content
        result = HttpResponse(resp.status_code, resp.headers, content, resp.url)
        log.debug("%s %s %s -> %s", method, self.host, path, resp.status_code)
        if resp.status_code not in expected:
            raise host_error(self.host, f"{method} {path}", result.status, result.headers, result.body, scrub)
        if cache_key and resp.status_code == 200 and result.etag and self._etags is not None:
            self._etags.set(cache_key, CachedResponse(result.etag, 200, result.body, kept_headers(result.headers)))
        return result

    # --- internals ---------------------------------------------------------------

    def _url(self, path_or_url: str) -> str:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path_or_url) or path_or_url.startswith("//"):
            try:
                parts = urllib.parse.urlsplit(path_or_url)
                same_origin = _origin(parts) == self._origin
            except ValueError:
                same_origin = False
            if not same_origin:
                raise HostError(f"{self.host} pointed to another host; refusing to follow", code="host_bad_response")
            check_url(path_or_url, allow_private=self._allow_private, resolve=False)
            return path_or_url
        url = f"{self.base_url}/{path_or_url.lstrip('/')}"
        check_url(url, allow_private=self._allow_private, resolve=False)
        return url

    def _cached(
        self, method: str, url: str, params: Mapping[str, Any] | None
    ) -> tuple[str | None, CachedResponse | None]:
        if method != "GET" or self._etags is None:
            return None, None
        full = requests.Request("GET", url, params=dict(params or {})).prepare().url or url
        key = f"{self._budget_key}|{full}"
        return key, self._etags.get(key)

    def _from_cache(self, cached: CachedResponse, resp: requests.Response) -> HttpResponse:
        merged: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(cached.headers))
        merged.update({k: v for k, v in resp.headers.items() if k.lower() != "content-length"})
        return HttpResponse(cached.status, merged, cached.body, resp.url, from_cache=True)

    def _record(self, key: str, budget: RateBudget | None, now: float) -> None:
        if budget is not None:
            self._budgets.record(key, budget, now=now)

    def _blocked_until(self, key: str, *, reserve: bool) -> datetime | None:
        now = self._clock()
        if reserve:
            return self._budgets.acquire(key, now=now)
        budget = self._budgets.get(key, now=now)
        if budget is None or budget.remaining != 0 or budget.reset_at is None:
            return None
        return budget.reset_at if budget.reset_at.timestamp() > now else None

    def _wait_for_budget(self, key: str, *, reserve: bool) -> None:
        """Reserve one request from the bucket (or just honour its block), waiting up to
        ``max_wait_seconds`` for a reset; beyond that raise ``RateLimited`` unsent."""
        deadline = self._clock() + self._max_wait
        while (reset_at := self._blocked_until(key, reserve=reserve)) is not None:
            reset = reset_at.timestamp()
            if reset > deadline:
                raise RateLimited(self._limited_message(reset), reset_at=reset_at)
            # a little jitter so many waiting workers do not all fire at the reset second
            self._sleep(max(0.0, reset - self._clock()) + self._random.uniform(0.05, 0.5))

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return retry_after
        return float(self._random.uniform(0.0, 0.5 * 2**attempt))

    def _limited_message(self, until: float) -> str:
        return f"{self.host} rate limit reached for these credentials; retry after {_dt(until):%H:%M:%S} UTC"

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        max_hops: int,
        scrub: Scrubber,
    ) -> requests.Response:
        """One request, following up to ``max_hops`` redirects ourselves: each hop is
        re-checked and credentials go only to the base URL's origin."""
        for _hop in range(max_hops + 1):
            same_origin = _origin(urllib.parse.urlsplit(url)) == self._origin
            hop_headers = {k: v for k, v in headers.items() if same_origin or k.lower() not in self._sensitive}
            try:
                resp = self._session.request(
                    method,
                    url,
                    params=params,
                    **body,
                    headers=hop_headers,
                    auth=self._auth_obj if same_origin else None,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except requests.Timeout as e:
                connect, read = self._timeout
                raise HostUnavailable(f"{self.host} did not answer in time (timeouts {connect:g}s/{read:g}s)") from e
            except requests.ConnectionError as e:
                raise HostUnavailable(f"could not connect to {self.host}") from e
            except requests.RequestException as e:
                raise HostError(f"request to {self.host} failed: {scrub(type(e).__name__)}") from e
            location = resp.headers.get("location")
            if resp.status_code not in _REDIRECTS or not location or max_hops == 0:
                return resp
            resp.close()
            url = urllib.parse.urljoin(resp.url, location)
            check_url(url, allow_private=self._allow_private, resolve=False)
            params = None  # the Location carries its own query
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method not in _IDEMPOTENT):
                method, body = "GET", {}
        raise HostError(f"{self.host} redirected more than {max_hops} times", code="host_redirect_loop")


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
