"""Writes for features and segments. (Feature states, overrides and change requests: see the
state modules.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from audit.models import AuditAction
from audit.services import Actor, audit_record
from features.models import Feature, FeatureState, Segment
from features.segment_rules import segment_rules_errors
from permissions import engine
from projects import selectors as project_selectors
from projects.models import Project, Tag
from projects.services import actor_is_project_admin
from tagwarden.errors import DomainPermissionDenied

_NAME_TAKEN = "A feature with this name already exists in the project."
_SEGMENT_NAME_TAKEN = "A segment with this name already exists in the project."


def _check_tags_of_project(project: Project, tags: Sequence[Tag]) -> None:
    foreign = sorted(t.pk for t in tags if t.project_id != project.pk)
    if foreign:
        raise ValidationError(
            {"tags": [f"Tags not in this project: {', '.join(map(str, foreign))}."]}
        )


def _check_protected_tag_change(
    *, actor: Actor, project: Project, attached: Sequence[Tag], detached: Sequence[Tag]
) -> None:
    """Attaching or detaching a protected tag needs project admin (DESIGN.md §5): otherwise
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
    """The audited state of a feature: its tags are part of it (DESIGN.md §8)."""
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
    _check_protected_tag_change(actor=actor, project=project, attached=tags, detached=())
    if Feature.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": [_NAME_TAKEN]})
    with transaction.atomic():
        try:
            with transaction.atomic():
                feature = Feature.objects.create(
                    project=project, name=name, description=description
                )
        except IntegrityError:  # a concurrent create won the race
            raise ValidationError({"name": [_NAME_TAKEN]}) from None
        feature.tags.set(tags)
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=feature,
            organisation_id=project.organisation_id,
            project_id=project.pk,
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
            try:
                with transaction.atomic():
                    feature.save(update_fields=["name", "description"])
            except IntegrityError:
                raise ValidationError({"name": [_NAME_TAKEN]}) from None
        if after["tags"] != before["tags"]:
            feature.tags.set(tags or [])
            engine.forget_feature_tags(feature)
        audit_record(
            actor=actor,
            action=AuditAction.UPDATED,
            obj=feature,
            organisation_id=project.organisation_id,
            project_id=project.pk,
            before=before,
            after=after,
        )
    return feature


def feature_delete(*, feature: Feature, actor: Actor) -> None:
    """Delete a feature with its states and overrides. Deleting is not detaching its tags:
    the caller's DELETE_FEATURE on the feature suffices (DESIGN.md §5)."""
    project = feature.project
    with transaction.atomic():
        before = {
            **feature_snapshot(feature),
            "feature_states_deleted": FeatureState.objects.filter(feature=feature).count(),
            "segment_overrides_deleted": feature.segment_overrides.count(),
        }
        audit_record(
            actor=actor,
            action=AuditAction.DELETED,
            obj=feature,
            organisation_id=project.organisation_id,
            project_id=project.pk,
            before=before,
        )
        feature.delete()


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
        try:
            with transaction.atomic():
                segment = Segment.objects.create(project=project, name=name, rules=rules)
        except IntegrityError:
            raise ValidationError({"name": [_SEGMENT_NAME_TAKEN]}) from None
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=segment,
            organisation_id=project.organisation_id,
            project_id=project.pk,
            after=segment_snapshot(segment),
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
        after = segment_snapshot(segment)
        if after == before:
            return segment
        try:
            with transaction.atomic():
                segment.save(update_fields=["name", "rules"])
        except IntegrityError:
            raise ValidationError({"name": [_SEGMENT_NAME_TAKEN]}) from None
        audit_record(
            actor=actor,
            action=AuditAction.UPDATED,
            obj=segment,
            organisation_id=project.organisation_id,
            project_id=project.pk,
            before=before,
            after=after,
        )
    return segment


def segment_delete(*, segment: Segment, actor: Actor) -> None:
    """Delete a segment with its overrides (and their states); one audit entry counting them."""
    project = segment.project
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.DELETED,
            obj=segment,
            organisation_id=project.organisation_id,
            project_id=project.pk,
            before={
                **segment_snapshot(segment),
                "segment_overrides_deleted": segment.overrides.count(),
            },
        )
        segment.delete()
