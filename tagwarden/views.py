"""Token login: POST /api/v1/auth/login/ {"username", "password"} → {"key"}."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken


@extend_schema(
    tags=["auth"],
    responses={
        200: inline_serializer("TokenResponse", {"key": serializers.CharField()}),
        400: inline_serializer(
            "LoginError", {"non_field_errors": serializers.ListField(child=serializers.CharField())}
        ),
    },
)
class LoginView(ObtainAuthToken):
    authentication_classes = ()
    permission_classes = ()
