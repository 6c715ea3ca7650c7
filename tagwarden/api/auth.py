"""Sign-in (docs/API.md, Authentication): token login and logout.

`POST /api/v1/auth/login/ {"username", "password"}` → 200 `{"key"}`: a django-rest-knox token
(stored hashed, expiring after `TOKEN_TTL`), sent back as `Authorization: Token <key>`.
`POST /api/v1/auth/logout/` deletes the caller's token (204). Login is throttled per username
and per client address (tagwarden/throttling.py); a wrong password, an unknown user and an
inactive user get the same 400 with the same body, after the same password-hash work.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from knox.models import AuthToken
from knox.views import LogoutView as KnoxLogoutView
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from organisations.authentication import ExpiringTokenAuthentication, delete_expired_tokens
from tagwarden.throttling import LoginAddressThrottle, LoginUsernameThrottle

INVALID_CREDENTIALS = "Unable to log in with provided credentials."

_ERROR = inline_serializer(
    "AuthError", {"detail": serializers.CharField(), "code": serializers.CharField()}
)


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(trim_whitespace=False, max_length=150)
    password = serializers.CharField(
        trim_whitespace=False, style={"input_type": "password"}, max_length=4096
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Django's ModelBackend hashes the password for an unknown user too, and refuses an
        # inactive one only after checking the password: every failure costs the same.
        user = authenticate(
            request=self.context.get("request"),
            username=attrs["username"],
            password=attrs["password"],
        )
        if user is None:
            raise serializers.ValidationError(INVALID_CREDENTIALS, code="authorization")
        attrs["user"] = user
        return attrs


@extend_schema(
    tags=["auth"],
    request=LoginSerializer,
    responses={
        200: inline_serializer("TokenResponse", {"key": serializers.CharField()}),
        400: inline_serializer(
            "LoginError",
            {
                name: serializers.ListField(child=serializers.CharField(), required=False)
                for name in ("username", "password", "non_field_errors")
            },
        ),
        429: OpenApiResponse(_ERROR, description="Too many attempts; see Retry-After."),
    },
)
class LoginView(APIView):
    authentication_classes = ()
    permission_classes = ()
    throttle_classes = (LoginUsernameThrottle, LoginAddressThrottle)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = LoginSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        delete_expired_tokens(user=user)
        _, key = AuthToken.objects.create(user=user)
        return Response({"key": key})


@extend_schema(
    tags=["auth"],
    request=None,
    responses={204: None, 401: OpenApiResponse(_ERROR, description="No valid token.")},
)
class LogoutView(KnoxLogoutView):
    """Deletes the token the request came with; other tokens of the user stay valid."""

    authentication_classes = (ExpiringTokenAuthentication,)
