"""Writes for feature states and segment overrides (docs/API.md, Feature states; docs/CONCURRENCY.md)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Auditor
from environments.models import Environment
from features.models import (
    Feature,
    FeatureState,
    Segment,
    SegmentOverride,
)
from features.workflow.services.common import (
    _STALE,
    CHANGE_REQUEST_REQUIRED,
    UNSET,
    _same_json,
    _threshold,
    _write_state,
)
from tagwarden.errors import Conflict, DomainPermissionDenied
from tagwarden.services import unique_write


def feature_state_snapshot(state: FeatureState) -> dict[str, Any]:
    return {
        "feature": state.feature_id,
        "environment": state.environment_id,
        "segment_override": state.segment_override_id,
        "enabled": state.enabled,
        "value": state.value,
        "version": state.version,
    }


def feature_state_update(
    *,
    state: FeatureState,
    enabled: bool = UNSET,
    value: Any = UNSET,
    version: int | None = None,
    actor: Actor,
) -> FeatureState:
    """Write a default state directly (the caller holds UPDATE_FEATURE_STATE on its feature).

    - Where change requests are on, a write that would change `enabled` or `value` is
      refused, admins included: 403 `change_request_required`.
    - `version`, when given, must be the current one: 409 `stale` otherwise.
    - A write that changes nothing bumps no version and records nothing.

    The common case costs one UPDATE and the audit entry (docs/PERFORMANCE.md, budgets): the
    UPDATE only applies while the state is still at the version the request read and change
    requests are still off, both checked by the database in the same statement; when it
    does not apply, the state is locked, read again and judged as committed now.
    """
    new_enabled = state.enabled if enabled is UNSET else enabled
    new_value = state.value if value is UNSET else value
    changes = new_enabled != state.enabled or not _same_json(new_value, state.value)
    with transaction.atomic():
        if changes and version in (None, state.version):
            now = timezone.now()
            change_requests_on = Environment.objects.filter(
                pk=state.environment_id, minimum_change_request_approvals__isnull=False
            )
            written = (
                FeatureState.objects.filter(pk=state.pk, version=state.version)
                .exclude(Exists(change_requests_on))
                .update(
                    enabled=new_enabled, value=new_value, version=F("version") + 1, updated_at=now
                )
            )
            if written == 1:
                before = feature_state_snapshot(state)
                state.enabled, state.value, state.updated_at = new_enabled, new_value, now
                state.version += 1
                Auditor.in_environment(state.environment, actor=actor).record(
                    AuditAction.UPDATED, state, before=before, after=feature_state_snapshot(state)
                )
                return state
        locked = FeatureState.objects.select_for_update().get(pk=state.pk)
        environment = state.environment
        new_enabled = locked.enabled if enabled is UNSET else enabled
        new_value = locked.value if value is UNSET else value
        changes = new_enabled != locked.enabled or not _same_json(new_value, locked.value)
        if changes and _threshold(locked.environment_id) is not None:
            raise DomainPermissionDenied(CHANGE_REQUEST_REQUIRED, code="change_request_required")
        if version is not None and version != locked.version:
            raise Conflict(_STALE.format(current=locked.version, sent=version), code="stale")
        if not changes:
            return locked
        before = feature_state_snapshot(locked)
        locked = _write_state(locked, enabled=new_enabled, value=new_value)
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.UPDATED, locked, before=before, after=feature_state_snapshot(locked)
        )
    return locked


# --------------------------------------------------------------------------------------
# Segment overrides (each with its own feature state)
# --------------------------------------------------------------------------------------


def segment_override_snapshot(override: SegmentOverride, state: FeatureState) -> dict[str, Any]:
    """The audited state of an override: its own feature state is part of it."""
    return {
        "feature": override.feature_id,
        "environment": override.environment_id,
        "segment": override.segment_id,
        "priority": override.priority,
        "feature_state": state.pk,
        "enabled": state.enabled,
        "value": state.value,
        "version": state.version,
    }


_SEGMENT_TAKEN = "This feature already has an override for this segment in this environment."


def segment_override_create(
    *,
    environment: Environment,
    feature: Feature,
    segment_id: int,
    priority: int = 0,
    enabled: bool = False,
    value: Any = None,
    actor: Actor,
) -> SegmentOverride:
    """Create an override of `feature` for a segment of its project, with its own state.

    Where change requests are on, creating an override stays a direct write (docs/API.md, "Feature states, overrides, change requests")
    but its state must start as a default one: a create that sets `enabled` to true or
    `value` to anything but null is refused with 403 `change_request_required` (create the
    override, then change it through a change request).
    """
    if feature.project_id != environment.project_id:
        raise ValidationError({"feature": ["This feature is not in the environment's project."]})
    if environment.change_requests_enabled and (enabled is not False or value is not None):
        raise DomainPermissionDenied(
            CHANGE_REQUEST_REQUIRED
            + " Create the override with enabled false and value null, then change it "
            "through a change request.",
            code="change_request_required",
        )
    with transaction.atomic():
        # Lock order (docs/CONCURRENCY.md): the feature, then the segment. Both rows are
        # read under their lock, so a concurrent delete of either is a 400 here, or sees
        # this override (feature delete: cascades; segment delete: 409 segment_in_use).
        if not Feature.objects.select_for_update().filter(pk=feature.pk).exists():
            raise ValidationError({"feature": ["This feature was deleted."]})
        segment = (
            Segment.objects.select_for_update()
            .filter(pk=segment_id, project_id=feature.project_id)
            .first()
        )
        if segment is None:
            raise ValidationError(
                {"segment": [f"Unknown segment id {segment_id} for this project."]}
            )
        if SegmentOverride.objects.filter(
            feature=feature, environment=environment, segment=segment
        ).exists():
            raise ValidationError({"segment": [_SEGMENT_TAKEN]})
        with unique_write(field="segment", message=_SEGMENT_TAKEN):
            override = SegmentOverride.objects.create(
                feature=feature, environment=environment, segment=segment, priority=priority
            )
        state = FeatureState.objects.create(
            feature=feature,
            environment=environment,
            segment_override=override,
            enabled=enabled,
            value=value,
        )
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.CREATED, override, after=segment_override_snapshot(override, state)
        )
    return override


def segment_override_update(
    *,
    override: SegmentOverride,
    priority: int = UNSET,
    enabled: bool = UNSET,
    value: Any = UNSET,
    actor: Actor,
) -> SegmentOverride:
    """Change an override's priority (always a direct write) and its state's `enabled` and
    `value` (where change requests are on: 403 `change_request_required` if they would
    change). The state's version goes up by one when `enabled` or `value` change."""
    environment = override.environment
    with transaction.atomic():
        locked = SegmentOverride.objects.select_for_update().get(pk=override.pk)
        state = FeatureState.objects.select_for_update().get(segment_override=locked)
        new_enabled = state.enabled if enabled is UNSET else enabled
        new_value = state.value if value is UNSET else value
        state_changes = new_enabled != state.enabled or not _same_json(new_value, state.value)
        if state_changes and _threshold(environment.pk) is not None:
            raise DomainPermissionDenied(CHANGE_REQUEST_REQUIRED, code="change_request_required")
        new_priority = locked.priority if priority is UNSET else priority
        if not state_changes and new_priority == locked.priority:
            return locked
        before = segment_override_snapshot(locked, state)
        if new_priority != locked.priority:
            locked.priority = new_priority
            locked.save(update_fields=["priority"])
        if state_changes:
            state = _write_state(state, enabled=new_enabled, value=new_value)
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.UPDATED,
            locked,
            before=before,
            after=segment_override_snapshot(locked, state),
        )
    return locked


def segment_override_delete(*, override: SegmentOverride, actor: Actor) -> None:
    """Delete an override with its state (a direct write, change requests on or not). Open
    change requests that target its state can no longer be committed (409 stale)."""
    environment = override.environment
    with transaction.atomic():
        locked = SegmentOverride.objects.select_for_update().get(pk=override.pk)
        state = FeatureState.objects.get(segment_override=locked)
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.DELETED, locked, before=segment_override_snapshot(locked, state)
        )
        locked.delete()


# --------------------------------------------------------------------------------------
# Change requests
# --------------------------------------------------------------------------------------
