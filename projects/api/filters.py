"""Query-string filters of the project and tag lists."""

from __future__ import annotations

from collections.abc import Sequence

import django_filters
from django import forms

from projects.models import Project, Tag
from tagwarden.storable import INT64_MAX, INT64_MIN


class Int64FormField(forms.IntegerField):
    """An integer the databases can compare: outside the 64-bit signed range is a 400 naming
    the parameter (docs/API.md, Conventions), not a 500 from the database driver."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("min_value", INT64_MIN)
        kwargs.setdefault("max_value", INT64_MAX)
        super().__init__(**kwargs)  # type: ignore[arg-type]


class IntegerFilter(django_filters.Filter):
    """An integer id (`?organisation=1.5`, `=x` or `=2**63` is a 400 naming the parameter).
    Every integer query parameter of the API is one of these (or an `IntegerCSVFilter`)."""

    field_class = Int64FormField


class ProjectFilter(django_filters.FilterSet):
    organisation = IntegerFilter(
        field_name="organisation_id", help_text="Only the projects of this organisation."
    )

    class Meta:
        model = Project
        fields: Sequence[str] = ()


class TagFilter(django_filters.FilterSet):
    is_restricted = django_filters.BooleanFilter()
    search = django_filters.CharFilter(
        field_name="label", lookup_expr="icontains", help_text="Case-insensitive match on label."
    )

    class Meta:
        model = Tag
        fields: Sequence[str] = ()
