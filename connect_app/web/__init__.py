"""HTTP surface: one blueprint per concern."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from connect_app.jira.descriptor import bp as descriptor_bp
    from connect_app.jira.lifecycle import bp as lifecycle_bp
    from connect_app.web.actions import bp as actions_bp
    from connect_app.web.admin import bp as admin_bp
    from connect_app.web.api import bp as api_bp
    from connect_app.web.health import bp as health_bp
    from connect_app.web.home import bp as home_bp
    from connect_app.web.panel import bp as panel_bp
    from connect_app.web.user import bp as user_bp

    for bp in (health_bp, home_bp, descriptor_bp, lifecycle_bp, panel_bp, admin_bp, user_bp, actions_bp, api_bp):
        app.register_blueprint(bp)
