"""Invariants kept on signals rather than only in services, so that the admin, factories and
any other `create()` or `delete()` keep them too:

- every (feature, environment) pair has exactly one default state, whichever came first;
- a project's `features_version` changes whenever its features, their tags or a tag's
  restriction change (docs/PERFORMANCE.md: kept feature indexes and counts of default
  states are keyed by it).

Bulk inserts bypass signals and must keep both themselves (the benchmark generator creates
the default states; its projects are new, so their versions are too).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from environments.models import Environment
from features.models import Feature, FeatureState
from organisations.models import Organisation
from projects.models import Project, Tag


def _features_changed(project_id: int, origin: Any = None) -> None:
    """A new `features_version` for the project, unless the deletion that got here started
    at the project or its organisation (an instance or a queryset: the project is going
    too, and one update per feature would only slow that down)."""
    if getattr(origin, "model", type(origin)) in (Project, Organisation):
        return
    Project.objects.filter(pk=project_id).update(features_version=uuid.uuid4())


@receiver(post_delete, sender=Feature, dispatch_uid="feature_deleted_version")
def _feature_deleted(sender: Any, instance: Feature, origin: Any = None, **_: Any) -> None:
    _features_changed(instance.project_id, origin)


@receiver(post_save, sender=Tag, dispatch_uid="tag_saved_version")
def _tag_saved(sender: Any, instance: Tag, created: bool, raw: bool, **_: Any) -> None:
    if not created and not raw:  # a new tag is on no feature yet
        _features_changed(instance.project_id)


@receiver(post_delete, sender=Tag, dispatch_uid="tag_deleted_version")
def _tag_deleted(sender: Any, instance: Tag, origin: Any = None, **_: Any) -> None:
    _features_changed(instance.project_id, origin)


@receiver(m2m_changed, sender=Feature.tags.through, dispatch_uid="feature_tags_version")
def _feature_tags_changed(
    sender: Any, instance: Feature | Tag, action: str, pk_set: set[int] | None, **_: Any
) -> None:
    if action in ("post_add", "post_remove", "post_clear") and (pk_set or action == "post_clear"):
        _features_changed(instance.project_id)


@receiver(post_save, sender=Feature, dispatch_uid="feature_default_states")
def _feature_created(sender: Any, instance: Feature, created: bool, raw: bool, **_: Any) -> None:
    if not created or raw:
        return
    FeatureState.objects.bulk_create(
        [
            FeatureState(feature=instance, environment_id=environment_id)
            for environment_id in Environment.objects.filter(
                project_id=instance.project_id
            ).values_list("id", flat=True)
        ]
    )
    # After the states: whoever reads the new version finds them, in a transaction or not
    # (counts of default states are kept under it: features.workflow.selectors).
    _features_changed(instance.project_id)


@receiver(post_save, sender=Environment, dispatch_uid="environment_default_states")
def _environment_created(
    sender: Any, instance: Environment, created: bool, raw: bool, **_: Any
) -> None:
    if not created or raw:
        return
    FeatureState.objects.bulk_create(
        [
            FeatureState(feature_id=feature_id, environment=instance)
            for feature_id in Feature.objects.filter(project_id=instance.project_id).values_list(
                "id", flat=True
            )
        ]
    )
