"""Writes for features and segments. (Feature states, overrides and change requests: see the
state modules.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditAction
from audit.services import Actor, Auditor
from features.models import Feature, FeatureState, Segment, SegmentOverride
from features.segment_rules import segment_rules_errors
from permissions import engine
from projects import selectors as project_selectors
from projects.models import Project, Tag
from projects.services import actor_is_project_admin
from tagwarden.errors import Conflict, DomainPermissionDenied
from tagwarden.services import lock_current, unique_write

_NAME_TAKEN = "A feature with this name already exists in the project."
_SEGMENT_NAME_TAKEN = "A segment with this name already exists in the project."


def _check_tags_of_project(project: Project, tags: Sequence[Tag]) -> None:
    foreign = sorted(t.pk for t in tags if t.project_id != project.pk)
    if foreign:
        raise ValidationError(
            {"tags": [f"Tags not in this project: {', '.join(map(str, foreign))}."]}
        )


def _lock_tags(tags: Sequence[Tag], *, also: Sequence[Tag] = ()) -> list[Tag]:
    """Lock the tags a feature write attaches (`tags`) or detaches (`also`), in id order,
    and return `tags` as they are now (docs/CONCURRENCY.md: whether a tag is protected, and
    whether it still exists, is read under the lock that tag deletes and grant writes
    take). A tag of `tags` deleted meanwhile is a 400 on `tags`."""
    ids = sorted({t.pk for t in [*tags, *also]})
    if not ids:
        return []
    current = {t.pk: t for t in Tag.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    gone = sorted({t.pk for t in tags if t.pk not in current})
    if gone:
        raise ValidationError({"tags": [f"Unknown tag ids: {', '.join(map(str, gone))}."]})
    return [current[t.pk] for t in tags]


def _check_protected_tag_change(
    *, actor: Actor, project: Project, attached: Sequence[Tag], detached: Sequence[Tag]
) -> None:
    """Attaching or detaching a protected tag needs project admin (docs/API.md, "Tags and features"): otherwise
    CREATE_FEATURE would let anyone move features into or out of a tag scope."""
    changed = [*attached, *detached]
    if not changed or actor_is_project_admin(actor=actor, project=project):
        return
    protected = project_selectors.tag_protected_ids(tags=changed)
    if not protected:
        return
    labels = ", ".join(sorted(repr(t.label) for t in changed if t.pk in protected))
    raise DomainPermissionDenied(
        f"Only project admins may attach or detach protected tags: {labels}.",
        code="protected_tag",
    )


def feature_snapshot(feature: Feature, tag_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """The audited state of a feature: its tags are part of it (docs/API.md, "Audit")."""
    tags = tag_ids if tag_ids is not None else [t.pk for t in feature.tags.all()]
    return {"name": feature.name, "description": feature.description, "tags": sorted(tags)}


def feature_create(
    *,
    project: Project,
    name: str,
    description: str = "",
    tags: Sequence[Tag] = (),
    actor: Actor,
) -> Feature:
    """Creating a feature also creates its default state in every environment of the project
    (features.signals). Attaching a protected tag needs project admin, at creation too."""
    tags = list(tags)
    _check_tags_of_project(project, tags)
    with transaction.atomic():
        tags = _lock_tags(tags)
        _check_protected_tag_change(actor=actor, project=project, attached=tags, detached=())
        if Feature.objects.filter(project=project, name=name).exists():
            raise ValidationError({"name": [_NAME_TAKEN]})
        with unique_write(field="name", message=_NAME_TAKEN):
            feature = Feature.objects.create(project=project, name=name, description=description)
        feature.tags.set(tags)
        Auditor.in_project(project, actor=actor).record(
            AuditAction.CREATED,
            feature,
            after={
                **feature_snapshot(feature, [t.pk for t in tags]),
                "default_states_created": feature.states.count(),
            },
        )
    return feature


def feature_update(
    *,
    feature: Feature,
    name: str | None = None,
    description: str | None = None,
    tags: Sequence[Tag] | None = None,
    actor: Actor,
) -> Feature:
    """Edit a feature; `tags` replaces its tag set. Attaching or detaching a protected tag
    needs project admin; writing back what was read changes nothing and records nothing."""
    project = feature.project
    with transaction.atomic():
        feature = Feature.objects.select_for_update().get(pk=feature.pk)
        current = {t.pk: t for t in feature.tags.all()}
        before = feature_snapshot(feature, list(current))
        if tags is not None:
            tags = list(tags)
            _check_tags_of_project(project, tags)
            # Lock order (docs/CONCURRENCY.md): the feature, then its tags, old and new.
            tags = _lock_tags(tags, also=list(current.values()))
            wanted = {t.pk: t for t in tags}
            _check_protected_tag_change(
                actor=actor,
                project=project,
                attached=[t for pk, t in wanted.items() if pk not in current],
                detached=[t for pk, t in current.items() if pk not in wanted],
            )
        if (
            name is not None
            and name != feature.name
            and Feature.objects.filter(project_id=feature.project_id, name=name)
            .exclude(pk=feature.pk)
            .exists()
        ):
            raise ValidationError({"name": [_NAME_TAKEN]})
        if name is not None:
            feature.name = name
        if description is not None:
            feature.description = description
        after = feature_snapshot(feature, list(wanted) if tags is not None else list(current))
        if after == before:
            return feature
        if (after["name"], after["description"]) != (before["name"], before["description"]):
            with unique_write(field="name", message=_NAME_TAKEN):
                feature.save(update_fields=["name", "description"])
        if after["tags"] != before["tags"]:
            feature.tags.set(tags or [])
            engine.forget_feature_tags(feature)
        Auditor.in_project(project, actor=actor).record(
            AuditAction.UPDATED, feature, before=before, after=after
        )
    return feature


def feature_delete(*, feature: Feature, actor: Actor) -> None:
    """Delete a feature with its states and overrides. Deleting is not detaching its tags:
    the caller's DELETE_FEATURE on the feature suffices (docs/PERMISSIONS.md).

    Open change requests that touch the feature keep their changes of it, with no feature
    and no target (`ChangeRequestChange.feature` is set to null): they can never be
    committed again, in whole or in part (409 `stale`), and the audit entry names them in
    `open_change_requests`. The feature's row lock, taken first, serialises this with
    change-request creation and edits, which lock the features they touch
    (docs/CONCURRENCY.md)."""
    from features.models import ChangeRequestChange, ChangeRequestStatus

    project = feature.project
    with transaction.atomic():
        locked = lock_current(feature)
        if locked is None:  # deleted meanwhile: nothing left to delete
            return
        open_change_requests = sorted(
            set(
                ChangeRequestChange.objects.filter(
                    feature=locked, change_request__status=ChangeRequestStatus.OPEN
                ).values_list("change_request_id", flat=True)
            )
        )
        before = {
            **feature_snapshot(locked),
            "feature_states_deleted": FeatureState.objects.filter(feature=locked).count(),
            "segment_overrides_deleted": locked.segment_overrides.count(),
            "open_change_requests": open_change_requests,
        }
        Auditor.in_project(project, actor=actor).delete(locked, before=before)


# --------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------


def _validate_rules(rules: Any) -> None:
    """Flagsmith's rule format (features/segment_rules.py); errors keyed by the path of the
    bad part (`rules[0].conditions[1].operator`), on every write path."""
    errors = segment_rules_errors(rules)
    if errors:
        raise ValidationError(errors)


def segment_snapshot(segment: Segment) -> dict[str, Any]:
    return {"name": segment.name, "rules": segment.rules}


def segment_create(
    *, project: Project, name: str, rules: list[Any] | None = None, actor: Actor
) -> Segment:
    rules = [] if rules is None else rules
    _validate_rules(rules)
    if Segment.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": [_SEGMENT_NAME_TAKEN]})
    with transaction.atomic():
        with unique_write(field="name", message=_SEGMENT_NAME_TAKEN):
            segment = Segment.objects.create(project=project, name=name, rules=rules)
        Auditor.in_project(project, actor=actor).record(
            AuditAction.CREATED, segment, after=segment_snapshot(segment)
        )
    return segment


def segment_update(
    *, segment: Segment, name: str | None = None, rules: list[Any] | None = None, actor: Actor
) -> Segment:
    if rules is not None:
        _validate_rules(rules)
    project = segment.project
    if (
        name is not None
        and Segment.objects.filter(project_id=segment.project_id, name=name)
        .exclude(pk=segment.pk)
        .exists()
    ):
        raise ValidationError({"name": [_SEGMENT_NAME_TAKEN]})
    with transaction.atomic():
        segment = Segment.objects.select_for_update().get(pk=segment.pk)
        before = segment_snapshot(segment)
        if name is not None:
            segment.name = name
        if rules is not None:
            segment.rules = rules
        Auditor.in_project(project, actor=actor).save(
            segment,
            fields=["name", "rules"],
            before=before,
            after=segment_snapshot(segment),
            unique=("name", _SEGMENT_NAME_TAKEN),
        )
    return segment


def segment_delete(*, segment: Segment, actor: Actor) -> None:
    """Delete a segment that no override uses any more.

    A segment that still has overrides is a 409 `segment_in_use` naming them, for everyone,
    admins included (docs/PERMISSIONS.md, "A write is authorised for everything it
    changes"): its overrides live in environments and on features guarded by other keys
    (MANAGE_SEGMENT_OVERRIDES, change requests), so each must be deleted through its own
    path first. The check runs under the segment's row lock, which override creation takes
    too (docs/CONCURRENCY.md): an override created meanwhile is seen, never orphaned."""
    project = segment.project
    with transaction.atomic():
        locked = lock_current(segment)
        if locked is None:  # deleted meanwhile: nothing left to delete
            return
        overrides = list(
            SegmentOverride.objects.filter(segment=locked)
            .order_by("environment_id", "feature_id", "id")
            .values("id", "environment_id", "feature_id")
        )
        if overrides:
            environments = sorted({o["environment_id"] for o in overrides})
            features = sorted({o["feature_id"] for o in overrides})
            raise Conflict(
                f"Segment {locked.name!r} still has {len(overrides)} override(s) in "
                f"{len(environments)} environment(s) on {len(features)} feature(s): delete "
                "them first.",
                code="segment_in_use",
                environments=environments,
                features=features,
                overrides=[
                    {"id": o["id"], "environment": o["environment_id"], "feature": o["feature_id"]}
                    for o in overrides
                ],
            )
        Auditor.in_project(project, actor=actor).delete(locked, before=segment_snapshot(locked))
