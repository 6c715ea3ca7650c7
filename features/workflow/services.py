"""Writes for feature states, segment overrides and change requests (DESIGN.md §7, §8).

Every function here is one transaction: it locks what it changes (`select_for_update`),
checks the rules in the order DESIGN.md §7 fixes, writes, and records one audit entry per
object whose state changed. A rejected request raises before anything is written; a request
that changes nothing writes nothing (no version bump, no audit entry).

Who may call which function is decided by the engine: the views check the viewing rule and
the plain keys (UPDATE_FEATURE_STATE, MANAGE_SEGMENT_OVERRIDES on the feature); change
requests, whose rules depend on the features they touch and on their author, are checked
here, through `permissions.engine`, so the order of the errors stays the one of §7.

Errors: `ValidationError({"field": [...]})` → 400; `InvalidOperation(code=...)` → 400
`{"detail","code"}` (`change_requests_disabled`, `not_enough_approvals`);
`DomainPermissionDenied` → 403 (`permission_denied`, `change_request_required`,
`cannot_approve_own`); `Conflict` → 409 (`stale`, `already_committed`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, audit_record
from environments.models import Environment
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    ChangeRequestStatus,
    Feature,
    FeatureState,
    Segment,
    SegmentOverride,
)
from organisations.models import OrganisationAPIKey
from permissions import engine
from permissions.catalogue import APPROVE_CHANGE_REQUEST, CREATE_CHANGE_REQUEST
from tagwarden.errors import BadRequest, Conflict, DomainPermissionDenied


class _Unset:
    """Marks an argument left out (None is a valid JSON value)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


InvalidOperation = BadRequest  # 400 {"detail", "code"}: tagwarden.api.exceptions maps it


CHANGE_REQUEST_REQUIRED = (
    "Change requests are on in this environment: enabled and value change only through a "
    "change request."
)
_STALE = "The state changed since you read it (version {current}, you sent {sent})."


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: `1` and `true` differ (they are equal in Python)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _organisation_id(environment: Environment) -> int:
    organisation_id: int = environment.project.organisation_id
    return organisation_id


def _threshold(environment_id: int) -> int | None:
    """The environment's threshold as committed now (not as loaded with the request)."""
    value: int | None = (
        Environment.objects.filter(pk=environment_id)
        .values_list("minimum_change_request_approvals", flat=True)
        .get()
    )
    return value


