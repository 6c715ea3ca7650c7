"""Query-string filters of the feature and segment lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import django_filters
from django.db.models import Exists, OuterRef, Q, QuerySet

from features.models import Feature, Segment
from projects.api.filters import Int64FormField


class IntegerCSVFilter(django_filters.BaseInFilter, django_filters.Filter):
    """`?tags=1,2,3`: comma-separated integer ids (anything else is a 400 on the parameter)."""

    field_class = Int64FormField


def with_any_tag(feature_ref: str) -> Callable[[QuerySet[Any], str, list[int]], QuerySet[Any]]:
    """The `method` of a `?tags=` filter: the rows whose feature (its id in the row's
    `feature_ref`) has any of the tags."""

    def filter_tags(queryset: QuerySet[Any], name: str, value: list[int]) -> QuerySet[Any]:
        if not value:
            return queryset
        through = Feature.tags.through.objects.filter(
            feature_id=OuterRef(feature_ref), tag_id__in=value
        )
        return queryset.filter(Exists(through))

    return filter_tags


class FeatureFilter(django_filters.FilterSet):
    tags = IntegerCSVFilter(
        method=with_any_tag("pk"), help_text="Comma-separated tag ids (any of)."
    )
    search = django_filters.CharFilter(
        method="filter_search", help_text="Case-insensitive match on name or description."
    )

    class Meta:
        model = Feature
        fields: Sequence[str] = ()

    def filter_search(
        self, queryset: QuerySet[Feature], name: str, value: str
    ) -> QuerySet[Feature]:
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class SegmentFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Case-insensitive match on name."
    )

    class Meta:
        model = Segment
        fields: Sequence[str] = ()
