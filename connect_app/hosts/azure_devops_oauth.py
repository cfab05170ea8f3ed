"""OAuth for Azure DevOps Services: Microsoft Entra ID's v2.0 authorization code flow.

Endpoints ``{authority}/{tenant}/oauth2/v2.0/authorize`` and ``.../token``; scopes are
Azure DevOps' application id followed by ``/vso.*`` (plus ``offline_access`` for a
refresh token), space-separated, sent on the authorize request and again on every token
request; the client id and secret go in the form body. Azure DevOps Server has no OAuth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connect_app.hosts.azure_devops_payloads import quote_segment
from connect_app.hosts.oauth import OAuthCodeFlow

ENTRA_AUTHORITY = "https://login.microsoftonline.com"
# Azure DevOps' application id in Microsoft Entra; scopes are "<it>/vso.*".
AZURE_DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
_ADO = AZURE_DEVOPS_RESOURCE
DEFAULT_SCOPES = (f"{_ADO}/vso.code_write", f"{_ADO}/vso.hooks_write", "offline_access")


def entra_flow(
    client_id: str | None,
    client_secret: str | None,
    *,
    tenant: str = "organizations",
    authority: str = ENTRA_AUTHORITY,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    http_options: Mapping[str, Any] | None = None,
) -> OAuthCodeFlow:
    base = f"{authority.rstrip('/')}/{quote_segment(tenant)}/oauth2/v2.0"
    return OAuthCodeFlow(
        name="Azure DevOps (Microsoft Entra ID)",
        authorize_endpoint=f"{base}/authorize",
        token_endpoint=f"{base}/token",
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        authorize_params={"response_mode": "query"},
        scope_in_token_request=True,
        http_options=dict(http_options or {}),
    )
