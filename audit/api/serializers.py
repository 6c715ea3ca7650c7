"""Rendering of audit log entries (read-only)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.models import AuditLogEntry
from impact.api.serializers import ImpactChangeSerializer


class ActorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["user", "api_key"])
    id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()


class AuditImpactSerializer(serializers.Serializer):
    """Who gained and who lost which keys through the change an entry records (docs/PERMISSIONS.md, "Seeing a change before
    making it"): the first changes each way, and the totals."""

    gained = ImpactChangeSerializer(many=True)
    lost = ImpactChangeSerializer(many=True)
    gained_total = serializers.IntegerField()
    lost_total = serializers.IntegerField()
    principals = serializers.IntegerField(help_text="Users and API keys gaining or losing.")
    truncated = serializers.BooleanField(
        help_text="`gained` or `lost` lists only the first of its changes (see the totals)."
    )


class AuditLogEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    organisation = serializers.IntegerField(source="organisation_id", read_only=True)
    project = serializers.IntegerField(source="project_id", read_only=True, allow_null=True)
    environment = serializers.IntegerField(source="environment_id", read_only=True, allow_null=True)
    before = serializers.JSONField(read_only=True, allow_null=True)
    after = serializers.JSONField(read_only=True, allow_null=True)
    impact = AuditImpactSerializer(
        read_only=True,
        allow_null=True,
        help_text="What the change did to permissions, on entries of permission writes; "
        "null for other changes and for those recorded before impacts were.",
    )

    class Meta:
        model = AuditLogEntry
        fields = (
            "id",
            "created_at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "organisation",
            "project",
            "environment",
            "before",
            "after",
            "impact",
        )
        read_only_fields = fields

    @extend_schema_field(ActorSerializer(allow_null=True))
    def get_actor(self, entry: AuditLogEntry) -> dict[str, Any] | None:
        """Who did it: a user or an API key (the id is null once the actor is deleted; the
        type and name stay); null for changes made by the system."""
        if entry.actor_type == "user":
            return {"type": "user", "id": entry.actor_user_id, "name": entry.actor_name}
        if entry.actor_type == "api_key":
            return {"type": "api_key", "id": entry.actor_api_key_id, "name": entry.actor_name}
        return None
