"""``POST /webhooks/<integration id>/<token>``: deliveries from git hosts.

In order, each step answering before the next one starts:

1. **404** unless the integration exists and ``<token>`` equals its ``webhook_token``. The
   compare always runs (against a random dummy token when the id is unknown) on SHA-256
   digests of both sides, so an unknown integration and a wrong token take the same path
   and the same time, and the compare never leaks the token's length. A disabled (or
   uninstalled) Jira site and a provider without webhooks also answer 404: to the sender
   there is no such webhook (a 410 would tell an unauthenticated caller the token was right
   once). A *disabled integration* is not a 404: its deliveries go through every check
   below and are acknowledged as ``ignored`` (step 5), like those of an integration whose
   ``webhooks`` feature is off or of a disabled or removed repository -- a host that sees
   errors may switch our webhook off for good, and the admin may enable it again.
2. **413** when the body is larger than ``Settings.webhook_max_body_bytes`` (25 MB, this
   route only; the rest of the app keeps ``MAX_CONTENT_LENGTH``). A ``Content-Length``
   over the limit is refused before anything is read; a body without one is read through
   a stream capped at the limit.
3. **401** unless the provider's ``verify_webhook`` accepts the signature (constant time,
   in the host module). The message is the same whatever failed.
4. **400** when the authentic body cannot be parsed: the delivery is stored as
   ``malformed`` with its body (bounded) and the reason, for diagnosis.
5. Otherwise the delivery is stored and committed (deduplicated by delivery id, see
   ``connect_app.indexing.deliveries``), and only then answered: **202** ``accepted``
   when it names repositories we index (their index is requested; ``"enqueued": false``
   when Redis is down, and the dispatcher retries it), **200** ``ignored`` (ping, an event
   or repository we do not index, the integration disabled or its webhooks switched off:
   the stored delivery's ``summary["reason"]`` says which) or **200** ``duplicate`` (a
   redelivery: nothing done).

Errors are ``{"error": {"code", "message"}}``, never a stack trace. Nothing from the
payload reaches ``git``: the intake enqueues repository ids only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from connect_app.errors import AppError, AuthError, BadRequest, NotFound
from connect_app.extensions import db
from connect_app.hosts.base import Capability, GitHost, ProviderId
from connect_app.hosts.registry import HostConfig, build_host, provider_info
from connect_app.indexing import deliveries
from connect_app.integrations import credentials_of, webhook_secret
from connect_app.models import Integration, Tenant
from connect_app.runtime import runtime

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

NOT_FOUND_MESSAGE = "No webhook is registered at this address."
UNVERIFIED_MESSAGE = "The delivery's signature could not be verified."
_MAX_ID = 2**31 - 1  # integer primary keys; larger ids would make PostgreSQL raise
# Compared against when the integration does not exist, so both 404 paths do the same work.
_DUMMY_TOKEN = secrets.token_urlsafe(24)


class PayloadTooLarge(AppError):
    """The delivery is larger than this app accepts."""

    code = "payload_too_large"
    status = 413


class WebhookUnavailable(AppError):
    """The integration cannot check deliveries right now."""

    code = "webhook_unavailable"
    status = 503


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


def find_integration(session: Session, integration_id: int, token: str) -> Integration:
    """The integration this URL names, or ``NotFound`` (same work for every kind of miss)."""
    integration = session.get(Integration, integration_id if 0 < integration_id <= _MAX_ID else -1)
    expected = integration.webhook_token if integration is not None else _DUMMY_TOKEN
    token_ok = hmac.compare_digest(_digest(token), _digest(expected))
    if integration is None or not token_ok:
        raise NotFound(NOT_FOUND_MESSAGE)
    tenant = session.get(Tenant, integration.tenant_id)
    if tenant is None or not tenant.enabled:
        raise NotFound(NOT_FOUND_MESSAGE)
    if Capability.WEBHOOKS not in provider_info(integration.provider).capabilities:
        raise NotFound(NOT_FOUND_MESSAGE)
    return integration


def read_body(limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes, or ``PayloadTooLarge``."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The delivery is larger than {limit} bytes.")
    # Without a Content-Length (chunked), werkzeug stops reading at max_content_length and
    # returns what it read: one byte more than the limit tells a cut body from a full one.
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge as e:
        raise PayloadTooLarge(f"The delivery is larger than {limit} bytes.") from e
    if len(body) > limit:
        raise PayloadTooLarge(f"The delivery is larger than {limit} bytes.")
    return body


def _verifier(integration: Integration) -> GitHost:
    """A client for the provider's webhook checks. No network, no Redis: verifying and
    parsing only need the provider class."""
    config = HostConfig(
        provider=ProviderId(integration.provider),
        credentials=credentials_of(integration),
        base_url=integration.base_url,
        namespace=integration.namespace,
        allow_private=runtime().settings.allow_private_hosts,
    )
    return build_host(config)


def _close(host: GitHost) -> None:
    close = getattr(host, "close", None)
    if callable(close):
        close()


def _answer(status: int, body: dict[str, Any]) -> tuple[Response, int]:
    return jsonify(body), status


@bp.post("/<int:integration_id>/<token>")
def receive(integration_id: int, token: str) -> tuple[Response, int]:
    session = db.session()
    integration = find_integration(session, integration_id, token)
    body = read_body(runtime().settings.webhook_max_body_bytes)
    headers = dict(request.headers.items())
    try:
        host = _verifier(integration)
        secret = webhook_secret(integration)
    except Exception as e:  # undecryptable secret, misconfigured integration: nothing the sender can fix
        log.warning("integration %s cannot verify webhooks: %s", integration.id, type(e).__name__)
        raise WebhookUnavailable() from e
    try:
        try:
            host.verify_webhook(headers, body, secret)
        except AuthError as e:
            log.info("webhook refused for integration %s: %s", integration.id, e.message)
            raise AuthError(UNVERIFIED_MESSAGE, code="bad_signature") from e
        except Exception as e:  # whatever else went wrong, an unverified delivery is refused
            log.warning("webhook refused for integration %s: %s", integration.id, type(e).__name__)
            raise AuthError(UNVERIFIED_MESSAGE, code="bad_signature") from e
        try:
            events = host.parse_webhook(headers, body)
        except Exception as e:  # any parse failure of an authentic body is "malformed"
            result = deliveries.record_malformed(session, integration, headers, body, e)
            raise BadRequest(f"The delivery could not be read: {result.error}", code="malformed_payload") from e
    finally:
        _close(host)

    result = deliveries.accept(session, integration, headers, body, events)
    if result.outcome is deliveries.Outcome.ACCEPTED:
        return _answer(
            202, {"status": result.outcome.value, "delivery": result.delivery_id, "enqueued": result.enqueued}
        )
    payload: dict[str, Any] = {"status": result.outcome.value}
    if result.delivery_id is not None:
        payload["delivery"] = result.delivery_id
    return _answer(200, payload)
