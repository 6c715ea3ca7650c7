"""Rendering of audit log entries (read-only)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.models import AuditLogEntry


class ActorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["user", "api_key"])
    id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()


class AuditLogEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    organisation = serializers.IntegerField(source="organisation_id", read_only=True)
    project = serializers.IntegerField(source="project_id", read_only=True, allow_null=True)
    environment = serializers.IntegerField(source="environment_id", read_only=True, allow_null=True)
    before = serializers.JSONField(read_only=True, allow_null=True)
    after = serializers.JSONField(read_only=True, allow_null=True)

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
