"""Writes for change requests: create, update, approve, commit, delete, in the order docs/CHANGE_REQUESTS.md fixes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Auditor
from environments.models import Environment
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    ChangeRequestStatus,
    Feature,
    FeatureState,
    SegmentOverride,
)
from features.workflow.services.common import (
    UNSET,
    _same_json,
    _threshold,
    _write_state,
)
from features.workflow.services.states import (
    feature_state_snapshot,
)
from organisations.models import OrganisationAPIKey
from permissions import engine
from permissions.catalogue import APPROVE_CHANGE_REQUEST, CREATE_CHANGE_REQUEST
from tagwarden.errors import BadRequest, Conflict, DomainPermissionDenied


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


def _resolve_proposable(
    actor: Actor, environment: Environment, changes: Sequence[ChangeInput]
) -> list[_Resolved]:
    """The changes resolved (their features and states locked); the actor needs
    CREATE_CHANGE_REQUEST on every feature they touch (403)."""
    resolved = _resolve_changes(environment, changes)
    features = _distinct_features(r.feature for r in resolved)
    _require_on_every_feature(actor, CREATE_CHANGE_REQUEST, environment, features)
    return resolved


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
        resolved = _resolve_proposable(actor, environment, changes)
        if _threshold(environment.pk) is None:
            raise BadRequest(
                "Change requests are off in this environment: write the feature states directly.",
                code="change_requests_disabled",
            )
        change_request = ChangeRequest.objects.create(
            environment=environment, title=title, description=description, **_author_fields(actor)
        )
        _create_changes(change_request, resolved)
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.CREATED, change_request, after=change_request_snapshot(change_request)
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
        resolved = _resolve_proposable(actor, environment, changes)
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
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.UPDATED, locked, before=before, after=change_request_snapshot(locked)
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
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.DELETED, locked, before=change_request_snapshot(locked)
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
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.UPDATED, locked, before=before, after=change_request_snapshot(locked)
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

    Order (docs/API.md, "Feature states, overrides, change requests"): the author, or anyone who may approve it (403); open (409
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
            raise BadRequest(
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
            Auditor.in_environment(environment, actor=actor).record(
                AuditAction.UPDATED,
                state,
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
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.UPDATED, locked, before=before, after=change_request_snapshot(locked)
        )
    return locked
