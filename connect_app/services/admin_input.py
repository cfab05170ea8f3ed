"""What the admin API accepts, checked field by field before anything is stored.

Every problem is a :class:`FieldError`: a 400 whose message names the field (``settings.project_keys[2]``)
in words an admin can act on, and whose ``field`` lets the page highlight the input. Nothing
here touches the network or the database.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from connect_app.errors import ValidationError
from connect_app.hosts.base import AuthType, Capability, Credentials, ProviderId, ProviderInfo
from connect_app.hosts.registry import provider_info
from connect_app.models import RepositorySelection, SmartCommitMode
from connect_app.services.integration_settings import (
    BRANCH_TEMPLATE_KEY,
    FEATURE_LABELS,
    JIRA_NEEDS_PANEL,
    MAX_PROJECT_KEYS,
    REINDEX_MINUTES_MAX,
    REINDEX_MINUTES_MIN,
    SMART_COMMIT_MAX_AGE_DAYS_MAX,
    SMART_COMMIT_MAX_AGE_DAYS_MIN,
    SMART_COMMITS_BY_KEY,
    SMART_COMMITS_MAX_AGE_KEY,
    Feature,
    project_key_problem,
    supports,
    template_problem,
)

NAME_MAX_LENGTH = 255
URL_MAX_LENGTH = 1024
SECRET_MAX_LENGTH = 16_384  # an SSH private key or a long OAuth token fits
MAX_EXTRA_FIELDS = 16
MAX_PICKED_REPOSITORIES = 5_000
EXTERNAL_ID_MAX_LENGTH = 255


class FieldError(ValidationError):
    """A 400 about one field of the request."""

    def __init__(self, field_path: str, message: str, *, code: str = "invalid_field") -> None:
        super().__init__(message, code=code)
        self.field = field_path


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


class Fields:
    """Typed reads from one JSON object; errors name the field's full path."""

    def __init__(self, data: Any, path: str = "") -> None:
        if not isinstance(data, dict):
            what = path or "the request body"
            raise FieldError(path or "body", f"{what} must be a JSON object, not {_type_name(data)}")
        self.data: dict[str, Any] = data
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def only(self, allowed: Collection[str]) -> None:
        unknown = sorted(k for k in self.data if k not in allowed)
        if unknown:
            raise FieldError(
                self.name(unknown[0]),
                f"unknown field {self.name(unknown[0])!r}; expected one of: {', '.join(sorted(allowed))}",
                code="unknown_field",
            )

    def string(
        self, key: str, *, required: bool = False, max_length: int = NAME_MAX_LENGTH, strip: bool = True
    ) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise FieldError(self.name(key), f"{self.name(key)} is required", code="required")
            return None
        if not isinstance(value, str):
            raise FieldError(self.name(key), f"{self.name(key)} must be a string, not {_type_name(value)}")
        if strip:
            value = value.strip()
        if not value:
            if required:
                raise FieldError(self.name(key), f"{self.name(key)} must not be empty", code="required")
            return None
        if len(value) > max_length:
            raise FieldError(self.name(key), f"{self.name(key)} must be at most {max_length} characters")
        if "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise FieldError(self.name(key), f"{self.name(key)} must not contain NUL characters")
        return value

    def required_string(self, key: str, *, max_length: int = NAME_MAX_LENGTH) -> str:
        value = self.string(key, required=True, max_length=max_length)
        assert value is not None  # string() raised otherwise
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise FieldError(self.name(key), f"{self.name(key)} must be true or false, not {_type_name(value)}")
        return value

    def integer(self, key: str, *, minimum: int, maximum: int) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(self.name(key), f"{self.name(key)} must be a whole number, not {_type_name(value)}")
        if not minimum <= value <= maximum:
            raise FieldError(self.name(key), f"{self.name(key)} must be between {minimum} and {maximum}")
        return value

    def object(self, key: str) -> Fields | None:
        value = self.data.get(key)
        return None if value is None else Fields(value, self.name(key))


# --- settings ----------------------------------------------------------------------


def parse_project_keys(value: Any, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(path, f"{path} must be a list of Jira project keys (empty: every project)")
    if len(value) > MAX_PROJECT_KEYS:
        raise FieldError(path, f"{path} may hold at most {MAX_PROJECT_KEYS} project keys")
    keys: list[str] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, str):
            raise FieldError(where, f"{where} must be a string, not {_type_name(item)}", code="invalid_project_key")
        key = item.strip().upper()
        problem = project_key_problem(key)
        if problem:
            raise FieldError(where, f"{where} ({item!r}) {problem}", code="invalid_project_key")
        if key not in keys:
            keys.append(key)
    return keys


