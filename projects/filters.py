"""Query-string filters of the project and tag lists."""

from __future__ import annotations

from collections.abc import Sequence

import django_filters
from django import forms

from projects.models import Project, Tag


class IntegerFilter(django_filters.Filter):
    """An integer id (`?organisation=1.5` or `=x` is a 400 naming the parameter)."""

    field_class = forms.IntegerField


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
