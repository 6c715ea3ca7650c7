"""Parsing and rendering of environments."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from environments.models import Environment
from projects.api.serializers import ViewableScopeField, reject_changed_reference
from projects.models import Project
from tagwarden.storable import INT32_MAX

_THRESHOLD_HELP = (
    "null: change requests are off; an integer n ≥ 0: every feature-state and "
    "segment-override write goes through a change request with at least n approvals."
)


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ("id", "api_key", "name", "project", "minimum_change_request_approvals")
        read_only_fields = fields


class EnvironmentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    project = ViewableScopeField(Project)
    minimum_change_request_approvals = serializers.IntegerField(
        min_value=0, max_value=INT32_MAX, allow_null=True, default=None, help_text=_THRESHOLD_HELP
    )


class EnvironmentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    minimum_change_request_approvals = serializers.IntegerField(
        min_value=0, max_value=INT32_MAX, allow_null=True, required=False, help_text=_THRESHOLD_HELP
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        environment: Environment = self.context["environment"]
        reject_changed_reference(self, "project", environment.project_id)
        reject_changed_reference(self, "api_key", environment.api_key)  # type: ignore[arg-type]
        return attrs
