"""Domain errors with a machine-readable `code`, raised by services and the engine."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    default_code = "error"
    default_detail = "Error."

    def __init__(self, detail: str | None = None, code: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.default_detail
        self.code = code or self.default_code
        self.extra = extra
        super().__init__(self.detail)


class BadRequest(DomainError):
    """400 with a machine-readable code: a well-formed request that is not possible
    (change requests switched off, too few valid approvals)."""

    default_code = "invalid"
    default_detail = "This operation is not possible."


class Conflict(DomainError):
    """409: stale version, tag in use, already committed."""

    default_code = "conflict"
    default_detail = "Conflict."


class DomainPermissionDenied(DomainError):
    """403 with a specific code (change_request_required, cannot_approve_own, ...)."""

    default_code = "permission_denied"
    default_detail = "You do not have permission to perform this action."
