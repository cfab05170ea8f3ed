"""OAuth sign-in to a git host for the Add-integration wizard and for signing an existing
integration in again (``PUT /api/integrations/<id>/credentials`` with ``oauth_flow``, see
:mod:`connect_app.web.api_credentials`).

The wizard runs in Jira's iframe, where no host lets its authorize page be framed, so the
flow runs in a popup window:

1. ``POST /api/oauth/flows`` (the wizard, context JWT, Jira admin; see
   :mod:`connect_app.web.api_admin_ui`) starts a *flow*: a fresh ``state``
   (:func:`connect_app.hosts.oauth.new_state`) bound server-side to the tenant, the Jira
   account and the provider (and server URL / namespace), stored in Redis for
   :data:`START_TTL` seconds; the host's authorize URL is built right away so that a
   misconfiguration is reported in the wizard, not in the popup. The answer carries
   ``/oauth/authorize?flow=<id>``.
2. ``GET /oauth/authorize?flow=<id>`` (the popup): usable once; sets a random
   browser-binding cookie (its hash is kept in the flow) and redirects to the host.
3. ``GET /oauth/callback?code=&state=`` (the host sends the popup back): the state is
   looked up by its hash, deleted (one use), compared with the stored one in constant time
   (:func:`connect_app.hosts.oauth.check_state`), the cookie must match the flow's, then the
   code is exchanged for tokens, which are kept in the flow encrypted
   (:class:`~connect_app.security.crypto.SecretBox`) for :data:`GRANT_TTL` seconds. Any
   failure shows a page that says what to do and stores no token.
4. The wizard (polling ``GET /api/oauth/flows/<id>``, or told by ``postMessage``) goes on
   with ``/api/oauth/flows/<id>/validate`` and ``/api/oauth/flows/<id>/integration``,
   which only the same tenant *and* account can use; the tokens never reach the browser.

Client ids and secrets: :mod:`connect_app.oauth_settings`. The redirect URL registered with
each host is ``<BASE_URL>/oauth/callback``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from connect_app.errors import AppError, AuthError
from connect_app.extensions import redis_conn
from connect_app.hosts.base import AuthType, Credentials, GitHost, OAuthTokens, ProviderId, ProviderInfo
from connect_app.hosts.oauth import OAuthCodeFlowHost, check_state, new_state
from connect_app.hosts.registry import HostConfig, build_host, provider_info
from connect_app.oauth_settings import OAuthClient, env_prefix, oauth_settings
from connect_app.runtime import runtime
from connect_app.services.admin_input import FieldError
from connect_app.services.host_checks import check_base_url, host_errors

log = logging.getLogger(__name__)

bp = Blueprint("oauth", __name__, url_prefix="/oauth")

START_TTL = 10 * 60  # from "Sign in" to the host's callback
GRANT_TTL = 30 * 60  # tokens kept for the wizard after the callback
COOKIE = "gcj_oauth"
CALLBACK_PATH = "/oauth/callback"
FLOW_KEY = "gcj:oauth:flow:"
STATE_KEY = "gcj:oauth:state:"
LAUNCH_KEY = "gcj:oauth:launched:"
# A stand-in API token: host clients are built only to run their OAuth flow, never called.
_FLOW_ONLY_TOKEN = "oauth-flow-only"  # noqa: S105 - not a secret


class FlowStatus:
    CREATED = "created"  # started by the wizard; the popup has not opened it yet
    REDIRECTED = "redirected"  # the popup went to the host's authorize page
    AUTHORIZED = "authorized"  # tokens received and stored (encrypted)
    FAILED = "failed"  # the host refused, the admin denied, or the callback was not ours


@dataclass
class Flow:
    id: str
    tenant_id: int
    account_id: str
    provider: str
    base_url: str | None
    namespace: str | None
    status: str
    created_at: float
    expires_at: float
    authorize_url_encrypted: str  # the host's authorize URL (it carries the state)
    state_encrypted: str
    browser_hash: str | None = None
    tokens_encrypted: str | None = None
    error: str | None = None

    @property
    def provider_info(self) -> ProviderInfo:
        return provider_info(self.provider)


# --- storage (Redis, with the flow's lifetime as TTL) -------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _save(flow: Flow) -> None:
    ttl = max(1, int(flow.expires_at - time.time()))
    redis_conn.client.set(FLOW_KEY + flow.id, json.dumps(asdict(flow)), ex=ttl)


def load_flow(flow_id: str) -> Flow | None:
    if not flow_id or len(flow_id) > 100:
        return None
    raw = redis_conn.client.get(FLOW_KEY + flow_id)
    if raw is None:
        return None
    data = json.loads(raw)
    flow = Flow(**data)
    return flow if flow.expires_at > time.time() else None


def delete_flow(flow: Flow) -> None:
    redis_conn.client.delete(FLOW_KEY + flow.id)


def owned_flow(flow_id: str, tenant_id: int, account_id: str | None) -> Flow | None:
    """The flow if it was started by this tenant *and* this Jira account, else None."""
    flow = load_flow(flow_id)
    if flow is None or flow.tenant_id != tenant_id:
        return None
    if not account_id or not hmac.compare_digest(flow.account_id.encode(), account_id.encode()):
        return None
    return flow


# --- hosts ---------------------------------------------------------------------------


def redirect_uri() -> str:
    return runtime().settings.base_url.rstrip("/") + CALLBACK_PATH


def client_for(info: ProviderInfo) -> OAuthClient:
    if AuthType.OAUTH not in info.auth_types:
        raise FieldError(
            "auth.type", f"{info.name} does not offer OAuth; use a personal access token", code="bad_auth_type"
        )
    client = oauth_settings().client(info.id)
    if client is None:
        prefix = env_prefix(info.id)
        raise FieldError(
            "auth.type",
            f"OAuth for {info.name} is not set up on this app (the operator sets {prefix}_CLIENT_ID and "
            f"{prefix}_CLIENT_SECRET); use a personal access token instead",
            code="oauth_not_configured",
        )
    return client


@contextmanager
def flow_host(info: ProviderInfo, base_url: str | None, namespace: str | None) -> Iterator[OAuthCodeFlowHost]:
    """The provider's client, built only for its OAuth flow; host errors become FieldErrors."""
    client = client_for(info)
    allow_private = runtime().settings.allow_private_hosts
    with host_errors(info, base_url, namespace):
        host: GitHost = build_host(
            HostConfig(
                provider=info.id,
                credentials=Credentials(AuthType.OAUTH, token=_FLOW_ONLY_TOKEN),
                base_url=base_url,
                namespace=namespace,
                allow_private=allow_private,
                oauth_client_id=client.client_id,
                oauth_client_secret=client.client_secret,
            )
        )
        try:
            if not isinstance(host, OAuthCodeFlowHost):
                raise FieldError("auth.type", f"{info.name} does not offer OAuth", code="bad_auth_type")
            yield host
        finally:
            close = getattr(host, "close", None)
            if callable(close):
                close()


