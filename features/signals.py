"""Every (feature, environment) pair has exactly one default state, whichever came first.

Done on post_save rather than only in services so that the admin, factories and any other
`create()` keep the invariant too. Bulk inserts bypass signals and must create the default
states themselves (as the benchmark generator does).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from environments.models import Environment
from features.models import Feature, FeatureState


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
