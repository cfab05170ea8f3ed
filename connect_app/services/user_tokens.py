"""A Jira user's own git-host tokens: one per user and integration, for the user settings page.

A token is stored only after the integration's host accepted it (``validate_credentials``
with the user's credentials), as a Fernet token of the JSON-encoded ``Credentials``; what
is readable is only its last four characters and the host account it belongs to. A refused
token stores nothing and raises :class:`TokenRefused` (a 400 whose message is the host's
reason in words). Another tenant's integration, or a disabled one, is a 404.

For other modules (create branch / pull request with the user's own token, the permission
checker): :func:`user_credentials` and :func:`mark_token_invalid`. Functions here flush;
the caller commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import (
    AppError,
    AuthError,
    HostAuthError,
    HostError,
    HostUnavailable,
    NotFound,
    PermissionDenied,
    RateLimited,
    UnsafeInput,
    ValidationError,
)
from connect_app.hosts.base import AuthType, Capability, Credentials, ProviderInfo
from connect_app.hosts.registry import provider_info
from connect_app.integrations import credentials_of, decode_credentials, encode_credentials, host_for_user
from connect_app.models import Integration, IntegrationStatus, UserToken, utcnow
from connect_app.runtime import runtime
from connect_app.services import user_permission_cache

log = logging.getLogger(__name__)

TOKEN_MAX_LENGTH = 4096
USERNAME_MAX_LENGTH = 255
REASON_MAX_LENGTH = 1000
MAX_DB_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL; a larger one cannot exist
# What a user's own token is for: acting on the host as them, and showing what they may read.
TOKEN_USES = frozenset({Capability.CREATE_BRANCH, Capability.CREATE_PULL_REQUEST, Capability.USER_PERMISSIONS})
# Credentials a user can paste (OAuth needs a sign-in flow, SSH keys and "none" are not tokens).
USER_AUTH_TYPES = (AuthType.PAT, AuthType.PASSWORD, AuthType.AWS)


class TokenRefused(AppError):
    """The host did not accept the token."""

    code = "token_refused"
    status = 400


def user_auth_types(info: ProviderInfo) -> tuple[AuthType, ...]:
    return tuple(t for t in USER_AUTH_TYPES if t in info.auth_types)


def accepts_user_tokens(info: ProviderInfo) -> bool:
    return bool(info.capabilities & TOKEN_USES) and bool(user_auth_types(info))


@dataclass(frozen=True)
class TokenEntry:
    """One integration on the user's settings page, and the user's token for it (if any)."""

    integration: Integration
    info: ProviderInfo
    token: UserToken | None

    @property
    def required(self) -> bool:
        return bool(self.integration.require_user_pat or self.integration.enforce_permissions)

    @property
    def auth_types(self) -> tuple[AuthType, ...]:
        return user_auth_types(self.info)


@dataclass(frozen=True)
class TokenCheck:
    ok: bool
    message: str
    entry: TokenEntry


# --------------------------------------------------------------------------- reading


def _usable(integration: Integration) -> ProviderInfo | None:
    if integration.status == IntegrationStatus.DISABLED.value:
        return None
    try:
        info = provider_info(integration.provider)
    except ValidationError:
        return None
    return info if accepts_user_tokens(info) else None


def user_integration(session: Session, tenant_id: int, integration_id: int) -> tuple[Integration, ProviderInfo]:
    """The tenant's integration a user may keep a token for, or ``NotFound`` (another tenant's,
    disabled, or a host where a personal token has no use)."""
    found = None
    if 0 < integration_id <= MAX_DB_ID:
        found = session.scalars(
            select(Integration).where(Integration.id == integration_id, Integration.tenant_id == tenant_id)
        ).first()
    info = _usable(found) if found is not None else None
    if found is None or info is None:
        raise NotFound(f"There is no integration {integration_id} to add a token for.", code="integration_not_found")
    return found, info


def _token_row(session: Session, tenant_id: int, account_id: str, integration_id: int) -> UserToken | None:
    return session.scalars(
        select(UserToken).where(
            UserToken.tenant_id == tenant_id,
            UserToken.account_id == account_id,
            UserToken.integration_id == integration_id,
        )
    ).first()


def list_tokens(session: Session, tenant_id: int, account_id: str) -> list[TokenEntry]:
    """Every integration of the tenant a personal token is useful for (disabled ones left out),
    required ones first, then by name, each with the user's token or ``None``."""
    integrations = session.scalars(
        select(Integration)
        .where(Integration.tenant_id == tenant_id, Integration.status != IntegrationStatus.DISABLED.value)
        .order_by(Integration.id)
    ).all()
    tokens = {
        t.integration_id: t
        for t in session.scalars(
            select(UserToken).where(UserToken.tenant_id == tenant_id, UserToken.account_id == account_id)
        )
    }
    entries = []
    for integration in integrations:
        info = _usable(integration)
        if info is not None:
            entries.append(TokenEntry(integration, info, tokens.get(integration.id)))
    entries.sort(key=lambda e: (not e.required, e.integration.display_name.lower(), e.integration.id))
    return entries


