"""Liveness (process up) and readiness (database and Redis reachable)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from connect_app.extensions import db, redis_conn

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks: dict[str, str] = {}
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unreachable"
    try:
        redis_conn.client.ping()
        checks["redis"] = "ok"
    except Exception:
        checks["redis"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ready" if ready else "not_ready", "checks": checks}), 200 if ready else 503
