"""Git Connect for Jira: an Atlassian Connect app backend for Jira Cloud."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from connect_app.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Settings | None = None) -> Flask:
    """Build the Flask app. Reads the environment only when ``config`` is None."""
    from connect_app import extensions, logging_setup, runtime
    from connect_app.services import development, user_permissions
    from connect_app.web import register_blueprints
    from connect_app.web.api_actions import bp as api_actions_bp
    from connect_app.web.api_browse import bp as api_browse_bp
    from connect_app.web.api_integration_log import bp as api_integration_log_bp
    from connect_app.web.api_integrations import bp as api_integrations_bp
    from connect_app.web.api_issues import bp as api_issues_bp
    from connect_app.web.api_me import bp as api_me_bp
    from connect_app.web.api_runs import bp as api_runs_bp
    from connect_app.web.browse import bp as browse_bp
    from connect_app.web.errors import register_error_handlers
    from connect_app.web.metrics import bp as metrics_bp
    from connect_app.web.request_ids import init_app as init_request_ids
    from connect_app.web.request_log import init_app as init_request_log
    from connect_app.web.webhooks import bp as webhooks_bp

    settings = config if config is not None else Settings.from_env()
    settings.validate()
    logging_setup.configure(settings)

    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(settings.instance_path),
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    runtime.attach(app, runtime.build_runtime(settings))
    extensions.init_app(app, settings)
    register_error_handlers(app)
    init_request_ids(app)
    init_request_log(app)
    app.register_blueprint(metrics_bp)
    register_blueprints(app)
    app.register_blueprint(api_issues_bp)
    app.register_blueprint(webhooks_bp)
    for admin_api_bp in (api_integrations_bp, api_runs_bp, api_integration_log_bp):
        app.register_blueprint(admin_api_bp)
    for user_bp in (api_me_bp, api_actions_bp, api_browse_bp, browse_bp):
        app.register_blueprint(user_bp)
    development.set_permission_checker(user_permissions.UserTokenPermissions())
    return app
