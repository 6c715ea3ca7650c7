"""URLs and reads shared by the feature-state, segment-override and change-request tests:
the environment's URLs, its default states, and the audit entries written."""

from __future__ import annotations

from typing import Any

from audit.models import AuditLogEntry
from features.models import FeatureState


def env_url(environment: Any, suffix: str = "") -> str:
    return f"/api/v1/environments/{environment.api_key}/{suffix}"


def state_url(environment: Any, state: Any | None = None) -> str:
    return env_url(environment, "featurestates/" + (f"{state.pk}/" if state is not None else ""))


def default_state(feature: Any, environment: Any) -> FeatureState:
    return FeatureState.objects.get(
        feature=feature, environment=environment, segment_override__isnull=True
    )


def audit_entries(object_type: str, **kwargs: Any) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type=object_type, **kwargs).order_by("id"))
