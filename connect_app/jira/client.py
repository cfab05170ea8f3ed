"""Signed REST calls from the app to a tenant's Jira.

Every call gets a fresh JWT (iss = app key, qsh of this exact request, short
expiry), a timeout, no redirects (a token must never travel to another host)
and honours ``429 Retry-After`` by waiting briefly or raising ``RateLimited``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import requests

from connect_app.errors import (
    AppError,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
)
from connect_app.jira.jwt import encode_app_token

DEFAULT_TIMEOUT = (5.0, 30.0)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def send_with_retries(
    session: requests.Session,
    method: str,
    url: str,
    *,
    authorization: Callable[[bool], str],
    json: Any,
    what: str,
    timeout: tuple[float, float],
    max_retry_wait: float,
    max_retries: int,
    sleep: Callable[[float], None],
    refresh_on_401: bool = False,
) -> requests.Response:
    """One Jira call with what every client needs: a timeout, no redirects, transport errors as
    ``HostUnavailable``, ``429 Retry-After`` waited (briefly, ``max_retries`` times) or raised as
    ``RateLimited``; with ``refresh_on_401`` one retry with ``authorization(True)`` (a new token).
    Any other status is returned for the caller to map."""
    refreshed = False
    attempt = 0
    while True:
        try:
            response = session.request(
                method,
                url,
                json=json,
                headers={"Authorization": authorization(refreshed), "Accept": "application/json"},
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.Timeout as e:
            raise HostUnavailable(f"Jira did not answer in time ({what})") from e
        except requests.RequestException as e:
            raise HostUnavailable(f"Jira could not be reached ({what})") from e
        if response.status_code == 401 and refresh_on_401 and not refreshed:
            refreshed = True
            continue
        if response.status_code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            wait = 5.0 if wait is None else wait
            if wait <= max_retry_wait and attempt < max_retries:
                attempt += 1
                sleep(wait)
                continue
            raise RateLimited(
                "Jira is rate limiting this app; try again later.",
                reset_at=datetime.now(UTC) + timedelta(seconds=wait),
            )
        return response


class JiraClient:
    def __init__(
        self,
        *,
        base_url: str,
        app_key: str,
        shared_secret: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        max_retry_wait: float = 30.0,
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._app_key = app_key
        self._secret = shared_secret
        self._timeout = timeout
        self._session = session or requests.Session()
        self._max_retry_wait = max_retry_wait
        self._max_retries = max_retries
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"JiraClient(base_url={self.base_url!r})"

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

        def authorization(_refresh: bool) -> str:  # a fresh token (and qsh) for every attempt
            token = encode_app_token(
                app_key=self._app_key, secret=self._secret, method=method, url=url, tenant_base_url=self.base_url
            )
            return f"JWT {token}"

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
        )
        if response.status_code in expected:
            return response
        raise self._error_for(response, method, path)

    @staticmethod
    def _error_for(response: requests.Response, method: str, path: str) -> AppError:
        status = response.status_code
        where = f"{method} {path}"
        if status == 401:
            return HostAuthError(f"Jira refused the app's credentials ({where}); reinstall the app.")
        if status == 403:
            return HostPermissionDenied(f"Jira denied the app permission ({where}).")
        if status == 404:
            return HostNotFound(f"Jira has no such resource ({where}).")
        if status >= 500:
            return HostUnavailable(f"Jira answered {status} ({where}).")
        return HostError(f"Jira rejected the request ({where}): HTTP {status}.", code="jira_rejected")

    def get_json(self, path: str, *, params: Mapping[str, str | int] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def post_json(self, path: str, body: Any) -> Any:
        response = self.request("POST", path, json=body)
        return response.json() if response.content else None
