"""Shared set-up for the SDK endpoint tests (docs/API.md "Flags for applications")."""

from __future__ import annotations

from typing import Any

from features.models import FeatureState
from tests import factories as f


def rules_where(trait: str, value: str, operator: str = "EQUAL") -> list[dict[str, Any]]:
    """Rules in Flagsmith's format matching identities whose `trait` compares to `value`."""
    return [
        {
            "type": "ALL",
            "rules": [],
            "conditions": [{"property": trait, "operator": operator, "value": value}],
        }
    ]


def set_default(feature: Any, environment: Any, *, enabled: bool, value: Any = None) -> None:
    FeatureState.objects.filter(
        feature=feature, environment=environment, segment_override__isnull=True
    ).update(enabled=enabled, value=value)


def segment_override(
    feature: Any,
    environment: Any,
    *,
    rules: list[dict[str, Any]],
    enabled: bool = True,
    value: Any = None,
    priority: int = 0,
) -> Any:
    segment = f.SegmentFactory(project=feature.project, rules=rules)
    return f.SegmentOverrideFactory(
        feature=feature,
        environment=environment,
        segment=segment,
        priority=priority,
        state__enabled=enabled,
        state__value=value,
    )
