"""Query-string filters of the feature-state, segment-override and change-request lists.

A value that cannot be parsed (`?enabled=maybe`, `?tags=a`, `?feature=1.5`) is a 400 naming
the parameter, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import django_filters

from features.api.filters import IntegerCSVFilter, with_any_tag
from features.models import (
    ChangeRequest,
    ChangeRequestStatus,
    FeatureState,
    SegmentOverride,
)
from projects.api.filters import IntegerFilter

_TRUE = ("true", "True", "1")
_BOOLEAN_CHOICES = [(v, v) for v in ("true", "false", "True", "False", "1", "0")]


class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """`true`/`false` (or `1`/`0`); anything else is a 400."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("choices", _BOOLEAN_CHOICES)
        kwargs.setdefault("coerce", lambda value: value in _TRUE)
        super().__init__(*args, **kwargs)


class FeatureStateFilter(django_filters.FilterSet):
    feature = IntegerFilter(field_name="feature_id", help_text="Only the state of this feature.")
    feature_name = django_filters.CharFilter(
        field_name="feature__name", help_text="Only the state of the feature with this name."
    )
    tags = IntegerCSVFilter(
        method=with_any_tag("feature_id"),
        help_text="Comma-separated tag ids: features with any of them.",
    )
    enabled = StrictBooleanFilter(field_name="enabled", help_text="true or false.")

    class Meta:
        model = FeatureState
        fields: Sequence[str] = ()


class SegmentOverrideFilter(django_filters.FilterSet):
    segment = IntegerFilter(field_name="segment_id", help_text="Only the override of this segment.")

    class Meta:
        model = SegmentOverride
        fields: Sequence[str] = ()


class ChangeRequestFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=ChangeRequestStatus.choices, help_text="open or committed."
    )

    class Meta:
        model = ChangeRequest
        fields: Sequence[str] = ()
