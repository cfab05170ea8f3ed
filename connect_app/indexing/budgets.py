"""The rate budget a host last reported for an integration's credential.

The host clients record every response's rate-limit headers in Redis
(:class:`~connect_app.hosts.ratelimit.RedisBudgetStore`, keyed by host and a
fingerprint of the secret); this reads it back for the dispatcher without any network
call. Building a host client decrypts the credentials and stretches the fingerprint,
so clients are kept per integration (and per credentials version) in this process.
"""

from __future__ import annotations

import logging
import threading

from redis.exceptions import RedisError

from connect_app.extensions import redis_conn
from connect_app.hosts.base import GitHost, RateBudget
from connect_app.models import Integration

log = logging.getLogger(__name__)

_MAX_CACHED = 4096
_hosts: dict[tuple[object, ...], GitHost | None] = {}
_lock = threading.Lock()


def cached_host(integration: Integration, *, allow_new: bool = True) -> tuple[GitHost | None, bool]:
    """(the integration's host client, whether it was built by this call). Built from the stored
    credentials (``build_host``, no token refresh, no network) and kept per integration and
    credentials version; None when it cannot be built (its runs say why) or, with ``allow_new``
    False, when none is cached yet."""
    from connect_app.hosts.registry import build_host
    from connect_app.integrations import host_config

    key = (
        integration.id,
        integration.provider,
        integration.base_url,
        integration.namespace,
        integration.credentials_encrypted,
        id(redis_conn.client),
    )
    with _lock:
        if key in _hosts:
            return _hosts[key], False
    if not allow_new:
        return None, False
    try:
        host: GitHost | None = build_host(host_config(integration))
    except Exception as e:  # a broken integration has no budget to read; its runs say why
        log.debug("no host client for integration %s: %s", integration.id, type(e).__name__)
        host = None
    with _lock:
        if len(_hosts) >= _MAX_CACHED:
            _hosts.clear()
        _hosts[key] = host
    return host, True


def read_budget(host: GitHost) -> RateBudget | None:
    """The budget ``host`` last recorded; None when unknown. Redis errors propagate."""
    try:
        return host.rate_budget()
    except RedisError:
        raise
    except Exception as e:
        log.debug("could not read a rate budget: %s", type(e).__name__)
        return None


def credential_budget(integration: Integration) -> RateBudget | None:
    """What the host last said about this credential's budget; None when unknown."""
    host, _ = cached_host(integration)
    return read_budget(host) if host is not None else None


def clear_cache() -> None:
    with _lock:
        _hosts.clear()