def parse_settings(fields: Fields, info: ProviderInfo) -> dict[str, Any]:
    """The settings given (and only those), validated: column values plus ``features`` changes."""
    fields.only(
        {
            "require_user_pat",
            "enforce_permissions",
            "project_keys",
            "reindex_interval_minutes",
            "features",
            "branch_name_template",
            SMART_COMMITS_BY_KEY,
            SMART_COMMITS_MAX_AGE_KEY,
        }
    )
    out: dict[str, Any] = {}
    for flag in ("require_user_pat", "enforce_permissions"):
        value = fields.boolean(flag)
        if value is not None:
            out[flag] = value
    if out.get("enforce_permissions") and not supports_user_permissions(info):
        raise FieldError(
            fields.name("enforce_permissions"),
            f"{info.name} cannot tell which repositories a user may see, so host permissions cannot be enforced",
            code="unsupported_setting",
        )
    if fields.has("project_keys"):
        out["project_keys"] = parse_project_keys(fields.data["project_keys"], fields.name("project_keys"))
    if fields.has("reindex_interval_minutes"):
        out["reindex_interval_minutes"] = _interval(fields.data["reindex_interval_minutes"], fields)
    if fields.has("branch_name_template"):
        template = fields.required_string("branch_name_template", max_length=10_000)
        problem = template_problem(template)
        if problem:
            where = fields.name("branch_name_template")
            raise FieldError(where, f"{where} {problem}", code="invalid_branch_template")
        out[BRANCH_TEMPLATE_KEY] = template
    features = fields.object("features")
    switches = parse_features(features, info) if features is not None else {}
    smart = parse_smart_commit_settings(fields, switches)
    if features is not None or smart:
        # Stored in Integration.features beside the switches (merged, never replaced).
        out["features"] = {**switches, **smart}
    return out


def parse_smart_commit_settings(fields: Fields, switches: Mapping[str, bool]) -> dict[str, Any]:
    """``smart_commits_by`` ("app" | "jira") and ``smart_commits_max_age_days`` (1..365).
    "jira" with the Development panel switched off in the same request is refused here; with
    it off in the stored settings, when the settings are merged
    (:func:`connect_app.services.integration_settings.merged_features`)."""
    out: dict[str, Any] = {}
    where = fields.name(SMART_COMMITS_BY_KEY)
    runner = fields.data.get(SMART_COMMITS_BY_KEY)
    if runner is not None:
        choices = [m.value for m in SmartCommitMode]
        if runner not in choices:
            raise FieldError(
                where,
                f'{where} must be "app" (Git Connect runs smart commits as the commit author) or "jira" '
                "(Jira runs them from its Development panel)",
                code="invalid_smart_commits_by",
            )
        if runner == SmartCommitMode.JIRA.value and switches.get(Feature.DEVELOPMENT_PANEL.value) is False:
            raise FieldError(where, f"{where}: {JIRA_NEEDS_PANEL}", code="smart_commits_need_development_panel")
        out[SMART_COMMITS_BY_KEY] = runner
    if fields.has(SMART_COMMITS_MAX_AGE_KEY):
        age_where = fields.name(SMART_COMMITS_MAX_AGE_KEY)
        value = fields.data[SMART_COMMITS_MAX_AGE_KEY]
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(
                age_where,
                f"{age_where} must be a whole number of days (commits older than that never run smart commits), "
                f"not {_type_name(value)}",
            )
        if not SMART_COMMIT_MAX_AGE_DAYS_MIN <= value <= SMART_COMMIT_MAX_AGE_DAYS_MAX:
            raise FieldError(
                age_where,
                f"{age_where} must be between {SMART_COMMIT_MAX_AGE_DAYS_MIN} and {SMART_COMMIT_MAX_AGE_DAYS_MAX} days",
            )
        out[SMART_COMMITS_MAX_AGE_KEY] = value
    return out


def supports_user_permissions(info: ProviderInfo) -> bool:
    return Capability.USER_PERMISSIONS in info.capabilities


def _interval(value: Any, fields: Fields) -> int | None:
    where = fields.name("reindex_interval_minutes")
    if value is None:
        return None  # adaptive
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(where, f"{where} must be a whole number of minutes, or null for the adaptive schedule")
    if not REINDEX_MINUTES_MIN <= value <= REINDEX_MINUTES_MAX:
        raise FieldError(
            where,
            f"{where} must be between {REINDEX_MINUTES_MIN} and {REINDEX_MINUTES_MAX} minutes "
            "(or null for the adaptive schedule)",
        )
    return value


def parse_features(fields: Fields, info: ProviderInfo) -> dict[str, bool]:
    fields.only({f.value for f in Feature})
    out: dict[str, bool] = {}
    for feature in Feature:
        value = fields.boolean(feature.value)
        if value is None:
            continue
        if value and not supports(info, feature):
            raise FieldError(
                fields.name(feature.value),
                f"{info.name} cannot {FEATURE_LABELS[feature]}; leave {fields.name(feature.value)} off",
                code="unsupported_feature",
            )
        out[feature.value] = value
    return out


