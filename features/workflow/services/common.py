"""What the workflow services share: the UNSET marker and the locking helpers (docs/CHANGE_REQUESTS.md)."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import F
from django.utils import timezone

from environments.models import Environment
from features.models import FeatureState
from tagwarden.errors import Conflict


class _Unset:
    """Marks an argument left out (None is a valid JSON value)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


CHANGE_REQUEST_REQUIRED = (
    "Change requests are on in this environment: enabled and value change only through a "
    "change request."
)
_STALE = "The state changed since you read it (version {current}, you sent {sent})."


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: `1` and `true` differ (they are equal in Python)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _threshold(environment_id: int) -> int | None:
    """The environment's threshold as committed now (not as loaded with the request)."""
    value: int | None = (
        Environment.objects.filter(pk=environment_id)
        .values_list("minimum_change_request_approvals", flat=True)
        .get()
    )
    return value


def _write_state(state: FeatureState, *, enabled: bool, value: Any) -> FeatureState:
    """Write `enabled`/`value` into a locked state and bump its version by one, on the
    condition that nobody else bumped it meanwhile (409 stale otherwise)."""
    updated = FeatureState.objects.filter(pk=state.pk, version=state.version).update(
        enabled=enabled, value=value, version=F("version") + 1, updated_at=timezone.now()
    )
    if updated != 1:
        raise Conflict("The state changed while it was being written.", code="stale")
    state.refresh_from_db()
    return state


# --------------------------------------------------------------------------------------
# Feature states (default states: one per feature and environment)
# --------------------------------------------------------------------------------------
