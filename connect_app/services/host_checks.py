"""The wizard's questions to a git host, answered in words an admin can act on.

:func:`verify` checks a connection live (SSRF guard, then ``validate_credentials``);
:func:`open_host` builds the client and maps every host failure (:func:`host_errors`) to a
4xx about the field to fix: never a 401 (that status means the *Jira* token failed), never
a secret. :func:`refuse_duplicate` keeps one integration per repository (plain git) or per
server, namespace and credential. No database writes here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import (
    AppError,
    AuthError,
    Conflict,
    HostError,
    HostNotFound,
    HostUnavailable,
    PermissionDenied,
    RateLimited,
    UnsafeInput,
    ValidationError,
)
from connect_app.hosts.base import GitHost, ProviderId, ProviderInfo, RemoteRepository
from connect_app.hosts.netguard import check_url
from connect_app.hosts.plain_git import repository_key
from connect_app.hosts.registry import HostConfig, build_host
from connect_app.indexing.git import validate_clone_url
from connect_app.models import Integration, RepositorySelection
from connect_app.services.admin_input import ConnectionRequest, FieldError, RepositoryChoice


def _where(info: ProviderInfo, base_url: str | None) -> str:
    return f"{info.name} at {base_url}" if base_url else info.name


_CONFIG_FIELDS = {"base_url_required": "base_url", "organization_required": "namespace"}


@contextmanager
def host_errors(info: ProviderInfo, base_url: str | None, namespace: str | None = None) -> Iterator[None]:
    """Re-raise host failures as 4xx errors about the field the admin has to fix."""
    where = _where(info, base_url)
    try:
        yield
    except (RateLimited, FieldError):
        raise
    except UnsafeInput as e:
        raise FieldError("base_url", e.message, code="unsafe_url") from e
    except ValidationError as e:  # the host module refused the configuration before any call
        raise FieldError(_CONFIG_FIELDS.get(e.code, "auth"), e.message, code=e.code) from e
    except AuthError as e:  # includes HostAuthError; a 401 here would read as "the Jira token failed"
        raise FieldError("auth", e.message, code="bad_credentials") from e
    except PermissionDenied as e:  # includes HostPermissionDenied (missing scopes, no access)
        code = "missing_scopes" if "scope" in e.message.lower() else "insufficient_permissions"
        raise FieldError("auth", e.message, code=code) from e
    except HostNotFound as e:
        check = "the server URL and the namespace" if namespace else "the server URL"
        raise FieldError(
            "namespace" if namespace else "base_url",
            f"{where} answered 'not found' ({e.message}). Check {check}.",
            code="host_not_found",
        ) from e
    except HostUnavailable as e:
        raise FieldError(
            "base_url",
            f"Could not reach {where}: {e.message}. Check the URL and that the server is up and "
            "reachable from this app.",
            code="host_unreachable",
        ) from e
    except HostError as e:
        raise AppError(f"{where} failed: {e.message}", code=e.code, status=502) from e


def check_base_url(info: ProviderInfo, base_url: str | None, *, allow_private: bool) -> None:
    """The SSRF guard, up front, so a bad URL is refused with a clear message before any call."""
    if base_url is None:
        return
    with host_errors(info, base_url):
        if info.id is ProviderId.GIT:
            validate_clone_url(base_url, allow_private=allow_private, resolve=True)
        else:
            check_url(base_url, allow_private=allow_private)


@contextmanager
def open_host(conn: ConnectionRequest, *, allow_private: bool) -> Iterator[GitHost]:
    with host_errors(conn.provider, conn.base_url, conn.namespace):
        host = build_host(
            HostConfig(
                provider=conn.provider.id,
                credentials=conn.credentials,
                base_url=conn.base_url,
                namespace=conn.namespace,
                allow_private=allow_private,
            )
        )
        try:
            yield host
        finally:
            close = getattr(host, "close", None)
            if callable(close):
                close()


@dataclass(frozen=True)
class Verified:
    account_name: str
    repositories: list[RemoteRepository] | None = None  # when asked for
    truncated: bool = False


def verify(conn: ConnectionRequest, *, allow_private: bool, list_limit: int | None = None) -> Verified:
    """The wizard's "check credentials" step: SSRF guard, then the host itself."""
    check_base_url(conn.provider, conn.base_url, allow_private=allow_private)
    with open_host(conn, allow_private=allow_private) as host:
        account = host.validate_credentials()
        if list_limit is None:
            return Verified(account)
        listed: list[RemoteRepository] = []
        for remote in host.list_repositories(namespace=conn.namespace):
            if len(listed) == list_limit:
                return Verified(account, listed, truncated=True)
            listed.append(remote)
        return Verified(account, listed)


def picked_remotes(host: GitHost, conn: ConnectionRequest, picked: tuple[str, ...]) -> list[RemoteRepository]:
    """The host's repositories for the picked ids (or full names); refuses ids it does not list."""
    wanted = set(picked)
    found: dict[str, RemoteRepository] = {}
    for remote in host.list_repositories(namespace=conn.namespace):
        for key in (remote.external_id, remote.name):
            if key in wanted and key not in found:
                found[key] = remote
        if len(found) == len(wanted):
            break
    missing = [p for p in picked if p not in found]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10]) + (" ..." if len(missing) > 10 else "")
        scope = f" in {conn.namespace!r}" if conn.namespace else ""
        raise FieldError(
            "repositories",
            f"{len(missing)} picked repositor{'y is' if len(missing) == 1 else 'ies are'} not visible to these "
            f"credentials{scope}: {shown}",
            code="unknown_repositories",
        )
    unique: dict[str, RemoteRepository] = {}
    for p in picked:
        unique.setdefault(found[p].external_id, found[p])
    return list(unique.values())


def remotes_to_store(host: GitHost, conn: ConnectionRequest, choice: RepositoryChoice) -> list[RemoteRepository]:
    """What to store right away: the picked repositories, or a plain git integration's one
    repository; discovery adds the rest ("all", "all_future")."""
    if choice.selection is RepositorySelection.SELECTED:
        return picked_remotes(host, conn, choice.picked)
    if conn.provider.id is ProviderId.GIT:
        return list(host.list_repositories(namespace=conn.namespace))
    return []


def _same_url(a: str | None, b: str | None) -> bool:
    return (a or "").rstrip("/").lower() == (b or "").rstrip("/").lower()


def refuse_duplicate(
    session: Session, tenant_id: int, conn: ConnectionRequest, key: str, *, exclude_id: int | None = None
) -> None:
    """One connection per repository (plain git) or per host, namespace and credential (the rest)."""
    others = session.scalars(
        select(Integration).where(
            Integration.tenant_id == tenant_id,
            Integration.provider == conn.provider.id.value,
            Integration.id != (exclude_id or 0),
        )
    )
    for other in others:
        if conn.provider.id is ProviderId.GIT:
            same = repository_key(other.base_url or "") == repository_key(conn.base_url or "")
            what = "This repository"
        else:
            same = (
                other.credential_key == key
                and _same_url(other.base_url, conn.base_url)
                and (other.namespace or "") == (conn.namespace or "")
            )
            what = f"This {conn.provider.name} connection (same server, namespace and credentials)"
        if same:
            raise Conflict(
                f"{what} is already connected as integration {other.display_name!r} (id {other.id}); "
                "edit that one instead of adding it twice.",
                code="duplicate_integration",
            )
