"""Register our webhook on the host for a repository when the credentials allow it, and
delete it again.

    ensure_webhook(session, integration, repository) -> bool
        True when a webhook is registered (now or before); False when the host or the
        credentials cannot (the admin page then shows the URL and secret to paste by hand).
        Never raises host errors.
    remove_webhook(session, integration, repository) -> bool
        True when our webhook is gone (deleted now, or there was none).
    register_with / delete_with(session, host, ...) -> HookOutcome
        The same through a host client the caller opened (one per pass over many
        repositories: ``connect_app.indexing.webhook_sync``), with the host's words.

``integration.features`` records the outcome for the admin page:

* ``webhook_manual``: True when the host takes webhooks but refused to let us create one
  (missing admin scope or permission, not supported for this credential...): the admin
  pastes ``webhook_url(integration)`` and the secret by hand. Cleared once every indexed
  repository of the integration has a webhook of ours.
* ``webhook_manual_reason``: the host's refusal, in words safe to show (no secrets).

A transient failure (host unreachable, rate limited) returns False without marking the
integration manual, so the next call (discovery, the admin's "retry") tries again.
Successful registrations are committed at once: a hook that exists on the host must not
be forgotten by a later rollback, or the next attempt would create a second one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connect_app.errors import (
    AppError,
    AuthError,
    BadRequest,
    Conflict,
    HostError,
    HostNotFound,
    PermissionDenied,
    Unsupported,
)
from connect_app.hosts.base import Capability, GitHost
from connect_app.hosts.registry import provider_info
from connect_app.integrations import host_for, remote_repository, webhook_secret
from connect_app.models import Integration, Repository, RepositoryStatus
from connect_app.runtime import runtime

log = logging.getLogger(__name__)

MANUAL = "webhook_manual"
MANUAL_REASON = "webhook_manual_reason"
REASON_LIMIT = 500

# The host (or the credential) says no for good: hand the admin the URL and secret.
_REFUSALS: tuple[type[AppError], ...] = (
    AuthError,  # includes HostAuthError
    PermissionDenied,  # includes HostPermissionDenied
    HostNotFound,  # GitHub answers 404 to a token without admin rights on the repository
    Unsupported,
    BadRequest,  # includes ValidationError: e.g. the host refuses our URL
    Conflict,
)


def _is_refusal(error: AppError) -> bool:
    # 409/422 from a host ("hook already exists", "URL not allowed") arrive as code host_rejected
    return isinstance(error, _REFUSALS) or (isinstance(error, HostError) and error.code == "host_rejected")


def webhook_url(integration: Integration) -> str:
    """The public address the host posts deliveries to."""
    base = runtime().settings.base_url.rstrip("/")
    return f"{base}/webhooks/{integration.id}/{integration.webhook_token}"


def supports_webhooks(integration: Integration) -> bool:
    return Capability.WEBHOOKS in provider_info(integration.provider).capabilities


def _set_features(integration: Integration, **changes: Any) -> None:
    features = dict(integration.features or {})  # a new dict: SQLAlchemy sees JSON changes by assignment
    for key, value in changes.items():
        if value is None:
            features.pop(key, None)
        else:
            features[key] = value
    integration.features = features


def close_host(host: GitHost) -> None:
    close = getattr(host, "close", None)
    if callable(close):
        close()


def _all_hooked(session: Session, integration: Integration) -> bool:
    missing = session.scalar(
        select(func.count(Repository.id)).where(
            Repository.integration_id == integration.id,
            Repository.enabled.is_(True),
            Repository.removed_at.is_(None),
            Repository.status != RepositoryStatus.REMOVED.value,
            Repository.webhook_id.is_(None),
        )
    )
    return not missing


@dataclass(frozen=True)
class HookOutcome:
    """What one register or delete attempt came to (``error`` in words safe to show)."""

    done: bool
    refused: bool = False  # the host or the credential says no for good (not worth retrying now)
    error: str | None = None


def register_with(session: Session, host: GitHost, integration: Integration, repository: Repository) -> HookOutcome:
    """Register our webhook on ``repository`` through an open ``host`` client. A refusal marks
    the integration manual; a success is committed at once (see the module docstring)."""
    if repository.webhook_id:
        return HookOutcome(True)
    try:
        registration = host.register_webhook(
            remote_repository(repository), webhook_url(integration), webhook_secret(integration)
        )
    except AppError as e:
        reason = e.message[:REASON_LIMIT]
        if not _is_refusal(e):  # unreachable, rate limited, server error: try again later
            log.warning("webhook not created for repository %s for now (%s)", repository.id, e.code)
            return HookOutcome(False, error=reason)
        log.info("webhook not created for repository %s (%s): %s", repository.id, e.code, reason)
        _set_features(integration, **{MANUAL: True, MANUAL_REASON: reason})
        session.commit()
        return HookOutcome(False, refused=True, error=reason)
    except Exception:  # a bug in a host module must not break the caller
        log.exception("webhook registration failed for repository %s", repository.id)
        return HookOutcome(False, error="unexpected error (logged)")
    repository.webhook_id = registration.id
    session.flush()
    if (integration.features or {}).get(MANUAL) and _all_hooked(session, integration):
        _set_features(integration, **{MANUAL: None, MANUAL_REASON: None})
    session.commit()
    log.info("webhook %s registered for repository %s", registration.id, repository.id)
    return HookOutcome(True)


def delete_with(session: Session, host: GitHost, repository: Repository) -> HookOutcome:
    """Delete our webhook from ``repository`` through an open ``host`` client; one that is
    gone already counts as deleted. Commits the cleared ``webhook_id``."""
    if not repository.webhook_id:
        return HookOutcome(True)
    try:
        host.delete_webhook(remote_repository(repository), repository.webhook_id)
    except HostNotFound:
        pass  # gone already
    except AppError as e:
        log.warning("webhook %s of repository %s not deleted (%s)", repository.webhook_id, repository.id, e.code)
        return HookOutcome(False, refused=_is_refusal(e), error=e.message[:REASON_LIMIT])
    except Exception:
        log.exception("webhook deletion failed for repository %s", repository.id)
        return HookOutcome(False, error="unexpected error (logged)")
    repository.webhook_id = None
    session.commit()
    return HookOutcome(True)


def ensure_webhook(session: Session, integration: Integration, repository: Repository) -> bool:
    if repository.webhook_id:
        return True
    if not supports_webhooks(integration):
        return False
    host: GitHost | None = None
    try:
        host = host_for(integration)
        return register_with(session, host, integration, repository).done
    except AppError as e:  # the client could not be built (undecryptable credentials, bad URL)
        log.warning("webhook not created for repository %s (%s)", repository.id, e.code)
        return False
    except Exception:  # a bug must not break discovery
        log.exception("webhook registration failed for repository %s", repository.id)
        return False
    finally:
        if host is not None:
            close_host(host)


def remove_webhook(session: Session, integration: Integration, repository: Repository) -> bool:
    """Delete our webhook from the host (repository disabled, integration deleted). True when
    it is gone (or there was none); never raises host errors."""
    if not repository.webhook_id:
        return True
    host: GitHost | None = None
    try:
        host = host_for(integration)
        return delete_with(session, host, repository).done
    except AppError as e:
        log.warning("webhook of repository %s not deleted (%s)", repository.id, e.code)
        return False
    except Exception:
        log.exception("webhook deletion failed for repository %s", repository.id)
        return False
    finally:
        if host is not None:
            close_host(host)
