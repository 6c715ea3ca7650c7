"""Query-string filters of the feature and segment lists."""

from __future__ import annotations

from collections.abc import Sequence

import django_filters
from django.db.models import Exists, OuterRef, Q, QuerySet

from features.models import Feature, Segment
from projects.api.filters import Int64FormField


class IntegerCSVFilter(django_filters.BaseInFilter, django_filters.Filter):
    """`?tags=1,2,3`: comma-separated integer ids (anything else is a 400 on the parameter)."""

    field_class = Int64FormField


class FeatureFilter(django_filters.FilterSet):
    tags = IntegerCSVFilter(method="filter_tags", help_text="Comma-separated tag ids (any of).")
    search = django_filters.CharFilter(
        method="filter_search", help_text="Case-insensitive match on name or description."
    )

    class Meta:
        model = Feature
        fields: Sequence[str] = ()

    def filter_tags(
        self, queryset: QuerySet[Feature], name: str, value: list[int]
    ) -> QuerySet[Feature]:
        if not value:
            return queryset
        through = Feature.tags.through.objects.filter(feature_id=OuterRef("pk"), tag_id__in=value)
        return queryset.filter(Exists(through))

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