# --- credentials -------------------------------------------------------------------

_AWS_ALIASES = {"access_key_id": "username", "secret_access_key": "password"}


def parse_credentials(fields: Fields, info: ProviderInfo) -> Credentials:
    """``{type, token?, username?, password?, <extra string fields>}`` for ``info``'s auth types."""
    raw_type = fields.required_string("type", max_length=16)
    allowed = ", ".join(a.value for a in info.auth_types)
    try:
        auth_type = AuthType(raw_type)
    except ValueError:
        raise FieldError(
            fields.name("type"), f"unknown auth type {raw_type!r}; {info.name} accepts: {allowed}", code="bad_auth_type"
        ) from None
    if auth_type not in info.auth_types:
        raise FieldError(
            fields.name("type"),
            f"{info.name} does not accept {auth_type.value} credentials; use one of: {allowed}",
            code="bad_auth_type",
        )
    values: dict[str, str] = {}
    for key, value in fields.data.items():
        if key == "type" or value is None:
            continue
        if not isinstance(value, str):
            raise FieldError(fields.name(key), f"{fields.name(key)} must be a string, not {_type_name(value)}")
        if len(value) > SECRET_MAX_LENGTH:
            raise FieldError(fields.name(key), f"{fields.name(key)} is too long")
        if any(ord(ch) > 0xFF for ch in value):  # HTTP headers carry Latin-1 only: no host could receive it
            raise FieldError(fields.name(key), f"{fields.name(key)} has characters no git host accepts; paste it again")
        if value.strip():
            values[_AWS_ALIASES.get(key, key) if auth_type is AuthType.AWS else key] = value.strip()
    token, username, password = values.pop("token", None), values.pop("username", None), values.pop("password", None)
    if len(values) > MAX_EXTRA_FIELDS:
        raise FieldError(fields.path, f"{fields.path} has too many fields")
    if not all(k.replace("_", "").isalnum() and len(k) <= 40 for k in values):
        raise FieldError(fields.path, f"{fields.path} field names must be short words (letters, digits, '_')")

    def need(name: str, value: str | None, what: str) -> None:
        if not value:
            raise FieldError(
                fields.name(name), f"{what} is required for {auth_type.value} credentials", code="required"
            )

    if auth_type in (AuthType.PAT, AuthType.OAUTH):
        need("token", token, "the token" if auth_type is AuthType.PAT else "the OAuth access token")
    elif auth_type is AuthType.PASSWORD:
        need("username", username, "the user name")
        need("password", password, "the password")
    elif auth_type is AuthType.AWS:
        need("access_key_id", username, "the AWS access key id")
        need("secret_access_key", password, "the AWS secret access key")
        need("region", values.get("region"), "the AWS region")
    elif auth_type is AuthType.NONE:
        token = username = password = None
        values.clear()
    return Credentials(auth_type=auth_type, token=token, username=username, password=password, extra=values)


# --- repositories ------------------------------------------------------------------


@dataclass(frozen=True)
class RepositoryChoice:
    selection: RepositorySelection
    picked: tuple[str, ...] = ()  # external ids, when selection is SELECTED


def parse_repository_choice(value: Any, path: str = "repositories") -> RepositoryChoice:
    if isinstance(value, str):
        if value in (RepositorySelection.ALL.value, RepositorySelection.ALL_FUTURE.value):
            return RepositoryChoice(RepositorySelection(value))
        raise FieldError(path, f'{path} must be "all", "all_future" or a list of repository ids', code="bad_selection")
    if not isinstance(value, list):
        raise FieldError(path, f'{path} must be "all", "all_future" or a list of repository ids', code="bad_selection")
    if not value:
        raise FieldError(path, f"{path}: pick at least one repository", code="bad_selection")
    if len(value) > MAX_PICKED_REPOSITORIES:
        raise FieldError(path, f"{path}: at most {MAX_PICKED_REPOSITORIES} repositories can be picked at once")
    picked: dict[str, None] = {}
    for i, item in enumerate(value):
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)  # numeric host ids (GitHub, GitLab) sent as numbers
        if not isinstance(item, str) or not item.strip() or len(item) > EXTERNAL_ID_MAX_LENGTH:
            raise FieldError(f"{path}[{i}]", f"{path}[{i}] must be a repository id (a non-empty string)")
        picked[item.strip()] = None
    return RepositoryChoice(RepositorySelection.SELECTED, tuple(picked))


# --- whole requests ----------------------------------------------------------------


def parse_provider(fields: Fields) -> ProviderInfo:
    raw = fields.required_string("provider", max_length=64)
    try:
        return provider_info(ProviderId(raw))
    except ValueError:
        known = ", ".join(p.value for p in ProviderId)
        raise FieldError("provider", f"unknown provider {raw!r}; one of: {known}", code="unknown_provider") from None


