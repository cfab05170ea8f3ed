"""Repository browser API under /api/browse/ (issue 9)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_browse", __name__, url_prefix="/api")
