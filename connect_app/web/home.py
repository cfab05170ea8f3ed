"""The public landing page (the development tool's homepage URL in the descriptor)."""

from __future__ import annotations

from flask import Blueprint, render_template

from connect_app.runtime import runtime

bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> str:
    settings = runtime().settings
    return render_template("index.html", descriptor_url=f"{settings.base_url}/atlassian-connect.json")
