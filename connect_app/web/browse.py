"""The repository browser page (descriptor ``generalPages``; issue 9)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("browse", __name__, url_prefix="/browse")
