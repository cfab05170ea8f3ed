"""Atlassian Connect JWT: query string hashes, request tokens, signed installs, app tokens.

Four jobs, one module:

* the *query string hash* (``qsh``) that binds a token to one request, built from the
  canonical request ``METHOD&canonical-path&canonical-query`` of Atlassian's
  "Understanding JWT for Connect apps" (checked against all of Connect's interoperability
  vectors in the tests);
* verification of the HS256 tokens Jira signs with a tenant's shared secret, with the
  algorithm pinned and the ``qsh`` checked as a request hash or as ``"context-qsh"``;
* verification of the RS256 ``signed-install`` lifecycle tokens, whose public key is
  fetched by ``kid`` from Atlassian's key server and cached;
* signing of our own calls to Jira's REST API (and of Jira-like tokens for tests).

Every failure is an :class:`~connect_app.errors.AuthError` with a specific ``code``; the
messages never contain a token or a secret.

Why not ``atlassian_jwt.url_utils`` for the qsh: it takes a whole URL rather than a path
relative to a base URL plus a query, and strips every trailing slash. The tests check that
both agree on all 79 vectors, so the library stays a cross-check rather than a dependency
of the hot path.

Paths given to these functions are paths *as sent on the wire* (still percent-encoded),
relative to the base URL of whoever serves them (see :func:`relative_path`); queries are
either the raw query string or a mapping of decoded names to decoded values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import quote, unquote_plus, urlsplit

import jwt as pyjwt
import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from connect_app.errors import AuthError

__all__ = [
    "CONTEXT_QSH",
    "MAX_TOKEN_LENGTH",
    "InstallKeyFetcher",
    "InstallKeySource",
    "QshMode",
    "Query",
    "VerifiedToken",
    "canonical_request",
    "encode_app_token",
    "encode_install_token",
    "encode_request_token",
    "query_string_hash",
    "relative_path",
    "unverified_issuer",
    "verify_install_token",
    "verify_request_token",
]

CONTEXT_QSH = "context-qsh"
MAX_TOKEN_LENGTH = 8 * 1024
MIN_INSTALL_KEY_BITS = 2048

Query = Mapping[str, Sequence[str]] | str
"""A raw query string (``a=1&b=x+y``) or decoded names mapped to decoded values."""

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_KID = re.compile(r"[A-Za-z0-9._-]{1,200}")
_MAX_KEY_BYTES = 16 * 1024


# --------------------------------------------------------------------------- qsh


def _percent_encode(text: str) -> str:
    # RFC 3986: only ALPHA / DIGIT / "-" / "." / "_" / "~" stay as they are, so a space is
    # %20 (never "+") and "*" is %2A, exactly like Connect's Java implementation.
    return quote(text, safe="~")


def _java_string_order(text: str) -> bytes:
    # Jira sorts with Java's String.compareTo, i.e. by UTF-16 code unit; this differs from
    # Python's code point order only above U+FFFF, but then it matters.
    return text.encode("utf-16-be", "surrogatepass")


def _parse_query(raw: str) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for part in raw.removeprefix("?").split("&"):
        if part:
            name, _, value = part.partition("=")
            params.setdefault(unquote_plus(name), []).append(unquote_plus(value))
    return params


def _query_items(query: Query) -> Iterable[tuple[str, Sequence[str]]]:
    if isinstance(query, str):
        return _parse_query(query).items()
    getlist = getattr(query, "getlist", None)
    if callable(getlist):
        # A werkzeug MultiDict (Flask's request.args) answers query[name] with the first
        # value only; the hash needs every value.
        return [(name, list(getlist(name))) for name in query]
    # str is itself a Sequence[str]: a plain {"a": "xy"} must not become values "x", "y".
    return [(name, [values] if isinstance(values, str) else values) for name, values in query.items()]


def _canonical_query(query: Query) -> str:
    pairs = []
    for name, values in _query_items(query):
        if name == "jwt":
            continue
        # Values are sorted *before* encoding: Connect's reference implementation does so
        # (its bug JWT-20) and the interoperability vectors ("Multi-value II") depend on it.
        ordered = sorted(values, key=_java_string_order)
        pairs.append((_percent_encode(name), ",".join(_percent_encode(v) for v in ordered)))
    pairs.sort()
    return "&".join(f"{name}={values}" for name, values in pairs)


def _canonical_path(path: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path.replace("&", "%26")


def canonical_request(method: str, path: str, query: Query) -> str:
    """The canonical request ``METHOD&path&query`` whose SHA-256 is a token's ``qsh``.

    ``path`` is relative to the serving base URL and still percent-encoded; ``query`` is the
    raw query string or decoded names to decoded values (a werkzeug MultiDict is fine).
    The ``jwt`` parameter is ignored. Raises ``ValueError`` on text that cannot be UTF-8.
    """
    return f"{method.upper()}&{_canonical_path(path)}&{_canonical_query(query)}"


def query_string_hash(method: str, path: str, query: Query) -> str:
    """The ``qsh`` claim for this request: hex SHA-256 of :func:`canonical_request`."""
    return hashlib.sha256(canonical_request(method, path, query).encode("utf-8")).hexdigest()


def relative_path(full_path: str, base_url: str) -> str:
    """``full_path`` with the path of ``base_url`` taken off its front.

    ``relative_path("/jira/rest/api/3/myself", "https://x.jira.com/jira")`` is
    ``"/rest/api/3/myself"``. The prefix must end at a segment boundary; a path that is not
    under it is returned unchanged (e.g. behind a proxy that already stripped it).
    """
    prefix = urlsplit(base_url).path.rstrip("/")
    if prefix and (full_path == prefix or full_path.startswith(prefix + "/")):
        return full_path[len(prefix) :] or "/"
    return full_path


# ------------------------------------------------------------------ verification


class QshMode(StrEnum):
    """What a token's ``qsh`` claim must be."""

    REQUEST = "request"  # the hash of this very request (module URLs, lifecycle hooks)
    CONTEXT = "context"  # "context-qsh" (API calls from our iframes via AP.context.getToken)
    REQUEST_OR_CONTEXT = "request_or_context"  # only Jira's createBranch template URL


