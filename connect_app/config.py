"""Settings, read once from the environment into a frozen dataclass.

Nothing here touches the network, the database or Redis; ``Settings.from_env``
only parses strings. ``create_app(config)`` accepts a ready ``Settings`` so tests
never have to mutate ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from connect_app.errors import ConfigError

DEFAULT_APP_KEY = "git-connect-for-jira"
DEFAULT_INSTALL_KEYS_URL = "https://connect-install-keys.atlassian.com"
DEFAULT_JIRA_PATTERNS = ("https://*.atlassian.net", "https://*.jira.com")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    v = value.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"expected a boolean (true/false), got {value!r}")


def _int(name: str, value: str | None, default: int) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from e


def _csv(value: str | None, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    if value is None or value.strip() == "":
        return default
    return tuple(p.strip() for p in value.split(",") if p.strip())


@dataclass(frozen=True)
class Settings:
    base_url: str = "http://127.0.0.1:8000"
    port: int = 8000
    database_url: str | None = None
    redis_url: str | None = None
    app_key: str = DEFAULT_APP_KEY
    app_name: str = "Git Connect for Jira"
    encryption_keys: tuple[str, ...] = ()
    connect_install_keys_url: str = DEFAULT_INSTALL_KEYS_URL
    jira_base_url_patterns: tuple[str, ...] = DEFAULT_JIRA_PATTERNS
    allow_private_hosts: bool = False
    environment: Environment = Environment.DEVELOPMENT
    instance_path: Path = field(default_factory=lambda: Path("instance").resolve())
    max_body_bytes: int = 1024 * 1024
    jwt_leeway_seconds: int = 30
    http_timeout_seconds: float = 10.0
    admin_check_cache_seconds: int = 300
    install_key_cache_seconds: int = 3600
    log_level: str = "INFO"
    # -- indexing
    mirrors_path: Path | None = None  # bare mirrors, one per repository; default <instance>/mirrors
    index_batch_size: int = 5000  # commits written (with the cursor) per transaction
    max_jobs_per_tenant: int = 4  # index jobs queued or running at once for one tenant
    max_jobs_per_credential: int = 2  # ... and for one host credential
    index_run_retention_days: int = 30
    webhook_max_body_bytes: int = 25 * 1024 * 1024  # GitHub's own cap on a delivery
    # -- user tokens
    # How long what a user's own token may read on a repository is trusted before the host is asked again.
    user_permission_cache_seconds: int = 300
    # -- operations
    log_format: str = "text"  # "text" or "json" (one JSON object per line, with request/job ids)
    metrics_token: str | None = None  # when set, /metrics wants "Authorization: Bearer <token>"
    # -- marketplace
    enable_licensing: bool = False  # the descriptor's enableLicensing; the ``lic`` parameter is then enforced
    personal_data_report_url: str | None = None  # Atlassian's personal-data reporting API; None: per-site default
    personal_data_cycle_days: int = 7  # how often the accountIds we hold are reported

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        port = _int("PORT", e.get("PORT"), 8000)
        try:
            environment = Environment(e.get("APP_ENV", "development").strip().lower() or "development")
        except ValueError as err:
            raise ConfigError("APP_ENV must be one of development, test, production") from err
        settings = cls(
            base_url=(e.get("BASE_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
            port=port,
            database_url=e.get("DATABASE_URL") or None,
            redis_url=e.get("REDIS_URL") or None,
            app_key=e.get("APP_KEY") or DEFAULT_APP_KEY,
            encryption_keys=_csv(e.get("ENCRYPTION_KEYS")),
            connect_install_keys_url=(e.get("CONNECT_INSTALL_KEYS_URL") or DEFAULT_INSTALL_KEYS_URL).rstrip("/"),
            jira_base_url_patterns=_csv(e.get("JIRA_BASE_URL_PATTERNS"), DEFAULT_JIRA_PATTERNS),
            allow_private_hosts=_bool(e.get("ALLOW_PRIVATE_HOSTS")),
            environment=environment,
            instance_path=Path(e.get("INSTANCE_PATH") or "instance").resolve(),
            log_level=(e.get("LOG_LEVEL") or "INFO").upper(),
            mirrors_path=Path(e["MIRRORS_PATH"]).resolve() if e.get("MIRRORS_PATH") else None,
            index_batch_size=_int("INDEX_BATCH_SIZE", e.get("INDEX_BATCH_SIZE"), 5000),
            max_jobs_per_tenant=_int("MAX_JOBS_PER_TENANT", e.get("MAX_JOBS_PER_TENANT"), 4),
            max_jobs_per_credential=_int("MAX_JOBS_PER_CREDENTIAL", e.get("MAX_JOBS_PER_CREDENTIAL"), 2),
            index_run_retention_days=_int("INDEX_RUN_RETENTION_DAYS", e.get("INDEX_RUN_RETENTION_DAYS"), 30),
            user_permission_cache_seconds=_int(
                "USER_PERMISSION_CACHE_SECONDS", e.get("USER_PERMISSION_CACHE_SECONDS"), 300
            ),
            log_format=(e.get("LOG_FORMAT") or ("json" if environment is Environment.PRODUCTION else "text"))
            .strip()
            .lower(),
            metrics_token=e.get("METRICS_TOKEN") or None,
            enable_licensing=_bool(e.get("ENABLE_LICENSING")),
            personal_data_report_url=(e.get("PERSONAL_DATA_REPORT_URL") or "").strip().rstrip("/") or None,
            personal_data_cycle_days=_int("PERSONAL_DATA_CYCLE_DAYS", e.get("PERSONAL_DATA_CYCLE_DAYS"), 7),
        )
        settings.validate()
        return settings

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def mirrors_dir(self) -> Path:
        return self.mirrors_path or Path(self.instance_path) / "mirrors"

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    def validate(self) -> None:
        """Refuse to start in production without what production needs."""
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError("BASE_URL must start with https:// (or http:// for local development)")
        if self.user_permission_cache_seconds < 0:
            raise ConfigError("USER_PERMISSION_CACHE_SECONDS must be 0 or more")
        if self.log_format not in {"text", "json"}:
            raise ConfigError("LOG_FORMAT must be text or json")
        if self.personal_data_cycle_days < 1:
            raise ConfigError("PERSONAL_DATA_CYCLE_DAYS must be 1 or more")
        if not self.is_production:
            return
        missing = [
            name
            for name, value in (
                ("ENCRYPTION_KEYS", self.encryption_keys),
                ("DATABASE_URL", self.database_url),
                ("REDIS_URL", self.redis_url),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"production mode (APP_ENV=production) needs {', '.join(missing)} to be set")
        if not self.base_url.startswith("https://"):
            raise ConfigError("production mode needs an https:// BASE_URL (Jira only installs apps over HTTPS)")
        if self.database_url and self.database_url.startswith("sqlite"):
            raise ConfigError("production mode needs PostgreSQL; DATABASE_URL points at SQLite")