def entry_for(session: Session, tenant_id: int, account_id: str, integration_id: int) -> TokenEntry:
    integration, info = user_integration(session, tenant_id, integration_id)
    return TokenEntry(integration, info, _token_row(session, tenant_id, account_id, integration.id))


def decrypt_token(row: UserToken) -> Credentials:
    return decode_credentials(runtime().secrets.decrypt(row.credentials_encrypted))


def user_credentials(session: Session, tenant_id: int, account_id: str, integration_id: int) -> Credentials | None:
    """The user's own credentials for the integration, or ``None`` when they have no token or it
    was refused since it was saved (``invalid_reason`` set)."""
    row = _token_row(session, tenant_id, account_id, integration_id)
    if row is None or row.invalid_reason:
        return None
    return decrypt_token(row)


# --------------------------------------------------------------------------- input


def credentials_from_input(
    integration: Integration, info: ProviderInfo, token: str, username: str | None
) -> Credentials:
    """What the user pasted, as credentials the host understands: a token alone is a personal
    access token; with a user name it is a user name and password (app password, HTTP password)
    where the host takes those; on AWS the user name is the access key id and the token the
    secret key, in the integration's region."""
    types = user_auth_types(info)
    if AuthType.AWS in types:
        if not username:
            raise ValidationError(
                f"{info.name} needs your AWS access key id in the user name field, with the secret access key "
                "as the token.",
                code="username_required",
            )
        region = credentials_of(integration).extra.get("region")
        return Credentials(AuthType.AWS, username=username, password=token, extra={"region": region} if region else {})
    if username and AuthType.PASSWORD in types:
        return Credentials(AuthType.PASSWORD, username=username, password=token)
    if AuthType.PAT in types:
        return Credentials(AuthType.PAT, token=token, username=username)
    raise ValidationError(
        f"{info.name} needs your user name together with the password or HTTP password.", code="username_required"
    )


def _clean_token(token: str) -> str:
    token = token.strip()
    if not token:
        raise ValidationError("Paste the token to save.", code="token_required")
    if len(token) > TOKEN_MAX_LENGTH:
        raise ValidationError(f"The token is longer than {TOKEN_MAX_LENGTH} characters.", code="token_too_long")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) > 0xFF for ch in token):  # headers carry Latin-1 only
        raise ValidationError(
            "The token contains spaces, line breaks or characters no token has; copy it again without them.",
            code="token_malformed",
        )
    return token


def _clean_username(username: str | None) -> str | None:
    if username is None:
        return None
    username = username.strip()
    if len(username) > USERNAME_MAX_LENGTH:
        raise ValidationError(f"The user name is longer than {USERNAME_MAX_LENGTH} characters.", code="bad_username")
    if any(ord(ch) > 0xFF for ch in username):  # sent in a Basic auth header: Latin-1 only
        raise ValidationError("The user name has characters no git host accepts.", code="bad_username")
    return username or None


def last4(token: str) -> str:
    """The end of the token shown on the settings page; nothing for a short token, where four
    characters would give away too much of it."""
    return token[-4:] if len(token) >= 12 else ""


# --------------------------------------------------------------------------- the host's word


def _where(integration: Integration, info: ProviderInfo) -> str:
    name = integration.display_name
    return name if name.lower() == info.name.lower() else f"{name} ({info.name})"


def _root_reason(e: AppError) -> str:
    """A host module may reword a refusal for admins; the host's own words are on the cause."""
    cause = e.__cause__
    return cause.message if isinstance(cause, AppError) and cause.message else e.message


@contextmanager
def _host_answers(integration: Integration, info: ProviderInfo) -> Iterator[None]:
    """Host failures during a token check as errors a user can act on (never a 401: that
    status means the Jira token failed)."""
    where = _where(integration, info)
    try:
        yield
    except HostAuthError as e:
        raise TokenRefused(
            f"{where} did not accept this token ({_root_reason(e)}). It may be mistyped, expired or revoked: "
            "create a new one and add it again."
        ) from e
    except (AuthError, PermissionDenied) as e:  # HostPermissionDenied: missing scopes or access
        raise TokenRefused(f"{where} accepted this token but it is not enough: {e.message}") from e
    except RateLimited as e:
        raise RateLimited(
            f"{where} is rate limiting this token right now; try again later. {e.message}", reset_at=e.reset_at
        ) from e
    except HostUnavailable as e:
        raise AppError(
            f"Could not reach {where} to check the token ({e.message}). Try again in a moment.",
            code="host_unreachable",
            status=502,
        ) from e
    except UnsafeInput as e:
        raise AppError(
            f"{where} cannot be reached from this app ({e.message}). Ask your Jira administrator to check the "
            "integration.",
            code="host_refused_by_app",
            status=502,
        ) from e
    except ValidationError as e:  # the host module refused the credentials' shape before any call
        raise ValidationError(f"{where}: {e.message}", code="token_not_usable") from e
    except HostError as e:
        raise AppError(f"{where} could not check the token: {e.message}", code="host_error", status=502) from e


