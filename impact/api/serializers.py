"""The IMPACT payload of docs/API.md ("Permissions as code and impact preview") as DRF
serializers, for the endpoints that answer with it."""

from __future__ import annotations

from rest_framework import serializers


class ImpactChangeSerializer(serializers.Serializer):
    """One change of an impact answer (docs/PERMISSIONS.md, "Seeing a change before making
    it"): a user (`user`, `email`) or an API key (`api_key`, `name`; `email` null), a key on a
    scope, and the number of features for tag-supported keys."""

    user = serializers.IntegerField(required=False)
    api_key = serializers.IntegerField(required=False)
    email = serializers.CharField(allow_null=True)
    name = serializers.CharField(required=False)
    permission = serializers.CharField()
    project = serializers.IntegerField(allow_null=True)
    environment = serializers.IntegerField(allow_null=True)
    features = serializers.IntegerField(allow_null=True)


class ImpactCountSerializer(serializers.Serializer):
    """One row of IMPACT's `summary`: how many principals gain and lose a key on a scope."""

    permission = serializers.CharField()
    project = serializers.IntegerField(allow_null=True)
    environment = serializers.IntegerField(allow_null=True)
    gained = serializers.IntegerField()
    lost = serializers.IntegerField()


class ImpactSerializer(serializers.Serializer):
    gained = ImpactChangeSerializer(many=True, help_text="At most `impact_limit` changes.")
    lost = ImpactChangeSerializer(many=True, help_text="At most `impact_limit` changes.")
    summary = ImpactCountSerializer(many=True, help_text="Complete, whatever the limit.")
    truncated = serializers.BooleanField(help_text="Some changes were left out of the lists.")


class ImpactResponseSerializer(serializers.Serializer):
    """The answer of a write endpoint called with `?dry_run=true`."""

    impact = ImpactSerializer()
