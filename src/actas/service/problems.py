"""RFC 9457 problem details: one table from error code to HTTP status, one response builder.

The problem ``type`` is a stable URI per error code (``urn:actas:problem:<code>``); clients branch on ``code``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from actas.errors import (
    ActasError,
    ConflictError,
    EnrollmentError,
    MalformedError,
    NotFoundError,
    RateLimitedError,
    RuleError,
    SignatureError,
    TooLargeError,
    UnavailableError,
)

MEDIA_TYPE = "application/problem+json"
PROBLEM_RESPONSE = {"content": {MEDIA_TYPE: {"schema": {"type": "object"}}}}  # for OpenAPI response docs
_READ_PROBLEMS = {400: "malformed", 404: "not found", 503: "the log has no checkpoint yet"}


def read_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses a read route documents (request validation errors are 400, never FastAPI's 422)."""
    return {status: {"description": _READ_PROBLEMS[status], **PROBLEM_RESPONSE} for status in statuses}


# Most specific first: the first class an error is an instance of decides its status.
_STATUS: tuple[tuple[type[ActasError], int], ...] = (
    (MalformedError, 400),
    (EnrollmentError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (SignatureError, 422),
    (RuleError, 422),
    (RateLimitedError, 429),
    (UnavailableError, 503),
)


def status_of(error: ActasError) -> int:
    """The HTTP status an error maps to (500 for errors that are the service's own fault)."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def problem(error: ActasError, instance: str | None = None) -> dict[str, Any]:
    """The problem+json body of an error, with the members specific to its kind."""
    status = status_of(error)
    body: dict[str, Any] = {
        "type": f"urn:actas:problem:{error.code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": error.code,
        "detail": str(error) if status < 500 else "internal error; the operator's log has the details",
    }
    if instance is not None:
        body["instance"] = instance
    if isinstance(error, RuleError):
        body["rules"] = list(error.rules)
    if isinstance(error, ConflictError):
        body["leaf_hash"] = error.leaf_hash.hex()  # hex, as in every other response and URL
        body["existing_leaf_hash"] = error.existing.hex()
    if isinstance(error, RateLimitedError):
        body["retry_after"] = error.retry_after
    return body
