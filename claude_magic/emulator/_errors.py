"""API-shaped errors: the status codes, error types and JSON body the real Messages API uses."""

from __future__ import annotations

from typing import Any

# The pairs the API documents; the SDK picks its exception class from the status alone.
ERROR_TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
STATUS_BY_ERROR_TYPE: dict[str, int] = {kind: status for status, kind in ERROR_TYPE_BY_STATUS.items()}


def error_type_for_status(status: int) -> str:
    """The API's error type for an HTTP status; unknown 5xx are ``api_error`` like on the API."""
    if status in ERROR_TYPE_BY_STATUS:
        return ERROR_TYPE_BY_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def status_for_error_type(error_type: str) -> int:
    """HTTP status that carries ``error_type`` (500 for types the API does not list)."""
    return STATUS_BY_ERROR_TYPE.get(error_type, 500)


def error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


class ApiError(Exception):
    """A request the emulator answers with an HTTP error, raised by validation and caught by the server."""

    def __init__(
        self, status: int, message: str, error_type: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or error_type_for_status(status)
        self.headers = dict(headers or {})
