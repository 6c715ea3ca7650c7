"""Input and output of the SDK endpoints and of server-side key management."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sdk.models import ServerKey

_INT64 = 2**63


def _check_text(value: str) -> str:
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise serializers.ValidationError("Contains characters that cannot be stored.")
    return value


@extend_schema_field(
    {
        "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}],
        "nullable": True,
    }
)
class TraitValueField(serializers.Field):
    """A trait's value: a string, a number, a boolean, or null (which removes the trait)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool):
            return data
        if isinstance(data, int):
            if not -_INT64 <= data < _INT64:
                raise serializers.ValidationError("Integer out of range.")
            return data
        if isinstance(data, float):
            return data
        if isinstance(data, str):
            if len(data) > 2000:
                raise serializers.ValidationError("At most 2000 characters.")
            return _check_text(data)
        raise serializers.ValidationError("Must be a string, a number, a boolean or null.")

    def to_representation(self, value: Any) -> Any:
        return value


class TraitSerializer(serializers.Serializer):
    trait_key = serializers.CharField(max_length=200)
    trait_value = TraitValueField()
    transient = serializers.BooleanField(default=False)

    def validate_trait_key(self, value: str) -> str:
        return _check_text(value)


class IdentitySerializer(serializers.Serializer):
    identifier = serializers.CharField(max_length=2000)
    traits = TraitSerializer(many=True, default=list)
    transient = serializers.BooleanField(default=False)

    def validate_identifier(self, value: str) -> str:
        return _check_text(value)


class FlagFeatureSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    initial_value = serializers.JSONField(allow_null=True)
    default_enabled = serializers.BooleanField()
    type = serializers.CharField()


class FlagSerializer(serializers.Serializer):
    """One flag, as Flagsmith's `/flags/` answers it (documentation of the schema only)."""

    id = serializers.IntegerField()
    feature = FlagFeatureSerializer()
    feature_state_value = serializers.JSONField(allow_null=True)
    enabled = serializers.BooleanField()
    environment = serializers.IntegerField()
    identity = serializers.JSONField(allow_null=True)
    feature_segment = serializers.JSONField(allow_null=True)
    reason = serializers.CharField(required=False)


class IdentityTraitOutSerializer(serializers.Serializer):
    trait_key = serializers.CharField()
    trait_value = serializers.JSONField()
    transient = serializers.BooleanField(required=False)


class IdentityFlagsSerializer(serializers.Serializer):
    identifier = serializers.CharField()
    flags = FlagSerializer(many=True)
    traits = IdentityTraitOutSerializer(many=True)


class ServerKeySerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(source="display_prefix", read_only=True)
    created_at = serializers.DateTimeField(source="created", read_only=True)

    class Meta:
        model = ServerKey
        fields = ("id", "name", "prefix", "created_at", "revoked")
        read_only_fields = fields


class ServerKeyCreatedSerializer(ServerKeySerializer):
    key = serializers.SerializerMethodField(help_text="The key (ser.…), shown this once.")

    class Meta(ServerKeySerializer.Meta):
        fields = (*ServerKeySerializer.Meta.fields, "key")  # type: ignore[assignment]
        read_only_fields = fields  # type: ignore[assignment]

    def get_key(self, obj: ServerKey) -> str:
        return str(self.context["key"])


class ServerKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50)

    def validate_name(self, value: str) -> str:
        return _check_text(value)


class ServerKeyUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50, required=False)
    revoked = serializers.BooleanField(required=False)

    def validate_name(self, value: str) -> str:
        return _check_text(value)
