"""User tokens API: GET /api/me/tokens, PUT/DELETE /api/me/tokens/<integration_id> (issue 6)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_me", __name__, url_prefix="/api")
