"""The app's OAuth client registrations with git hosts, read from the environment.

One client id and secret per provider that offers OAuth (``AuthType.OAUTH`` in its
``ProviderInfo``), in ``OAUTH_<PROVIDER>_CLIENT_ID`` / ``OAUTH_<PROVIDER>_CLIENT_SECRET``,
``<PROVIDER>`` being the provider id in upper case with ``-`` as ``_``:

* ``OAUTH_GITHUB_*``: a GitHub.com OAuth app;
* ``OAUTH_GITHUB_ENTERPRISE_*``: an OAuth app on the GitHub Enterprise Server;
* ``OAUTH_GITLAB_*``: a GitLab.com application (scope ``api``);
* ``OAUTH_GITLAB_SELF_MANAGED_*``: an application on the self-managed GitLab server;
* ``OAUTH_BITBUCKET_CLOUD_*``: a Bitbucket Cloud OAuth consumer (key and secret);
* ``OAUTH_AZURE_DEVOPS_*``: a Microsoft Entra ID app registration for Azure DevOps.

Each registration's callback (redirect) URL is ``<BASE_URL>/oauth/callback``. A provider
whose pair is incomplete is not offered OAuth in the wizard (access tokens still are). One
registration per provider: the self-hosted ones (GHE, GitLab self-managed) serve one server.

Kept apart from :mod:`connect_app.config` on purpose: read once per app into
``app.extensions`` (tests put their own :class:`OAuthSettings` there), never logged: the
secrets are hidden from ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import Flask, current_app

from connect_app.hosts.base import AuthType, ProviderId
from connect_app.hosts.registry import provider_info

EXTENSION_KEY = "git_connect_oauth"


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str = field(repr=False)


def env_prefix(provider: ProviderId | str) -> str:
    return "OAUTH_" + ProviderId(provider).value.upper().replace("-", "_")


def oauth_providers() -> list[ProviderId]:
    """Providers whose host offers the OAuth authorization code flow."""
    return [p for p in ProviderId if AuthType.OAUTH in provider_info(p).auth_types]


@dataclass(frozen=True)
class OAuthSettings:
    clients: Mapping[ProviderId, OAuthClient] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OAuthSettings:
        e = os.environ if env is None else env
        clients: dict[ProviderId, OAuthClient] = {}
        for provider in oauth_providers():
            prefix = env_prefix(provider)
            client_id = (e.get(f"{prefix}_CLIENT_ID") or "").strip()
            secret = (e.get(f"{prefix}_CLIENT_SECRET") or "").strip()
            if client_id and secret:
                clients[provider] = OAuthClient(client_id, secret)
        return cls(clients)

    def client(self, provider: ProviderId | str) -> OAuthClient | None:
        try:
            return self.clients.get(ProviderId(provider))
        except ValueError:
            return None

    def configured(self) -> list[ProviderId]:
        return [p for p in oauth_providers() if p in self.clients]

    def __repr__(self) -> str:
        return f"OAuthSettings(configured={[p.value for p in self.configured()]!r})"


def oauth_settings(app: Flask | None = None) -> OAuthSettings:
    """This app's OAuth settings, read from the environment on first use."""
    target = app if app is not None else current_app
    found = target.extensions.get(EXTENSION_KEY)
    if not isinstance(found, OAuthSettings):
        found = OAuthSettings.from_env()
        target.extensions[EXTENSION_KEY] = found
    return found
