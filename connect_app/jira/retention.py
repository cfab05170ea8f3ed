"""What uninstall removes besides the database rows (README "Personal data and retention").

``tenants.uninstall`` deletes the tenant row and, through ``ON DELETE CASCADE``, every row it
owns; ``permissions.forget_tenant_caches`` drops the cached admin and BROWSE_PROJECTS answers.
:func:`forget_tenant` removes the rest that is keyed by the tenant:

* the bare git mirrors on disk (``<MIRRORS_PATH>/<tenant id>/``), which hold commit history
  with author names and email addresses;
* Redis caches named by the tenant id: Jira user lookups (email hash -> accountId), failed
  permission-check marks, the repository browser's compare and last-linked answers, the Jira
  project refresh throttle.

Left behind, by design or because it cannot be reached (documented in the README): index jobs
already queued for the tenant's repositories (they find no repository and end without doing
anything); per-credential rate budgets and ETags (keyed by a credential hash or URL, expire
within days); webhooks registered on git hosts (their credentials went with the tenant; the
hosts' deliveries are answered 404).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from connect_app.extensions import redis_conn
from connect_app.runtime import runtime

log = logging.getLogger(__name__)

# Keys "<prefix>:<tenant id>:..." (see the modules named).
TENANT_KEY_PREFIXES = (
    "gcj:jira-user",  # connect_app.jira.user_lookup
    "gcj:user-permission-failures",  # connect_app.services.user_permission_cache
    "gcj:browse-compare",  # connect_app.services.repository_history
    "gcj:browse-last-linked",  # connect_app.services.repository_history
)
PROJECTS_ATTEMPT_PREFIX = "gcj:jira-projects-attempt:"  # connect_app.indexing.housekeeping


def tenant_mirrors_dir(tenant_id: int, mirrors_dir: Path | None = None) -> Path:
    """``connect_app.indexing.mirror.mirror_path`` puts every mirror of a tenant here."""
    root = mirrors_dir if mirrors_dir is not None else runtime().settings.mirrors_dir
    return Path(root) / str(int(tenant_id))


def forget_tenant(tenant_id: int, *, conn: Redis | None = None, mirrors_dir: Path | None = None) -> dict[str, int]:
    """Remove the tenant's mirrors and Redis caches; never raises (logged). Returns counts."""
    removed = {"mirror_dirs": 0, "redis_keys": 0}
    path = tenant_mirrors_dir(tenant_id, mirrors_dir)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        removed["mirror_dirs"] = 0 if path.exists() else 1
        if path.exists():
            log.warning("uninstall: the mirrors of tenant %s could not all be removed", tenant_id)
    client = conn if conn is not None else redis_conn.client
    try:
        keys: list[bytes | str] = [f"{PROJECTS_ATTEMPT_PREFIX}{tenant_id}"]
        for prefix in TENANT_KEY_PREFIXES:
            keys.extend(client.scan_iter(match=f"{prefix}:{tenant_id}:*", count=500))
        for start in range(0, len(keys), 500):
            removed["redis_keys"] += int(client.delete(*keys[start : start + 500]))
    except RedisError as e:
        log.warning("uninstall: Redis caches of tenant %s not cleared (%s); they expire by themselves", tenant_id, e)
    return removed