def start_flow(
    *, tenant_id: int, account_id: str | None, info: ProviderInfo, base_url: str | None, namespace: str | None
) -> Flow:
    """Step 1: a state bound to tenant, account and provider; the host's authorize URL."""
    if not account_id:
        raise AuthError("OAuth sign-in needs a Jira user (the token has no account)", code="account_required")
    box = runtime().secrets
    client_for(info)  # offered and configured: refused before any lookup of the server
    check_base_url(info, base_url, allow_private=runtime().settings.allow_private_hosts)
    state = new_state()
    with flow_host(info, base_url, namespace) as host:
        authorize_url = host.authorize_url(state=state, redirect_uri=redirect_uri())
    now = time.time()
    flow = Flow(
        id=secrets.token_urlsafe(24),
        tenant_id=tenant_id,
        account_id=account_id,
        provider=info.id.value,
        base_url=base_url,
        namespace=namespace,
        status=FlowStatus.CREATED,
        created_at=now,
        expires_at=now + START_TTL,
        authorize_url_encrypted=box.encrypt(authorize_url),
        state_encrypted=box.encrypt(state),
    )
    pipe = redis_conn.client.pipeline()
    pipe.set(STATE_KEY + _digest(state), flow.id, ex=START_TTL)
    pipe.set(FLOW_KEY + flow.id, json.dumps(asdict(flow)), ex=START_TTL)
    pipe.execute()
    return flow


def flow_credentials(flow: Flow) -> Credentials:
    """The flow's tokens as integration credentials (``refresh_token`` and ``expires_at`` as extras)."""
    if flow.status != FlowStatus.AUTHORIZED or not flow.tokens_encrypted:
        raise FieldError(
            "auth", "Sign in with the host first: this OAuth connection has no token yet", code="oauth_not_authorized"
        )
    data = json.loads(runtime().secrets.decrypt(flow.tokens_encrypted))
    extra = {k: v for k in ("refresh_token", "expires_at") if isinstance(v := data.get(k), str) and v}
    return Credentials(AuthType.OAUTH, token=data["access_token"], extra=extra)


def _store_tokens(flow: Flow, tokens: OAuthTokens) -> None:
    payload = {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
    }
    flow.tokens_encrypted = runtime().secrets.encrypt(json.dumps(payload))
    flow.status = FlowStatus.AUTHORIZED
    flow.error = None
    flow.expires_at = time.time() + GRANT_TTL
    _save(flow)


def _fail(flow: Flow, message: str) -> None:
    flow.status = FlowStatus.FAILED
    flow.error = message
    flow.tokens_encrypted = None
    _save(flow)


# --- the popup's pages ----------------------------------------------------------------


def _page(status: int, *, ok: bool, title: str, message: str, flow: Flow | None = None) -> Response:
    html = render_template(
        "admin_oauth_done.html",
        ok=ok,
        title=title,
        message=message,
        flow_id=flow.id if flow else "",
        provider_name=flow.provider_info.name if flow else "",
    )
    response = make_response(html, status)
    _secure(response)
    return response