def check_live(integration: Integration, info: ProviderInfo, credentials: Credentials) -> str:
    """Ask the integration's host who the credentials belong to (raises, see :func:`_host_answers`)."""
    with _host_answers(integration, info):
        host = host_for_user(integration, credentials)
        try:
            return host.validate_credentials()[:255]
        finally:
            close = getattr(host, "close", None)
            if callable(close):
                close()


# --------------------------------------------------------------------------- changes


def save_token(
    session: Session, tenant_id: int, account_id: str, integration_id: int, token: str, username: str | None = None
) -> TokenEntry:
    """Check the token live with the integration's host, then store it encrypted (replacing the
    user's previous one, whose cached permissions are dropped). Refused: nothing changes."""
    integration, info = user_integration(session, tenant_id, integration_id)
    credentials = credentials_from_input(integration, info, _clean_token(token), _clean_username(username))
    account_name = check_live(integration, info, credentials)
    secret = credentials.password if credentials.auth_type in (AuthType.PASSWORD, AuthType.AWS) else credentials.token
    row = _token_row(session, tenant_id, account_id, integration.id)
    if row is None:
        row = UserToken(tenant_id=tenant_id, account_id=account_id, integration_id=integration.id)
        session.add(row)
    else:
        user_permission_cache.drop(session, tenant_id, account_id, user_token_id=row.id)
    row.credentials_encrypted = runtime().secrets.encrypt(encode_credentials(credentials))
    row.last4 = last4(secret or "")
    row.host_account_name = account_name or None
    row.validated_at = utcnow()
    row.invalid_reason = None
    session.flush()
    return TokenEntry(integration, info, row)


def recheck_token(session: Session, tenant_id: int, account_id: str, integration_id: int) -> TokenCheck:
    """Check the stored token again. Refused: it is marked invalid (so nothing uses it) and the
    result says why; accepted: it is valid again. A host that cannot answer changes nothing."""
    integration, info = user_integration(session, tenant_id, integration_id)
    row = _token_row(session, tenant_id, account_id, integration.id)
    if row is None:
        raise NotFound(f"You have not added a token for {_where(integration, info)} yet.", code="token_not_found")
    try:
        account_name = check_live(integration, info, decrypt_token(row))
    except TokenRefused as e:
        mark_token_invalid(session, tenant_id, account_id, integration.id, e.message)
        return TokenCheck(False, e.message, TokenEntry(integration, info, row))
    if row.invalid_reason:
        user_permission_cache.drop(session, tenant_id, account_id, user_token_id=row.id)
    row.host_account_name = account_name or row.host_account_name
    row.validated_at = utcnow()
    row.invalid_reason = None
    session.flush()
    who = f" as {account_name}" if account_name else ""
    return TokenCheck(True, f"{_where(integration, info)} accepted the token{who}.", TokenEntry(integration, info, row))


def delete_token(session: Session, tenant_id: int, account_id: str, integration_id: int) -> bool:
    """Remove the user's token and its cached permissions; ``False`` when there was none."""
    integration, _info = user_integration(session, tenant_id, integration_id)
    row = _token_row(session, tenant_id, account_id, integration.id)
    if row is None:
        return False
    user_permission_cache.drop(session, tenant_id, account_id, user_token_id=row.id)
    session.delete(row)
    session.flush()
    return True


def mark_token_invalid(session: Session, tenant_id: int, account_id: str, integration_id: int, reason: str) -> None:
    """The host refused the user's token after it was saved (expired, revoked): keep the row so
    the settings page can say why, stop using it (:func:`user_credentials` returns ``None``) and
    drop the user's cached permissions for that integration. ``reason`` is shown to the user
    (no secrets). No token: nothing to do. Flushed, not committed."""
    row = _token_row(session, tenant_id, account_id, integration_id)
    if row is None:
        return
    row.invalid_reason = (reason.strip() or "The host refused this token.")[:REASON_MAX_LENGTH]
    user_permission_cache.drop(session, tenant_id, account_id, user_token_id=row.id)
    session.flush()
    log.info("user token for integration %s marked invalid", integration_id)
