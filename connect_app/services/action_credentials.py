"""Whose credentials a create-branch / create-pull-request action uses, and the host client built
with them.

With "require user PAT" on, the Jira user's own token for the integration
(:mod:`connect_app.services.user_tokens`); otherwise the integration's credentials. Nothing here
stores or logs a secret: the user's token is decrypted only to build the client.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from connect_app.hosts.base import Credentials, GitHost
from connect_app.integrations import host_for, host_for_user
from connect_app.models import Integration
from connect_app.services import user_tokens


def needs_user_token(integration: Integration) -> bool:
    return bool(integration.require_user_pat)


def user_credentials(session: Session, tenant_id: int, account_id: str, integration_id: int) -> Credentials | None:
    """The user's own usable token for the integration, or None (none saved, or refused since)."""
    return user_tokens.user_credentials(session, tenant_id, account_id, integration_id)


def mark_token_invalid(session: Session, tenant_id: int, account_id: str, integration_id: int, reason: str) -> None:
    """The host refused the user's token: remember it (flushed), so the dialog asks for a new one."""
    user_tokens.mark_token_invalid(session, tenant_id, account_id, integration_id, reason)


def action_host(integration: Integration, user: Credentials | None) -> GitHost:
    """A host client with the user's credentials when given (a rate limit is waited out only
    briefly: a person is waiting), else the integration's own (its OAuth token refreshed first
    when due, see :func:`connect_app.integrations.host_for`)."""
    if user is None:
        return host_for(integration)
    return host_for_user(integration, user)
