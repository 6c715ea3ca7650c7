"""Token login: POST /api/v1/auth/login/ {"username", "password"} → {"key"}."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response


@extend_schema(
    tags=["auth"],
    responses={
        200: inline_serializer("TokenResponse", {"key": serializers.CharField()}),
        400: inline_serializer(
            "LoginError",
            {
                name: serializers.ListField(child=serializers.CharField(), required=False)
                for name in ("username", "password", "non_field_errors")
            },
        ),
    },
)
class LoginView(ObtainAuthToken):
    authentication_classes = ()
    permission_classes = ()

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        # API.md fixes the field name `key` (DRF's default answer says `token`).
        return Response({"key": token.key})
