"""What Bitbucket Cloud and Bitbucket Data Center do the same way.

Both sign webhook deliveries with ``X-Hub-Signature: sha256=<hex HMAC of the raw body>``,
both take a Bearer token or HTTP basic credentials, and both answer pull request lists
newest-updated first, so an incremental sync can stop early.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from connect_app.errors import AuthError, BadRequest, HostError, ValidationError
from connect_app.hosts import pagination
from connect_app.hosts.base import AuthType, Credentials, GitAuth, PullRequest
from connect_app.hosts.http import HostHttpClient

SIGNATURE_HEADER = "X-Hub-Signature"
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_HEX_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
NULL_SHA = "0" * 40

T = TypeVar("T")

CLOUD_PAGES = pagination.BITBUCKET_CLOUD
DC_PAGES = pagination.BITBUCKET_DC


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value whatever the letter case of its name (WSGI, requests, plain dicts)."""
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def verify_hub_signature(headers: Mapping[str, str], raw_body: bytes, secret: str, *, host_name: str) -> None:
    """Raise ``AuthError`` unless ``X-Hub-Signature`` is ``sha256=`` + HMAC-SHA256(secret, raw body)."""
    if not secret:
        raise AuthError(f"no webhook secret is configured for this {host_name} integration")
    sent = (header(headers, SIGNATURE_HEADER) or "").strip()
    if not sent:
        raise AuthError(f"{host_name} webhook delivery has no {SIGNATURE_HEADER} header")
    match = _SIGNATURE.match(sent)
    if match is None:
        raise AuthError(f"{host_name} webhook {SIGNATURE_HEADER} is not a sha256 signature")
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match.group(1).lower()):
        raise AuthError(f"{host_name} webhook signature does not match the payload")


def sign(raw_body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature`` value Bitbucket sends for this body (used by tests and tools)."""
    return "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def webhook_json(raw_body: bytes, *, host_name: str) -> dict[str, Any]:
    try:
        body = json.loads(raw_body)
    except ValueError as e:
        raise BadRequest(f"{host_name} webhook body is not JSON") from e
    if not isinstance(body, dict):
        raise BadRequest(f"{host_name} webhook body is not a JSON object")
    return body


def auth_headers(credentials: Credentials) -> dict[str, str]:
    """``Authorization`` for a token (Bearer) or a username and password (basic)."""
    if credentials.auth_type in (AuthType.PAT, AuthType.OAUTH):
        if not credentials.token:
            raise ValidationError("a token is required")
        return {"Authorization": f"Bearer {credentials.token}"}
    if credentials.auth_type is AuthType.PASSWORD:
        if not credentials.username or not credentials.password:
            raise ValidationError("a username and a password are required")
        pair = f"{credentials.username}:{credentials.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    raise ValidationError(f"Bitbucket does not accept {credentials.auth_type.value} credentials")


def client_for(base_url: str, credentials: Credentials, options: Mapping[str, Any]) -> HostHttpClient:
    """A ``HostHttpClient`` for these credentials; ``options`` are its keyword arguments."""
    return HostHttpClient(base_url, auth=auth_headers(credentials), **dict(options))


def user_client(base_url: str, user: Credentials, options: Mapping[str, Any]) -> HostHttpClient:
    """A client for a user's own token (permission checks): its own rate budget, never the integration's."""
    return client_for(base_url, user, {k: v for k, v in options.items() if k != "credential_key"})


def git_auth_for(credentials: Credentials, *, token_username: str | None) -> GitAuth:
    """``git`` credentials: tokens as a password for ``token_username`` or as a Bearer header."""
    if credentials.auth_type is AuthType.PASSWORD:
        return GitAuth(username=credentials.username, password=credentials.password)
    if not credentials.token:
        raise ValidationError("a token is required")
    if token_username is not None:
        return GitAuth(username=token_username, password=credentials.token)
    return GitAuth(http_header=f"Authorization: Bearer {credentials.token}")


def segment(value: str) -> str:
    """One URL path segment; refuses empty values and dot segments."""
    if not value or value in (".", ".."):
        raise ValidationError(f"invalid path segment {value!r}")
    return urllib.parse.quote(value, safe="")


def split_full_name(full_name: str) -> tuple[str, str]:
    """``"owner/slug"`` (workspace/repo or PROJECT/repo) as its two parts."""
    owner, sep, slug = full_name.partition("/")
    if not sep or not owner or not slug or "/" in slug:
        raise ValidationError(f"expected 'owner/repository', got {full_name!r}")
    return owner, slug


def looks_like_sha(ref: str) -> bool:
    return _HEX_SHA.match(ref) is not None


def branch_name(ref: str) -> str:
    return ref.removeprefix("refs/heads/")


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (Cloud) or epoch milliseconds (Data Center), as an aware UTC datetime."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def dig(value: Any, *path: str | int) -> Any:
    """``value[a][b]...`` or None when any step is missing or of the wrong kind."""
    for key in path:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and -len(value) <= key < len(value) else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def link_by_name(links: Any, wanted: Iterable[str]) -> str | None:
    """The href of the first ``[{"name": ..., "href": ...}]`` entry whose name is wanted."""
    if not isinstance(links, list):
        return None
    names = [w.lower() for w in wanted]
    for name in names:
        for link in links:
            if isinstance(link, dict) and str(link.get("name", "")).lower() == name and text(link.get("href")):
                return str(link["href"])
    return None


def require(value: T | None, what: str, host_name: str) -> T:
    if value is None or value == "":
        raise HostError(f"{host_name} answered without {what}", code="host_bad_response")
    return value


def updated_since(pages: Iterable[T], since: datetime | None, updated_at: Callable[[T], datetime]) -> Iterator[T]:
    """Items updated at or after ``since`` from a newest-updated-first stream.

    Stops at the first older item; the stream is lazy, so no further page is fetched.
    """
    for item in pages:
        if since is not None and updated_at(item) < since:
            return
        yield item


def pull_request_updated(pr: PullRequest) -> datetime:
    return pr.updated_at
