"""One error hierarchy for the whole app.

Callers never see `requests`, `jwt` or `subprocess` exceptions: each boundary
re-raises as one of these (``raise X(...) from e``). Every error carries a
machine-readable ``code``, an HTTP ``status`` used when it reaches a request,
and a message that is safe to show a user (never a secret, never a stack).
"""

from __future__ import annotations

from datetime import datetime


class AppError(Exception):
    """Base of every error this app raises on purpose."""

    code = "app_error"
    status = 500

    def __init__(self, message: str = "", *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(AppError):
    """The request is malformed."""

    code = "bad_request"
    status = 400


class ValidationError(BadRequest):
    """A field of the request is invalid."""

    code = "validation_error"


class NotFound(AppError):
    """The thing asked for does not exist (or is not yours)."""

    code = "not_found"
    status = 404


class Conflict(AppError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


class ConfigError(AppError):
    """The app is misconfigured (raised at startup, never per request)."""

    code = "config_error"


class AuthError(AppError):
    """Authentication failed: missing, malformed, expired or forged credentials."""

    code = "unauthorized"
    status = 401


class PermissionDenied(AppError):
    """Authenticated, but not allowed to do this."""

    code = "forbidden"
    status = 403


class UnsafeInput(BadRequest):
    """Input refused for safety (SSRF targets, option-like git arguments, ...)."""

    code = "unsafe_input"


class HostError(AppError):
    """A remote host (git host or Jira) failed or refused."""

    code = "host_error"
    status = 502


class HostNotFound(HostError):
    """The host says the resource does not exist."""

    code = "host_not_found"
    status = 404


class HostUnavailable(HostError):
    """The host could not be reached or answered with a server error."""

    code = "host_unavailable"
    status = 503


class RateLimited(HostError):
    """The host's rate limit is exhausted until ``reset_at``."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str = "", *, reset_at: datetime | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.reset_at = reset_at


class HostAuthError(AuthError):
    """The host refused the credentials (wrong, expired or revoked token).

    A 400, not a 401: a 401 from this app means the *Jira* token failed, and the
    iframe must be able to tell the two apart.
    """

    code = "host_auth_failed"
    status = 400


class HostPermissionDenied(PermissionDenied):
    """The host understood the credentials but they lack a permission or scope."""

    code = "host_forbidden"


class Unsupported(AppError):
    """This host does not support that operation."""

    code = "unsupported"
    status = 400