@dataclass(frozen=True)
class VerifiedToken:
    issuer: str
    subject: str | None
    claims: Mapping[str, Any]
    context: Mapping[str, Any] | None = None
    used_context_qsh: bool = False


class InstallKeySource(Protocol):
    def get(self, kid: str) -> RSAPublicKey: ...


def _fail(message: str, code: str) -> AuthError:
    return AuthError(message, code=code)


def _check_shape(token: str) -> None:
    if not isinstance(token, str) or not token:
        raise _fail("no token", "jwt_malformed")
    if len(token) > MAX_TOKEN_LENGTH:
        raise _fail("token is too large", "jwt_too_large")
    segments = token.split(".")
    if len(segments) != 3:
        raise _fail("token is not a JWS compact serialization", "jwt_malformed")
    for segment in segments:
        # Python's base64 decoder skips stray characters and ignores a segment's unused low
        # bits, so several strings would decode to one token; accept only the canonical one.
        if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
            raise _fail("token is not valid base64url", "jwt_malformed")
        try:
            decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError) as e:
            raise _fail("token is not valid base64url", "jwt_malformed") from e
        if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != segment:
            raise _fail("token is not valid base64url", "jwt_malformed")


def _header(token: str, expected_alg: str) -> dict[str, Any]:
    _check_shape(token)
    try:
        header = pyjwt.get_unverified_header(token)
    except pyjwt.PyJWTError as e:
        raise _fail("token header is malformed", "jwt_malformed") from e
    if header.get("alg") != expected_alg:
        raise _fail(f"token must be signed with {expected_alg}", "jwt_bad_algorithm")
    return header


