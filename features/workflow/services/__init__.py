"""Writes for feature states, segment overrides and change requests (docs/API.md, "Feature states, overrides, change requests" and "Audit").

Every function here is one transaction: it locks what it changes (`select_for_update`),
checks the rules in the order docs/API.md fixes, writes, and records one audit entry per
object whose state changed. A rejected request raises before anything is written; a request
that changes nothing writes nothing (no version bump, no audit entry).

Who may call which function is decided by the engine: the views check the viewing rule and
the plain keys (UPDATE_FEATURE_STATE, MANAGE_SEGMENT_OVERRIDES on the feature); change
requests, whose rules depend on the features they touch and on their author, are checked
here, through `permissions.engine`, so the order of the errors stays the documented one.

Errors: `ValidationError({"field": [...]})` → 400; `BadRequest(code=...)` (tagwarden.errors) → 400
`{"detail","code"}` (`change_requests_disabled`, `not_enough_approvals`);
`DomainPermissionDenied` → 403 (`permission_denied`, `change_request_required`,
`cannot_approve_own`); `Conflict` → 409 (`stale`, `already_committed`).
"""

from __future__ import annotations

from features.workflow.services.change_requests import (
    ChangeInput,
    change_request_approve,
    change_request_commit,
    change_request_create,
    change_request_delete,
    change_request_require_editable,
    change_request_snapshot,
    change_request_update,
    change_request_valid_approvals,
)
from features.workflow.services.common import (
    CHANGE_REQUEST_REQUIRED,
    UNSET,
)
from features.workflow.services.states import (
    feature_state_snapshot,
    feature_state_update,
    segment_override_create,
    segment_override_delete,
    segment_override_snapshot,
    segment_override_update,
)

__all__ = [
    "CHANGE_REQUEST_REQUIRED",
    "UNSET",
    "ChangeInput",
    "change_request_approve",
    "change_request_commit",
    "change_request_create",
    "change_request_delete",
    "change_request_require_editable",
    "change_request_snapshot",
    "change_request_update",
    "change_request_valid_approvals",
    "feature_state_snapshot",
    "feature_state_update",
    "segment_override_create",
    "segment_override_delete",
    "segment_override_snapshot",
    "segment_override_update",
]