def _audit(
    *,
    actor: Actor,
    action: AuditAction,
    obj: Any,
    environment: Environment,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        obj=obj,
        organisation_id=_organisation_id(environment),
        project_id=environment.project_id,
        environment_id=environment.pk,
        before=before,
        after=after,
    )


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
                _audit(
                    actor=actor,
                    action=AuditAction.UPDATED,
                    obj=state,
                    environment=state.environment,
                    before=before,
                    after=feature_state_snapshot(state),
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
        _audit(
            actor=actor,
            action=AuditAction.UPDATED,
            obj=locked,
            environment=environment,
            before=before,
            after=feature_state_snapshot(locked),
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

    Where change requests are on, creating an override stays a direct write (DESIGN.md §7)
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
        try:
            with transaction.atomic():
                override = SegmentOverride.objects.create(
                    feature=feature, environment=environment, segment=segment, priority=priority
                )
        except IntegrityError:  # a concurrent create won the race
            raise ValidationError({"segment": [_SEGMENT_TAKEN]}) from None
        state = FeatureState.objects.create(
            feature=feature,
            environment=environment,
            segment_override=override,
            enabled=enabled,
            value=value,
        )
        _audit(
            actor=actor,
            action=AuditAction.CREATED,
            obj=override,
            environment=environment,
            after=segment_override_snapshot(override, state),
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
        _audit(
            actor=actor,
            action=AuditAction.UPDATED,
            obj=locked,
            environment=environment,
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
        _audit(
            actor=actor,
            action=AuditAction.DELETED,
            obj=locked,
            environment=environment,
            before=segment_override_snapshot(locked, state),
        )
        locked.delete()


# --------------------------------------------------------------------------------------
# Change requests
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeInput:
    """One change of a change request, as sent: the target is the default state of
    `feature` in the environment, or the state of the override `segment_override` (which
    must be an override of `feature` in the environment)."""

    feature: int
    enabled: bool
    value: Any = None
    segment_override: int | None = None


@dataclass(frozen=True, slots=True)
class _Resolved:
    change: ChangeInput
    feature: Feature
    state: FeatureState


def _is_author(principal: Actor, change_request: ChangeRequest) -> bool:
    if isinstance(principal, OrganisationAPIKey):
        return change_request.author_api_key_id == principal.pk
    if isinstance(principal, AbstractBaseUser):
        return (
            change_request.author_user_id is not None
            and change_request.author_user_id == principal.pk
        )
    return False


def _principal_ref(user_id: int | None, api_key_id: int | None) -> dict[str, int] | None:
    if user_id is not None:
        return {"user": user_id}
    if api_key_id is not None:
        return {"api_key": api_key_id}
    return None


def change_request_snapshot(change_request: ChangeRequest) -> dict[str, Any]:
    """The audited state of a change request: its changes and approvals are part of it."""
    return {
        "title": change_request.title,
        "description": change_request.description,
        "status": change_request.status,
        "author": _principal_ref(change_request.author_user_id, change_request.author_api_key_id),
        "changes": [
            {
                "feature": c.feature_id,
                "segment_override": c.segment_override_id,
                "feature_state": c.feature_state_id,
                "enabled": c.enabled,
                "value": c.value,
                "recorded_version": c.recorded_version,
            }
            for c in ChangeRequestChange.objects.filter(change_request=change_request).order_by(
                "id"
            )
        ],
        "approvals": [
            _principal_ref(a.user_id, a.api_key_id)
            for a in ChangeRequestApproval.objects.filter(change_request=change_request).order_by(
                "approved_at", "id"
            )
        ],
        "committed_at": change_request.committed_at.isoformat()
        if change_request.committed_at
        else None,
        "committed_by": _principal_ref(
            change_request.committed_by_user_id, change_request.committed_by_api_key_id
        ),
    }


def _resolve_changes(environment: Environment, changes: Sequence[ChangeInput]) -> list[_Resolved]:
    """Each change's feature (of the environment's project, tags prefetched for the engine)
    and target state; every problem is a 400 on `changes`, all of them at once.

    Called inside the write's transaction: the features are locked, in id order, so that a
    concurrent feature delete either sees this change request or is seen by it (unknown
    feature, 400), never a half of both (docs/CONCURRENCY.md)."""
    if not changes:
        raise ValidationError({"changes": ["At least one change is required."]})
    feature_ids = {c.feature for c in changes}
    features = {
        f.pk: f
        for f in Feature.objects.select_for_update()
        .filter(project_id=environment.project_id, pk__in=feature_ids)
        .order_by("pk")
        .prefetch_related("tags")
    }
    override_ids = {c.segment_override for c in changes if c.segment_override is not None}
    overrides = {
        o.pk: o
        for o in SegmentOverride.objects.filter(
            environment=environment, pk__in=override_ids
        ).select_related("feature_state")
    }
    defaults = {
        s.feature_id: s
        for s in FeatureState.objects.filter(
            environment=environment, feature_id__in=feature_ids, segment_override__isnull=True
        )
    }
    errors: list[str] = []
    seen: set[tuple[int, int | None]] = set()
    resolved: list[_Resolved] = []
    for index, change in enumerate(changes):
        where = f"changes[{index}]"
        feature = features.get(change.feature)
        if feature is None:
            errors.append(f"{where}.feature: unknown feature id {change.feature} for this project.")
            continue
        target = (change.feature, change.segment_override)
        if target in seen:
            errors.append(f"{where}: a second change of the same target.")
            continue
        seen.add(target)
        if change.segment_override is None:
            state = defaults.get(feature.pk)
            if state is None:  # cannot happen while the invariant of features.signals holds
                errors.append(f"{where}: the feature has no state in this environment.")
                continue
        else:
            override = overrides.get(change.segment_override)
            if override is None or override.feature_id != feature.pk:
                errors.append(
                    f"{where}.segment_override: unknown override id {change.segment_override} "
                    "of this feature in this environment."
                )
                continue
            state = override.feature_state
        resolved.append(_Resolved(change, feature, state))
    if errors:
        raise ValidationError({"changes": errors})
    return resolved


def _distinct_features(features: Iterable[Feature]) -> list[Feature]:
    by_id = {f.pk: f for f in features}
    return [by_id[pk] for pk in sorted(by_id)]


def _holds_on_every_feature(
    principal: Actor, key: str, environment: Environment, features: Sequence[Feature]
) -> bool:
    if principal is None:  # the system (seeding, shell)
        return True
    return all(engine.allowed(principal, key, environment, f) for f in features)


def _require_on_every_feature(
    actor: Actor, key: str, environment: Environment, features: Sequence[Feature]
) -> None:
    """403 unless `actor` holds `key` on every feature, each with its own tags (Flagsmith
    #5225: a tag-scoped role reaches exactly the features carrying its tags)."""
    if actor is None:
        return
    missing = [f for f in features if not engine.allowed(actor, key, environment, f)]
    if missing:
        names = ", ".join(repr(f.name) for f in missing)
        raise DomainPermissionDenied(
            f"You need {key} on every feature of the change request; missing on {names}.",
            code="permission_denied",
        )


def _author_fields(actor: Actor) -> dict[str, Any]:
    if isinstance(actor, OrganisationAPIKey):
        return {"author_user": None, "author_api_key": actor}
    if isinstance(actor, AbstractBaseUser):
        return {"author_user": actor, "author_api_key": None}
    return {"author_user": None, "author_api_key": None}


def _create_changes(change_request: ChangeRequest, resolved: Sequence[_Resolved]) -> None:
    ChangeRequestChange.objects.bulk_create(
        [
            ChangeRequestChange(
                change_request=change_request,
                feature=r.feature,
                segment_override_id=r.change.segment_override,
                feature_state=r.state,
                targets_override=r.change.segment_override is not None,
                enabled=r.change.enabled,
                value=r.change.value,
                recorded_version=r.state.version,
            )
            for r in resolved
        ]
    )


def _require_open(change_request: ChangeRequest) -> None:
    if change_request.status != ChangeRequestStatus.OPEN:
        raise Conflict("The change request is already committed.", code="already_committed")


def _lock(change_request: ChangeRequest) -> ChangeRequest:
    locked = ChangeRequest.objects.select_for_update().get(pk=change_request.pk)
    locked.environment = change_request.environment  # keep the loaded project
    return locked


def _features_of(change_request: ChangeRequest) -> list[Feature]:
    """The features the change request touches, fresh from the database with their tags
    (a deleted feature is none of them: its change makes the request stale)."""
    return list(
        Feature.objects.filter(
            pk__in=ChangeRequestChange.objects.filter(change_request=change_request).values(
                "feature_id"
            )
        )
        .prefetch_related("tags")
        .order_by("pk")
    )


def change_request_create(
    *,
    environment: Environment,
    title: str,
    description: str = "",
    changes: Sequence[ChangeInput],
    actor: Actor,
) -> ChangeRequest:
    """Open a change request. Needs CREATE_CHANGE_REQUEST on every feature it touches (403)
    and change requests on in the environment (400 `change_requests_disabled`); records the
    version of each target state."""
    with transaction.atomic():
        resolved = _resolve_changes(environment, changes)
        _require_on_every_feature(
            actor,
            CREATE_CHANGE_REQUEST,
            environment,
            _distinct_features(r.feature for r in resolved),
        )
        if _threshold(environment.pk) is None:
            raise InvalidOperation(
                "Change requests are off in this environment: write the feature states directly.",
                code="change_requests_disabled",
            )
        change_request = ChangeRequest.objects.create(
            environment=environment, title=title, description=description, **_author_fields(actor)
        )
        _create_changes(change_request, resolved)
        _audit(
            actor=actor,
            action=AuditAction.CREATED,
            obj=change_request,
            environment=environment,
            after=change_request_snapshot(change_request),
        )
    change_request.environment = environment
    return change_request


def change_request_require_editable(*, change_request: ChangeRequest, actor: Actor) -> None:
    """The rules of an edit that do not depend on its body: the author only (403), open only
    (409 `already_committed`). The API checks them before it parses the body, so a
    non-author's invalid edit is a 403, not a 400 (docs/API.md, the order of the checks);
    `change_request_update` checks them again under its lock."""
    if actor is not None and not _is_author(actor, change_request):
        raise DomainPermissionDenied(
            "Only the author may edit a change request.", code="permission_denied"
        )
    _require_open(change_request)


def change_request_update(
    *,
    change_request: ChangeRequest,
    title: str = UNSET,
    description: str = UNSET,
    changes: Sequence[ChangeInput] | None = None,
    actor: Actor,
) -> ChangeRequest:
    """Edit an open change request: the author only (403), open only (409
    `already_committed`). `changes`, when given, replaces the changes. Every edit resets
    the approvals and re-records the target versions (Flagsmith #4465); the author needs
    CREATE_CHANGE_REQUEST on every feature of the edited request, as on creation. Writing
    back what was read, while no target moved, changes nothing and records nothing.

    A change whose target override was deleted cannot be re-recorded: send `changes`
    without it (400 on `changes` otherwise).
    """
    environment = change_request.environment
    with transaction.atomic():
        locked = _lock(change_request)
        change_request_require_editable(change_request=locked, actor=actor)
        if changes is None:
            current = list(ChangeRequestChange.objects.filter(change_request=locked).order_by("id"))
            gone = [
                i
                for i, c in enumerate(current)
                if c.feature_id is None or (c.targets_override and c.segment_override_id is None)
            ]
            if gone:
                raise ValidationError(
                    {
                        "changes": [
                            f"changes[{i}]: its feature or override was deleted; send the changes "
                            "again without it."
                            for i in gone
                        ]
                    }
                )
            changes = [
                ChangeInput(
                    feature=c.feature_id,
                    enabled=c.enabled,
                    value=c.value,
                    segment_override=c.segment_override_id,
                )
                for c in current
                if c.feature_id is not None  # none left: refused above
            ]
        resolved = _resolve_changes(environment, changes)
        _require_on_every_feature(
            actor,
            CREATE_CHANGE_REQUEST,
            environment,
            _distinct_features(r.feature for r in resolved),
        )
        before = change_request_snapshot(locked)
        if title is not UNSET:
            locked.title = title
        if description is not UNSET:
            locked.description = description
        wanted = [
            {
                "feature": r.feature.pk,
                "segment_override": r.change.segment_override,
                "feature_state": r.state.pk,
                "enabled": r.change.enabled,
                "value": r.change.value,
                "recorded_version": r.state.version,
            }
            for r in resolved
        ]
        if (before["title"], before["description"]) == (
            locked.title,
            locked.description,
        ) and _same_json(before["changes"], wanted):
            return locked
        locked.save(update_fields=["title", "description", "updated_at"])
        ChangeRequestChange.objects.filter(change_request=locked).delete()
        _create_changes(locked, resolved)
        ChangeRequestApproval.objects.filter(change_request=locked).delete()
        _audit(
            actor=actor,
            action=AuditAction.UPDATED,
            obj=locked,
            environment=environment,
            before=before,
            after=change_request_snapshot(locked),
        )
    return locked


def change_request_delete(*, change_request: ChangeRequest, actor: Actor) -> None:
    """Delete an open change request: its author or an environment admin (403), open only
    (409 `already_committed`)."""
    environment = change_request.environment
    with transaction.atomic():
        locked = _lock(change_request)
        if (
            actor is not None
            and not _is_author(actor, locked)
            and not engine.is_admin(actor, environment)
        ):
            raise DomainPermissionDenied(
                "Only the author or an environment admin may delete a change request.",
                code="permission_denied",
            )
        _require_open(locked)
        _audit(
            actor=actor,
            action=AuditAction.DELETED,
            obj=locked,
            environment=environment,
            before=change_request_snapshot(locked),
        )
        locked.delete()


def change_request_approve(*, change_request: ChangeRequest, actor: Actor) -> ChangeRequest:
    """Approve an open change request. Never the author (403 `cannot_approve_own`, checked
    before the key); APPROVE_CHANGE_REQUEST on every feature it touches, each with its tags
    (403); open only (409 `already_committed`). One approval per principal: approving
    again is a no-op. Audited as an update whose `after` lists the approvals."""
    if actor is None:
        raise ValueError("An approval needs a principal")
    environment = change_request.environment
    with transaction.atomic():
        locked = _lock(change_request)
        if _is_author(actor, locked):
            raise DomainPermissionDenied(
                "You cannot approve your own change request.", code="cannot_approve_own"
            )
        _require_on_every_feature(actor, APPROVE_CHANGE_REQUEST, environment, _features_of(locked))
        _require_open(locked)
        principal: dict[str, Any] = (
            {"api_key": actor} if isinstance(actor, OrganisationAPIKey) else {"user": actor}
        )
        if ChangeRequestApproval.objects.filter(change_request=locked, **principal).exists():
            return locked
        before = change_request_snapshot(locked)
        try:
            with transaction.atomic():
                ChangeRequestApproval.objects.create(change_request=locked, **principal)
        except IntegrityError:  # a concurrent approval by the same principal
            return locked
        _audit(
            actor=actor,
            action=AuditAction.UPDATED,
            obj=locked,
            environment=environment,
            before=before,
            after=change_request_snapshot(locked),
        )
    return locked


def change_request_valid_approvals(
    *, change_request: ChangeRequest, features: Sequence[Feature] | None = None
) -> int:
    """How many approvals count now: those of principals who are still members (or live API
    keys) holding APPROVE_CHANGE_REQUEST on every feature of the request. Each approver's
    policy is loaded fresh (a principal object of its own, memo dropped)."""
    environment = change_request.environment
    if features is None:
        features = _features_of(change_request)
    valid = 0
    for approval in ChangeRequestApproval.objects.filter(
        change_request=change_request
    ).select_related("user", "api_key"):
        principal: Actor = approval.user or approval.api_key
        if principal is None or _is_author(principal, change_request):
            continue
        engine.forget(principal)
        if _holds_on_every_feature(principal, APPROVE_CHANGE_REQUEST, environment, features):
            valid += 1
    return valid


def change_request_commit(*, change_request: ChangeRequest, actor: Actor) -> ChangeRequest:
    """Apply every change of an open change request in one transaction.

    Order (DESIGN.md §7): the author, or anyone who may approve it (403); open (409
    `already_committed`); enough valid approvals (400 `not_enough_approvals`; the threshold
    is the environment's now, 0 once change requests are off); no target changed or gone
    since recorded (409 `stale`). Each state whose values change gets its version bumped
    and an audit entry; the change request becomes `committed` with its own entry.
    """
    environment = change_request.environment
    with transaction.atomic():
        locked = _lock(change_request)
        features = _features_of(locked)
        if (
            actor is not None
            and not _is_author(actor, locked)
            and not _holds_on_every_feature(actor, APPROVE_CHANGE_REQUEST, environment, features)
        ):
            raise DomainPermissionDenied(
                "Only the author, or someone who may approve it, may commit a change request.",
                code="permission_denied",
            )
        _require_open(locked)
        threshold = _threshold(environment.pk) or 0
        valid = change_request_valid_approvals(change_request=locked, features=features)
        if valid < threshold:
            raise InvalidOperation(
                f"{valid} valid approval(s); this environment needs {threshold}.",
                code="not_enough_approvals",
            )
        changes = list(ChangeRequestChange.objects.filter(change_request=locked).order_by("id"))
        states = {
            s.pk: s
            for s in FeatureState.objects.select_for_update().filter(
                pk__in=[c.feature_state_id for c in changes if c.feature_state_id is not None]
            )
        }
        stale = [
            c
            for c in changes
            if c.feature_id is None
            or c.feature_state_id not in states
            or states[c.feature_state_id].version != c.recorded_version
        ]
        if stale or not changes:
            raise Conflict(
                "A target state changed (or was deleted) since the change request recorded it; "
                "edit the change request to re-record the versions.",
                code="stale",
            )
        before = change_request_snapshot(locked)
        for change in changes:
            state = states[change.feature_state_id]  # type: ignore[index]
            if state.enabled == change.enabled and _same_json(state.value, change.value):
                continue
            state_before = feature_state_snapshot(state)
            state = _write_state(state, enabled=change.enabled, value=change.value)
            _audit(
                actor=actor,
                action=AuditAction.UPDATED,
                obj=state,
                environment=environment,
                before=state_before,
                after={**feature_state_snapshot(state), "change_request": locked.pk},
            )
        locked.status = ChangeRequestStatus.COMMITTED
        locked.committed_at = timezone.now()
        locked.committed_by_user = cast(Any, actor) if isinstance(actor, AbstractBaseUser) else None
        locked.committed_by_api_key = actor if isinstance(actor, OrganisationAPIKey) else None
        locked.save(
            update_fields=[
                "status",
                "committed_at",
                "committed_by_user",
                "committed_by_api_key",
                "updated_at",
            ]
        )
        _audit(
            actor=actor,
            action=AuditAction.UPDATED,
            obj=locked,
            environment=environment,
            before=before,
            after=change_request_snapshot(locked),
        )
    return locked
