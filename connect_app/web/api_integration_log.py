"""The integration log API: GET /api/integrations/<id>/log (issues 5, 7)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_integration_log", __name__, url_prefix="/api")