def _decode(token: str, key: str | RSAPublicKey, alg: str) -> dict[str, Any]:
    try:
        return pyjwt.decode(
            token,
            key,
            algorithms=[alg],
            # Time and audience are checked below, against an injectable clock.
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except pyjwt.InvalidSignatureError as e:
        raise _fail("token signature does not verify", "jwt_bad_signature") from e
    except pyjwt.InvalidAlgorithmError as e:
        raise _fail(f"token must be signed with {alg}", "jwt_bad_algorithm") from e
    except pyjwt.DecodeError as e:
        raise _fail("token is malformed", "jwt_malformed") from e
    except pyjwt.PyJWTError as e:
        raise _fail("token is invalid", "jwt_invalid") from e


def _is_time(value: object) -> bool:
    # JSON lets NaN and Infinity through; a NaN exp compares false with everything.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_times(claims: Mapping[str, Any], now: float | None, leeway: float) -> None:
    current = time.time() if now is None else now
    exp = claims.get("exp")
    if exp is None:
        raise _fail("token has no exp claim", "jwt_missing_claim")
    if not _is_time(exp):
        raise _fail("token exp claim is not a number", "jwt_malformed")
    if current > exp + leeway:
        raise _fail("token has expired", "jwt_expired")
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is None:
            continue
        if not _is_time(value) or value > exp:
            raise _fail(f"token {name} claim is invalid", "jwt_malformed")
        if value > current + leeway:
            raise _fail("token is not valid yet", "jwt_not_yet_valid")


def _required_str(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise _fail(f"token has no {name} claim", "jwt_missing_claim")
    return value


def _same(a: str, b: str) -> bool:
    # compare_digest refuses non-ASCII str; bytes it always takes.
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _check_qsh(claims: Mapping[str, Any], mode: QshMode, method: str, path: str, query: Query) -> bool:
    """Check the qsh claim; True when the token was a context token."""
    qsh = claims.get("qsh")
    if not isinstance(qsh, str) or not qsh:
        raise _fail("token has no qsh claim", "jwt_bad_qsh")
    is_context = _same(qsh, CONTEXT_QSH)
    if mode is QshMode.CONTEXT:
        if not is_context:
            raise _fail("a context token (qsh context-qsh) is required here", "jwt_bad_qsh")
        return True
    if is_context:
        if mode is QshMode.REQUEST_OR_CONTEXT:
            return True
        raise _fail("a context token is not accepted here; the token must sign this request", "jwt_bad_qsh")
    try:
        expected = query_string_hash(method, path, query)
    except ValueError as e:  # text that is not encodable (lone surrogates)
        raise _fail("request cannot be canonicalised", "jwt_bad_qsh") from e
    if not _same(qsh, expected):
        raise _fail("token was signed for a different request", "jwt_bad_qsh")
    return False


def _verified(claims: dict[str, Any], issuer: str, used_context_qsh: bool) -> VerifiedToken:
    subject = claims.get("sub")
    context = claims.get("context")
    return VerifiedToken(
        issuer=issuer,
        subject=subject if isinstance(subject, str) and subject else None,
        claims=MappingProxyType(claims),
        context=MappingProxyType(context) if isinstance(context, dict) else None,
        used_context_qsh=used_context_qsh,
    )


def unverified_issuer(token: str) -> str:
    """The ``iss`` claim, read *without* verification, to find whose secret to verify with."""
    _check_shape(token)
    try:
        claims = pyjwt.decode(token, options={"verify_signature": False})
    except pyjwt.PyJWTError as e:
        raise _fail("token is malformed", "jwt_malformed") from e
    return _required_str(claims, "iss")


def verify_request_token(
    token: str,
    *,
    secret: str,
    method: str,
    path: str,
    query: Query,
    qsh_mode: QshMode,
    leeway: float = 30,
    now: float | None = None,
) -> VerifiedToken:
    """Verify a token Jira signed (HS256) with the tenant's shared secret.

    ``path`` is relative to our BASE_URL (see :func:`relative_path`); ``now`` is Unix time.
    """
    _header(token, "HS256")
    if not secret:
        # An empty HMAC key would accept tokens anyone can sign.
        raise _fail("no shared secret to verify the token with", "jwt_bad_signature")
    claims = _decode(token, secret, "HS256")
    _check_times(claims, now, leeway)
    issuer = _required_str(claims, "iss")
    used_context = _check_qsh(claims, qsh_mode, method, path, query)
    return _verified(claims, issuer, used_context)


def _check_audience(claims: Mapping[str, Any], audience: str) -> None:
    aud = claims.get("aud")
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    ours = audience.rstrip("/")
    if not any(isinstance(v, str) and v and _same(v.rstrip("/"), ours) for v in values):
        raise _fail("token is meant for another app (aud)", "jwt_bad_audience")


def verify_install_token(
    token: str,
    *,
    key_fetcher: InstallKeySource,
    audience: str,
    method: str,
    path: str,
    query: Query,
    leeway: float = 30,
    now: float | None = None,
) -> VerifiedToken:
    """Verify a ``signed-install`` lifecycle token (RS256, key by ``kid``).

    ``audience`` is our BASE_URL. The caller checks ``issuer`` against the body's clientKey.
    """
    header = _header(token, "RS256")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise _fail("install token has no kid", "jwt_bad_kid")
    key = key_fetcher.get(kid)
    claims = _decode(token, key, "RS256")
    _check_times(claims, now, leeway)
    _check_audience(claims, audience)
    issuer = _required_str(claims, "iss")
    _check_qsh(claims, QshMode.REQUEST, method, path, query)
    return _verified(claims, issuer, used_context_qsh=False)


# ------------------------------------------------------------------ install keys


def _check_kid(kid: str) -> None:
    if not isinstance(kid, str) or not _KID.fullmatch(kid) or kid in {".", ".."}:
        raise _fail("install token kid is not a valid key id", "jwt_bad_kid")


class InstallKeyFetcher:
    """Fetches the RS256 public keys of signed installs from ``{keys_url}/{kid}``; caches them.

    Thread-safe. Redirects are not followed and the body is capped; any failure is an
    ``AuthError`` with code ``install_key_unavailable``.
    """

    def __init__(
        self,
        keys_url: str,
        *,
        timeout: float = 5.0,
        ttl_seconds: int = 3600,
        session: requests.Session | None = None,
        max_entries: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys_url = keys_url.rstrip("/")
        self._timeout = timeout
        self._ttl = ttl_seconds
        self._session = session if session is not None else requests.Session()
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, tuple[float, RSAPublicKey]] = {}
        self._lock = threading.Lock()

    def get(self, kid: str) -> RSAPublicKey:
        _check_kid(kid)
        with self._lock:
            cached = self._cache.get(kid)
            if cached is not None and cached[0] > self._clock():
                return cached[1]
        # Fetched outside the lock: a slow key server must not stall other kids. Two threads
        # racing on one new kid both fetch it once, which is harmless.
        key = self._fetch(kid)
        with self._lock:
            now = self._clock()
            for stale in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[stale]
            while len(self._cache) >= self._max_entries:
                del self._cache[min(self._cache, key=lambda k: self._cache[k][0])]
            self._cache[kid] = (now + self._ttl, key)
        return key

    def _fetch(self, kid: str) -> RSAPublicKey:
        unavailable = "the install signing key could not be fetched"
        deadline = time.monotonic() + self._timeout
        body = bytearray()
        try:
            with self._session.get(
                f"{self._keys_url}/{kid}", timeout=self._timeout, allow_redirects=False, stream=True
            ) as response:
                if response.status_code != 200:
                    raise _fail(f"{unavailable} (HTTP {response.status_code})", "install_key_unavailable")
                for chunk in response.iter_content(4096):
                    body += chunk
                    if len(body) > _MAX_KEY_BYTES or time.monotonic() > deadline:
                        raise _fail(unavailable, "install_key_unavailable")
        except requests.RequestException as e:
            raise _fail(unavailable, "install_key_unavailable") from e
        try:
            key = load_pem_public_key(bytes(body))
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise _fail("the install signing key is not a PEM public key", "install_key_unavailable") from e
        if not isinstance(key, RSAPublicKey) or key.key_size < MIN_INSTALL_KEY_BITS:
            raise _fail("the install signing key is not an RSA key", "install_key_unavailable")
        return key


# ----------------------------------------------------------------------- signing


def _claims(issuer: str, qsh: str, ttl: int, now: float | None) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    return {"iss": issuer, "iat": issued, "exp": issued + ttl, "qsh": qsh}


def _tenant_relative(url: str, tenant_base_url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if not (parts.scheme or parts.netloc):
        return parts.path, parts.query  # already relative to the tenant's base URL
    base = urlsplit(tenant_base_url)
    prefix = base.path.rstrip("/")
    same_origin = (parts.scheme.lower(), parts.netloc.lower()) == (base.scheme.lower(), base.netloc.lower())
    if not same_origin or (prefix and parts.path != prefix and not parts.path.startswith(prefix + "/")):
        # A token signed for this tenant must never travel to another host.
        raise ValueError("refusing to sign a URL outside the tenant's base URL")
    return relative_path(parts.path, tenant_base_url), parts.query


def encode_app_token(
    *,
    app_key: str,
    secret: str,
    method: str,
    url: str,
    tenant_base_url: str,
    ttl_seconds: int = 180,
    now: float | None = None,
) -> str:
    """A token for one call from the app to the tenant's REST API (``Authorization: JWT …``).

    ``url`` is absolute (and must be under ``tenant_base_url``, else ``ValueError``) or a
    path relative to it; sign the URL exactly as it will be sent, query included.
    """
    path, query = _tenant_relative(url, tenant_base_url)
    claims = _claims(app_key, query_string_hash(method, path, query), ttl_seconds, now)
    return pyjwt.encode(claims, secret, algorithm="HS256")


def encode_request_token(
    *,
    issuer: str,
    secret: str,
    method: str = "GET",
    path: str = "/",
    query: Query = "",
    subject: str | None = None,
    qsh: str | None = None,
    ttl: int = 180,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A token as Jira would sign it for a request to the app (tests and smoke checks).

    ``qsh`` overrides the computed hash (pass :data:`CONTEXT_QSH` for a context token);
    ``extra_claims`` are applied last and may override any claim.
    """
    claims = _claims(issuer, qsh if qsh is not None else query_string_hash(method, path, query), ttl, now)
    if subject is not None:
        claims["sub"] = subject
    claims.update(extra_claims or {})
    return pyjwt.encode(claims, secret, algorithm="HS256")


def encode_install_token(
    *,
    private_key: RSAPrivateKey,
    kid: str,
    issuer: str,
    audience: str,
    path: str,
    method: str = "POST",
    query: Query = "",
    ttl: int = 180,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A signed-install token as Jira would send it (RS256; tests and smoke checks)."""
    claims = _claims(issuer, query_string_hash(method, path, query), ttl, now)
    claims["aud"] = audience
    claims.update(extra_claims or {})
    return pyjwt.encode(claims, private_key, algorithm="RS256", headers={"kid": kid})
