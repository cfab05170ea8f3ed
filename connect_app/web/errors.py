"""Every error leaves as ``{"error": {"code", "message"}}`` (or a small HTML page
for a browser), never as a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from connect_app.errors import AppError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _wants_html() -> bool:
    if request.path.startswith(("/api/", "/lifecycle/", "/webhooks/")):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes[best] > request.accept_mimetypes["application/json"]


def error_response(status: int, code: str, message: str) -> tuple[Response | str, int]:
    if _wants_html():
        return render_template("error.html", status=status, code=code, message=message), status
    return jsonify({"error": {"code": code, "message": message}}), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(e: AppError) -> tuple[Response | str, int]:
        if e.status >= 500:
            log.warning("request failed: %s (%s)", e.code, e.message)
        return error_response(e.status, e.code, e.message)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> tuple[Response | str, int]:
        status = e.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = e.description or e.name
        if status == 413:
            message = "The request body is too large."
        return error_response(status, code, message)

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> tuple[Response | str, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side; it has been logged.")
