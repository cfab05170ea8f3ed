"""OpenAPI description of the repository browser API; merged into ``connect_app.web.api.OPENAPI``."""

from __future__ import annotations

from typing import Any

PATHS: dict[str, Any] = {}
SCHEMAS: dict[str, Any] = {}
