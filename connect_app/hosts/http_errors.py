"""Turning a host's refusal into one of ``connect_app.errors``, without leaking secrets.

Hosts explain themselves in different dialects (GitHub ``message``/``errors``,
GitLab ``message`` dicts and ``error_description``, Bitbucket ``error.message``
and ``errors[]``, Azure ``message``); :func:`host_error` reads them all and
builds a message a user can act on, e.g. which OAuth scopes the token lacks.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import requests
from requests.auth import AuthBase

from connect_app.errors import (
    AppError,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
)

_SCOPE_PARAM = re.compile(r'scope="([^"]*)"')
MAX_DETAIL = 300


class Scrubber:
    """Replaces every known secret (and its URL-encoded form) with ``[redacted]``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add_header_value(self, value: str) -> None:
        """Learn a credential header value and the parts of it that are secret on their own
        (the token after ``Bearer``, the ``user:password`` inside ``Basic`` and the password)."""
        found = {value}
        scheme, _, rest = value.partition(" ")
        rest = rest.strip()
        if rest:
            found.add(rest)
            if scheme.lower() == "basic":
                try:
                    user_pass = base64.b64decode(rest, validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    user_pass = ""
                found.update({user_pass, user_pass.partition(":")[2]})
        self._secrets |= {s for s in found if len(s) >= 4}

    def add_auth_object(self, auth: AuthBase, url: str, sensitive: Collection[str]) -> None:
        """Learn what a ``requests`` auth object sends: its ``password``/``token``
        attributes and the ``sensitive`` headers it sets on a probe request to ``url``."""
        for attr in ("password", "token"):
            value = getattr(auth, attr, None)
            if isinstance(value, str | bytes):
                self.add([value.decode() if isinstance(value, bytes) else value])
        try:
            probe = auth(requests.Request("GET", url).prepare())
        except Exception:  # an auth object that cannot sign a probe just teaches us nothing
            return
        for name, value in probe.headers.items():
            if name.lower() in sensitive:
                self.add_header_value(value)

    def add(self, values: Iterable[str]) -> None:
        self._secrets |= {s for s in values if len(s) >= 4}

    def extended(self, values: Iterable[str]) -> Scrubber:
        """A copy that also knows ``values`` (secrets of one request, e.g. an OAuth code)."""
        copy = Scrubber()
        copy._secrets = set(self._secrets)
        copy.add(values)
        return copy

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
            text = text.replace(urllib.parse.quote(secret, safe=""), "[redacted]")
        return text


class HostStatusError(HostError):
    """A status the caller did not expect and no other error names (400, 405, 3xx...).

    ``host_status`` is what the host answered and ``detail`` its own (scrubbed) words, so a
    caller can react to one refusal, e.g. GitLab refusing keyset pagination or an OAuth
    token endpoint refusing a grant with 400 ``invalid_grant``.
    """

    def __init__(self, message: str, *, host_status: int, detail: str = "") -> None:
        super().__init__(message)
        self.host_status = host_status
        self.detail = detail


def describe(value: Any, depth: int = 0) -> str:
    """The human message in a host's error body, whatever its dialect."""
    if depth > 3 or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "; ".join(filter(None, (describe(v, depth + 1) for v in value[:5])))
    if not isinstance(value, dict):
        return str(value)
    parts = [describe(value.get(k), depth + 1) for k in ("message", "error_description", "error", "errors")]
    parts = [p for p in parts if p and p != "insufficient_scope"]
    if not parts and depth > 0:  # GitLab: {"message": {"name": ["has already been taken"]}}
        parts = [f"{k} {describe(v, depth + 1)}" for k, v in list(value.items())[:5]]
    return ": ".join(dict.fromkeys(parts))


def scope_hint(headers: Mapping[str, str], body: Any) -> str:
    """Which scopes the host says are needed, when it says so."""
    needed = headers.get("x-accepted-oauth-scopes")  # GitHub, with X-OAuth-Scopes = what the token has
    has = headers.get("x-oauth-scopes")
    if not needed and isinstance(body, dict):
        error = body.get("error")
        detail = error.get("detail") if isinstance(error, dict) else None
        required = detail.get("required") if isinstance(detail, dict) else None  # Bitbucket Cloud
        needed = " ".join(map(str, required)) if isinstance(required, list) else None
        scope = body.get("scope")  # GitLab insufficient_scope
        needed = needed or (scope if isinstance(scope, str) else None)
    if not needed:
        match = _SCOPE_PARAM.search(headers.get("www-authenticate", ""))
        needed = match.group(1) if match else None
    if not needed:
        return ""
    return f" The token needs scope(s): {needed}" + (f" (it has: {has})." if has is not None else ".")


def _parse_body(headers: Mapping[str, str], body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        plain = headers.get("content-type", "").startswith("text/plain")
        return body.decode("utf-8", errors="replace") if plain else None


def host_error(
    host: str, where: str, status: int, headers: Mapping[str, str], body: bytes, scrub: Scrubber
) -> AppError:
    """The error for an unexpected status; ``where`` is e.g. ``"GET /repos/a/b"``."""
    parsed = _parse_body(headers, body)
    detail = scrub(describe(parsed))[:MAX_DETAIL].strip()
    said = f": {detail}" if detail else ""
    where = scrub(where)
    if status == 401:
        return HostAuthError(f"{host} refused the credentials (401){said}")
    if status == 403:
        sentence = f"{host} denied {where} (403){said}"
        sentence += "" if sentence.endswith(".") else "."
        return HostPermissionDenied(sentence + scrub(scope_hint(headers, parsed)))
    if status in (404, 410):
        return HostNotFound(f"{host} has no such resource: {where} ({status}){said}")
    if status in (409, 422):
        return HostError(f"{host} rejected {where} ({status}){said}", code="host_rejected", status=status)
    if status >= 500:
        return HostUnavailable(f"{host} failed with {status} on {where}{said}")
    return HostStatusError(f"{host} answered {status} to {where}{said}", host_status=status, detail=detail)
