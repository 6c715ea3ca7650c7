"""One error shape for the API: 400 `{field: [messages]}`, other errors `{detail, code}`.

Domain services raise Django's `ValidationError` (400), `PermissionDenied` (403) or
`tagwarden.errors.Conflict` (409); this handler turns them into DRF responses so services
never import the API layer. What no handler expects escapes to Django, whose 404 and 500
handlers (`api_not_found`, `api_server_error`, set in tagwarden/urls.py) answer JSON under
/api/ too (docs/API.md, Conventions): Django logs the traceback and sends
`got_request_exception` first, as for any uncaught exception.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tagwarden.errors import BadRequest, Conflict, DomainPermissionDenied


def _validation_payload(error: DjangoValidationError) -> Any:
    if hasattr(error, "error_dict"):
        return {field: [str(m) for m in msgs] for field, msgs in error.message_dict.items()}
    return {"non_field_errors": [str(m) for m in error.messages]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_validation_payload(exc))
    elif isinstance(exc, BadRequest):
        return Response(
            {"detail": exc.detail, "code": exc.code, **exc.extra},
            status=status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, Conflict):
        return Response(
            {"detail": exc.detail, "code": exc.code, **exc.extra}, status=status.HTTP_409_CONFLICT
        )
    elif isinstance(exc, DomainPermissionDenied):
        return Response({"detail": exc.detail, "code": exc.code}, status=status.HTTP_403_FORBIDDEN)
    elif isinstance(exc, (ProtectedError, RestrictedError)):
        return Response(
            {"detail": "The object is still in use.", "code": "in_use"},
            status=status.HTTP_409_CONFLICT,
        )
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        # One shape for every 404, whatever raised it: {"detail", "code": "not_found"}.
        exc = exceptions.NotFound()

    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        data = response.data
        if isinstance(data, dict) and "detail" in data and "code" not in data:
            data["code"] = getattr(exc.detail, "code", None) or exc.default_code
    return response


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> Any:
    """handler404: paths under /api/ that match no route answer JSON like every API 404;
    the rest of the site keeps Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())


def server_error_body() -> dict[str, Any]:
    """The body of every 500 under /api/: the one place to extend it."""
    return {"detail": "A server error occurred.", "code": "server_error"}


def api_server_error(request: HttpRequest) -> Any:
    """handler500: under /api/, the JSON error shape (never an HTML page), for exceptions
    escaping DRF views and plain Django code alike; the rest of the site keeps Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse(server_error_body(), status=500)
    from django.views.defaults import server_error

    return server_error(request)
