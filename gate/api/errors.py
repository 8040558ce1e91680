"""The API's own answers beyond the gate's error tree (``gate.errors``), each an ``XrpcError``."""

from __future__ import annotations

from gate.errors import ClientError, XrpcError


class AuthRequired(ClientError):
    status = 401
    error = "AuthRequired"
    default_message = "a service or admin bearer token is required"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="upload-gate api"'})


class Forbidden(ClientError):
    status = 403
    error = "Forbidden"
    default_message = "this token's role may not use the API: it needs the service or admin role"


class NotFound(ClientError):
    status = 404
    error = "NotFound"
    default_message = "no such API endpoint"


class MethodNotAllowed(ClientError):
    status = 405
    error = "MethodNotAllowed"
    default_message = "this endpoint does not take that method"

    def __init__(self, allow: str) -> None:
        super().__init__(headers={"Allow": allow})  # the methods it does take (RFC 9110)


class RateLimited(ClientError):
    status = 429
    error = "RateLimitExceeded"
    default_message = "too many API requests for this token; retry after the Retry-After seconds"

    def __init__(self, retry_after: str) -> None:
        super().__init__(headers={"Retry-After": retry_after})


class ApiUnavailable(XrpcError):
    """Postgres cannot say who holds a token, or cannot take the audit row (or the decision log the
    decision): nothing is answered unrecorded."""

    status = 503
    error = "Unavailable"
    default_message = "the gate's database is unavailable; nothing was answered, retry shortly"
    retry_after = 5