def parse_base_url(fields: Fields, info: ProviderInfo) -> str | None:
    url = fields.string("base_url", max_length=URL_MAX_LENGTH)
    if url is None:
        if info.self_hosted:
            what = "the repository's clone URL" if info.id is ProviderId.GIT else "the server URL"
            raise FieldError("base_url", f"{info.name} needs {what} (base_url)", code="base_url_required")
        return None
    if info.id is ProviderId.GIT:
        return url  # a clone URL as given: the duplicate check compares repository keys
    return normalized_server_url(url)


def normalized_server_url(url: str) -> str:
    """Scheme and host in lower case, no trailing ``/``: one spelling per server, so one
    credential key (and one duplicate check) per server."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url  # the SSRF guard refuses it with the reason
    if not parts.scheme or not parts.netloc:
        return url.rstrip("/")
    return urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, parts.fragment)
    )


@dataclass(frozen=True)
class ConnectionRequest:
    """Enough to build a host client: what the wizard checks live before anything is stored."""

    provider: ProviderInfo
    credentials: Credentials
    base_url: str | None
    namespace: str | None


@dataclass(frozen=True)
class CreateRequest:
    connection: ConnectionRequest
    display_name: str | None
    repositories: RepositoryChoice
    settings: dict[str, Any] = field(default_factory=dict)


CONNECTION_FIELDS = ("provider", "base_url", "namespace", "auth")


def parse_connection(fields: Fields) -> ConnectionRequest:
    info = parse_provider(fields)
    base_url = parse_base_url(fields, info)
    namespace = fields.string("namespace")
    auth = fields.object("auth")
    if auth is None:
        raise FieldError("auth", "auth is required: {type, token | username and password, ...}", code="required")
    return ConnectionRequest(info, parse_credentials(auth, info), base_url, namespace)


def parse_create(data: Any) -> CreateRequest:
    fields = Fields(data)
    fields.only({*CONNECTION_FIELDS, "display_name", "repositories", "settings"})
    connection = parse_connection(fields)
    display_name = fields.string("display_name")
    choice = (
        parse_repository_choice(fields.data["repositories"])
        if fields.data.get("repositories") is not None
        else RepositoryChoice(RepositorySelection.ALL_FUTURE)
    )
    settings_fields = fields.object("settings")
    settings = parse_settings(settings_fields, connection.provider) if settings_fields else {}
    return CreateRequest(connection, display_name, choice, settings)


@dataclass(frozen=True)
class IntegrationPatch:
    display_name: str | None = None
    enabled: bool | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    credentials: Credentials | None = None
    repositories: RepositoryChoice | None = None


IMMUTABLE = ("provider", "base_url", "namespace")


def parse_integration_patch(data: Any, info: ProviderInfo) -> IntegrationPatch:
    fields = Fields(data)
    for key in IMMUTABLE:
        if fields.has(key):
            raise FieldError(
                key,
                f"{key} cannot be changed; create a new integration for another host, server or namespace",
                code="immutable_field",
            )
    fields.only({"display_name", "enabled", "settings", "auth", "repositories"})
    name = fields.required_string("display_name") if fields.has("display_name") else None
    settings = fields.object("settings")
    auth = fields.object("auth")
    choice = fields.data.get("repositories")
    return IntegrationPatch(
        display_name=name,
        enabled=fields.boolean("enabled"),
        settings=parse_settings(settings, info) if settings else {},
        credentials=parse_credentials(auth, info) if auth else None,
        repositories=parse_repository_choice(choice) if choice is not None else None,
    )


@dataclass(frozen=True)
class RepositoryPatch:
    enabled: bool | None = None
    project_keys: list[str] | None = None


def parse_repository_patch(data: Any) -> RepositoryPatch:
    fields = Fields(data)
    fields.only({"enabled", "project_keys"})
    keys = parse_project_keys(fields.data["project_keys"], "project_keys") if fields.has("project_keys") else None
    return RepositoryPatch(enabled=fields.boolean("enabled"), project_keys=keys)


# --- query strings -----------------------------------------------------------------


def query_int(args: Mapping[str, str], key: str, *, default: int | None, minimum: int, maximum: int) -> int | None:
    raw = args.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FieldError(key, f"{key} must be a whole number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise FieldError(key, f"{key} must be between {minimum} and {maximum}")
    return value


def query_choices(args: Mapping[str, str], key: str, allowed: Collection[str]) -> list[str]:
    """``?status=queued,running`` (comma-separated) checked against ``allowed``."""
    raw = args.get(key)
    if raw is None or raw.strip() == "":
        return []
    values = [v.strip() for v in raw.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise FieldError(key, f"{key} {bad[0]!r} is not one of: {', '.join(allowed)}")
    return list(dict.fromkeys(values))
