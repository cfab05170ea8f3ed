"""Create a branch / pull request from an issue, and the job status (issue 6).

``POST /api/issues/<key>/branches``, ``POST /api/issues/<key>/pull-requests``, ``GET /api/jobs/<id>``.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_actions", __name__, url_prefix="/api")