def _secure(response: BaseResponse) -> None:
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"


START_AGAIN = "Close this window and sign in again from Git Connect in Jira."


@bp.get("/authorize")
def authorize() -> BaseResponse:
    """Step 2: the popup opens this once; a browser-binding cookie, then the host's page."""
    flow = load_flow(request.args.get("flow", ""))
    if flow is None or flow.status != FlowStatus.CREATED:
        return _page(400, ok=False, title="This sign-in link is no longer valid", message=START_AGAIN)
    if not redis_conn.client.set(LAUNCH_KEY + flow.id, "1", nx=True, ex=START_TTL):
        return _page(400, ok=False, title="This sign-in link was already used", message=START_AGAIN)
    nonce = secrets.token_urlsafe(32)
    flow.browser_hash = _digest(nonce)
    flow.status = FlowStatus.REDIRECTED
    _save(flow)
    response = redirect(runtime().secrets.decrypt(flow.authorize_url_encrypted), code=302)
    response.set_cookie(
        COOKIE,
        nonce,
        max_age=START_TTL,
        path=_cookie_path(),
        secure=runtime().settings.base_url.startswith("https://"),
        httponly=True,
        samesite="Lax",  # sent on the host's top-level redirect back to the callback
    )
    _secure(response)
    return response


@bp.get("/callback")
def callback() -> Response:
    """Step 3: check state (one use, constant time) and browser, then exchange the code."""
    returned = request.args.get("state") or ""
    flow_id = redis_conn.client.getdel(STATE_KEY + _digest(returned)) if returned else None
    flow = load_flow(flow_id.decode() if isinstance(flow_id, bytes) else (flow_id or ""))
    if flow is None or flow.status != FlowStatus.REDIRECTED:
        log.info("oauth callback with an unknown, expired or used state")
        return _page(
            400,
            ok=False,
            title="This sign-in has expired or was already used",
            message="Nothing was saved. " + START_AGAIN,
        )
    try:
        check_state(runtime().secrets.decrypt(flow.state_encrypted), returned)
    except AuthError:
        return _page(400, ok=False, title="The sign-in could not be verified", message=START_AGAIN)
    nonce = request.cookies.get(COOKIE) or ""
    if not flow.browser_hash or not hmac.compare_digest(flow.browser_hash, _digest(nonce)):
        log.info("oauth callback for flow of tenant %s without its browser cookie", flow.tenant_id)
        message = (
            "This sign-in was started in another browser or window (or the browser did not keep this app's "
            "cookie), so it was not accepted and nothing was saved. " + START_AGAIN
        )
        _fail(flow, message)
        return _page(400, ok=False, title="The sign-in could not be verified", message=message, flow=flow)
    name = flow.provider_info.name
    host_error = request.args.get("error")
    if host_error:
        detail = (request.args.get("error_description") or host_error)[:300]
        denied = host_error == "access_denied"
        message = (f"Access was not granted on {name}" if denied else f"{name} reported a problem") + f": {detail}."
        _fail(flow, message)
        return _finish(_page(400, ok=False, title=f"{name} did not grant access", message=message, flow=flow))
    code = request.args.get("code") or ""
    if not code:
        message = f"{name} sent no authorization code back. " + START_AGAIN
        _fail(flow, message)
        return _finish(_page(400, ok=False, title="Sign-in incomplete", message=message, flow=flow))
    try:
        with flow_host(flow.provider_info, flow.base_url, flow.namespace) as host:
            tokens = host.exchange_code(code=code, redirect_uri=redirect_uri())
    except AppError as e:
        message = f"{e.message.rstrip('.')}. Nothing was saved. {START_AGAIN}"
        _fail(flow, message)
        return _finish(_page(400, ok=False, title=f"{name} did not issue a token", message=message, flow=flow))
    _store_tokens(flow, tokens)
    log.info("oauth flow for tenant %s authorized with %s", flow.tenant_id, flow.provider)
    return _finish(
        _page(
            200,
            ok=True,
            title=f"Signed in to {name}",
            message="You can close this window and continue in Jira.",
            flow=flow,
        )
    )


def _finish(response: Response) -> Response:
    response.delete_cookie(COOKIE, path=_cookie_path())
    return response


def _cookie_path() -> str:
    return request.script_root + "/oauth/"


def public(flow: Flow) -> dict[str, Any]:
    """The flow as the wizard sees it: never the state, the host URL or a token."""
    return {
        "id": flow.id,
        "provider": flow.provider,
        "status": flow.status,
        "error": flow.error,
        "authorize_url": url_for("oauth.authorize", flow=flow.id),
        "expires_in": max(0, int(flow.expires_at - time.time())),
    }


def provider_oauth(info: ProviderInfo) -> dict[str, Any]:
    return {
        "id": info.id.value,
        "name": info.name,
        "configured": oauth_settings().client(info.id) is not None,
    }


def oauth_capable() -> list[ProviderInfo]:
    return [provider_info(p) for p in ProviderId if AuthType.OAUTH in provider_info(p).auth_types]
