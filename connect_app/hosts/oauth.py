"""The OAuth 2.0 authorization code flow (RFC 6749 §4.1), once for every host that offers it.

GitHub, GitLab, Bitbucket Cloud and Microsoft Entra ID (Azure DevOps) differ only in
endpoints, how the client authenticates (client id and secret in the form body, or HTTP
basic), whether a scope is sent and where, and a few fixed parameters; an
:class:`OAuthCodeFlow` holds those; a host class inherits :class:`OAuthCodeFlowHost`
and says in ``oauth_flow()`` which endpoints and options are its own.

The token request goes through :meth:`HostHttpClient.post_form` (SSRF guard, timeout, no
redirects, rate budget, secrets scrubbed from errors). Nothing here logs: codes, tokens
and the client secret appear in no log line and no error message.
"""

from __future__ import annotations

import hmac
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from requests.auth import HTTPBasicAuth

from connect_app.errors import AuthError, HostAuthError, HostError, ValidationError
from connect_app.hosts.base import OAuthTokens
from connect_app.hosts.http import HostHttpClient
from connect_app.hosts.http_errors import MAX_DETAIL, HostStatusError, Scrubber

# HostHttpClient options that belong to one API credential, not to a token endpoint.
_NOT_FOR_TOKEN_ENDPOINT = frozenset({"auth", "credential_key", "etag_cache", "decode_body"})


class ClientAuth(StrEnum):
    """How the app proves who it is to the token endpoint (RFC 6749 §2.3.1)."""

    FORM = "form"  # client_id and client_secret in the form body
    BASIC = "basic"  # HTTP basic auth with client_id:client_secret


def new_state() -> str:
    """An unguessable ``state`` for one authorization request (store it, then :func:`check_state`)."""
    return secrets.token_urlsafe(32)


def check_state(sent: str, returned: str | None) -> None:
    """Raise ``AuthError`` unless the callback brought back the ``state`` we sent (constant time)."""
    if not sent or not returned or not hmac.compare_digest(sent.encode(), returned.encode()):
        raise AuthError("the OAuth callback does not carry the state this app sent; start the connection again")


