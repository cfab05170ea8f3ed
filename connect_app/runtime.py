"""Per-app singletons that need settings: the secret box and the install-key fetcher.

Built in ``create_app`` (no I/O at import time) and reached through ``runtime()``
inside a request or app context.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from connect_app.config import Settings
from connect_app.jira.jwt import InstallKeyFetcher
from connect_app.security.crypto import SecretBox, resolve_keys

_EXTENSION_KEY = "git_connect"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    secrets: SecretBox
    install_keys: InstallKeyFetcher


def build_runtime(settings: Settings) -> Runtime:
    return Runtime(
        settings=settings,
        secrets=SecretBox(resolve_keys(settings)),
        install_keys=InstallKeyFetcher(
            settings.connect_install_keys_url,
            timeout=settings.http_timeout_seconds,
            ttl_seconds=settings.install_key_cache_seconds,
        ),
    )


def attach(app: Flask, rt: Runtime) -> None:
    app.extensions[_EXTENSION_KEY] = rt


def runtime(app: Flask | None = None) -> Runtime:
    target = app if app is not None else current_app
    rt: Runtime = target.extensions[_EXTENSION_KEY]
    return rt
