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

_MAX_CACHED = 512
_hosts: dict[tuple[object, ...], GitHost] = {}
_lock = threading.Lock()


def credential_budget(integration: Integration) -> RateBudget | None:
    """What the host last said about this credential's budget; None when unknown."""
    from connect_app.integrations import host_for

    key = (
        integration.id,
        integration.provider,
        integration.base_url,
        integration.namespace,
        integration.credentials_encrypted,
        id(redis_conn.client),
    )
    with _lock:
        host = _hosts.get(key)
    if host is None:
        try:
            host = host_for(integration)
        except Exception as e:  # a broken integration has no budget to read; its runs say why
            log.debug("no host client for integration %s: %s", integration.id, type(e).__name__)
            return None
        with _lock:
            if len(_hosts) >= _MAX_CACHED:
                _hosts.clear()
            _hosts[key] = host
    try:
        return host.rate_budget()
    except RedisError:
        raise
    except Exception as e:
        log.debug("could not read the rate budget of integration %s: %s", integration.id, type(e).__name__)
        return None
