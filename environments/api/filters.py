"""Query-string filters of the environment list."""

from __future__ import annotations

from collections.abc import Sequence

import django_filters

from environments.models import Environment
from projects.api.filters import IntegerFilter


class EnvironmentFilter(django_filters.FilterSet):
    project = IntegerFilter(
        field_name="project_id", help_text="Only the environments of this project."
    )

    class Meta:
        model = Environment
        fields: Sequence[str] = ()