@dataclass(frozen=True)
class OAuthCodeFlow:
    """One host's authorization code flow. See the module docstring.

    ``response_type`` is None for hosts that take none (GitHub); ``code_grant_type``
    False for hosts whose code exchange has no ``grant_type`` (GitHub);
    ``scope_in_token_request`` for hosts that want the scopes again on the token
    endpoint (Entra ID v2); ``issued_at_field`` names a token-response field that says
    when the token was issued (GitLab's ``created_at``), else our clock is used.
    """

    name: str
    authorize_endpoint: str
    token_endpoint: str
    client_id: str | None
    client_secret: str | None = field(default=None, repr=False)
    client_auth: ClientAuth = ClientAuth.FORM
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    response_type: str | None = "code"
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    code_grant_type: bool = True
    scope_in_token_request: bool = False
    issued_at_field: str | None = None
    client_label: str = "client id and secret"
    http_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    clock: Callable[[], float] = time.time

    # --- the three steps ------------------------------------------------------------

    def authorize_url(self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None) -> str:
        """Where to send the user's browser; ``state`` comes back unchanged on the callback."""
        if not state:
            raise ValidationError("an OAuth authorization request needs a state value")
        client_id, _ = self._client()
        query: dict[str, str] = {"client_id": client_id, "redirect_uri": redirect_uri}
        if self.response_type is not None:
            query["response_type"] = self.response_type
        query["state"] = state
        scope = self._scope(scopes)
        if scope:
            query["scope"] = scope
        query.update(self.authorize_params)
        return f"{self.authorize_endpoint}?{urllib.parse.urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str) -> OAuthTokens:
        if not code:
            raise ValidationError("the OAuth callback carries no authorization code")
        grant = {"grant_type": "authorization_code"} if self.code_grant_type else {}
        return self._token_request({**grant, "code": code, "redirect_uri": redirect_uri})

    def refresh(self, refresh_token: str, *, redirect_uri: str | None = None) -> OAuthTokens:
        if not refresh_token:
            raise ValidationError("there is no OAuth refresh token to use")
        grant = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_request({**grant, **({"redirect_uri": redirect_uri} if redirect_uri else {})})

    # --- internals --------------------------------------------------------------------

    def _client(self) -> tuple[str, str]:
        if not self.client_id or not self.client_secret:
            raise ValidationError(f"{self.name} OAuth is not configured: set its {self.client_label} in the settings")
        return self.client_id, self.client_secret

    def _scope(self, scopes: Sequence[str] | None) -> str:
        return self.scope_separator.join(self.scopes if scopes is None else scopes)

    def _token_request(self, grant: Mapping[str, str]) -> OAuthTokens:
        client_id, client_secret = self._client()
        form = dict(grant)
        auth = None
        if self.client_auth is ClientAuth.BASIC:
            auth = HTTPBasicAuth(client_id, client_secret)
        else:
            form.update({"client_id": client_id, "client_secret": client_secret})
        if self.scope_in_token_request and self.scopes:
            form["scope"] = self._scope(None)
        parts = urllib.parse.urlsplit(self.token_endpoint)
        options = {k: v for k, v in self.http_options.items() if k not in _NOT_FOR_TOKEN_ENDPOINT}
        client = HostHttpClient(f"{parts.scheme}://{parts.netloc}", auth=auth, **options)
        try:
            body = client.post_form(self.token_endpoint, form)
        except HostStatusError as e:
            if e.host_status != 400:  # RFC 6749 §5.2: invalid_grant, invalid_client... are 400s
                raise
            raise HostAuthError(f"{self.name} refused the OAuth grant: {e.detail or 'no reason given'}") from e
        finally:
            client.close()
        scrub = Scrubber()
        scrub.add([client_secret, *grant.values()])
        return self._tokens(body, scrub)

    def _tokens(self, body: Any, scrub: Scrubber) -> OAuthTokens:
        if not isinstance(body, dict):
            raise HostError(f"{self.name} did not answer with a token", code="host_bad_response")
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            # GitHub answers 200 with {"error": ..., "error_description": ...} for a bad code
            error = body.get("error_description") or body.get("error")
            if error:
                raise HostAuthError(f"{self.name} refused the OAuth grant: {scrub(str(error))[:MAX_DETAIL]}")
            raise HostError(f"{self.name} did not return an access token", code="host_bad_response")
        refresh = body.get("refresh_token")
        return OAuthTokens(access, refresh if isinstance(refresh, str) and refresh else None, self._expires_at(body))

    def _expires_at(self, body: Mapping[str, Any]) -> datetime | None:
        expires_in = _number(body.get("expires_in"))
        if expires_in is None:
            return None
        issued = _number(body.get(self.issued_at_field)) if self.issued_at_field else None
        return datetime.fromtimestamp(issued if issued is not None else self.clock(), tz=UTC) + timedelta(
            seconds=expires_in
        )


class OAuthCodeFlowHost:
    """``authorize_url`` / ``exchange_code`` / ``refresh`` (``base.OAuthFlow``) for a host
    class whose :meth:`oauth_flow` says how its flow differs."""

    def oauth_flow(self) -> OAuthCodeFlow:
        raise NotImplementedError

    def authorize_url(self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None) -> str:
        return self.oauth_flow().authorize_url(state=state, redirect_uri=redirect_uri, scopes=scopes)

    def exchange_code(self, *, code: str, redirect_uri: str) -> OAuthTokens:
        return self.oauth_flow().exchange_code(code=code, redirect_uri=redirect_uri)

    def refresh(self, refresh_token: str, *, redirect_uri: str | None = None) -> OAuthTokens:
        """``redirect_uri``: the original one, for hosts whose refresh example repeats it (GitLab)."""
        return self.oauth_flow().refresh(refresh_token, redirect_uri=redirect_uri)


def _number(value: Any) -> float | None:
    """A JSON number (or a string of digits, as some servers send ``expires_in``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.isdigit():
        return float(value)
    return None
