"""Request ids and the request log (docs/OPERATIONS.md, Logs).

Every request gets an id: the caller's `X-Request-ID` when it is a short token of safe
characters (a load balancer's), a new UUID otherwise. It is sent back in `X-Request-ID` on
every response, added to every log record written while the request runs
(`RequestIdFilter`), and to the JSON body of a 500 (`request_id`), so a user's report of a
failure leads to its logged traceback. After each request, the `tagwarden.request` logger
writes one line: method, path, status, duration_ms, principal type and id, organisation (when
the principal or the URL names one) and request_id; LOG_FORMAT=json makes it a JSON object.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

REQUEST_ID_HEADER = "X-Request-ID"
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

request_logger = logging.getLogger("tagwarden.request")
error_logger = logging.getLogger("tagwarden.errors")


class RequestIdFilter(logging.Filter):
    """Puts the running request's id (or "-") on every record, for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            # django.request logs 4xx after the middleware returned; its record has the request.
            request = getattr(record, "request", None)
            record.request_id = (
                current_request_id.get() or getattr(request, "request_id", None) or "-"
            )
        return True


def _principal(request: HttpRequest) -> tuple[str, int | None, int | None]:
    """(type, id, organisation id) of whoever DRF or the session authenticated."""
    from organisations.models import OrganisationAPIKey

    user: Any = getattr(request, "user", None)
    if isinstance(user, OrganisationAPIKey):
        return "api_key", user.pk, user.organisation_id
    if user is not None and getattr(user, "is_authenticated", False):
        return "user", user.pk, None
    return "anonymous", None, None


def _organisation_in_url(request: HttpRequest) -> int | None:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    value = match.kwargs.get("organisation_pk")
    if value is None and match.url_name and match.url_name.startswith("organisation-detail"):
        value = match.kwargs.get("pk")
    return value if isinstance(value, int) else None


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            if response.status_code >= 500:
                _add_request_id_to_json_body(response, request_id)
            response[REQUEST_ID_HEADER] = request_id
            self._log(request, response, started, request_id)
            return response
        finally:
            current_request_id.reset(token)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Django logs the traceback too (django.request); this record says which request.
        error_logger.error(
            "Unhandled %s on %s %s",
            type(exception).__name__,
            request.method,
            request.path,
            exc_info=exception,
        )

    @staticmethod
    def _log(request: HttpRequest, response: HttpResponse, started: float, request_id: str) -> None:
        if not request_logger.isEnabledFor(logging.INFO):
            return
        principal_type, principal_id, organisation = _principal(request)
        if organisation is None:
            organisation = _organisation_in_url(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        request_logger.info(
            "%s %s %s %sms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "principal_type": principal_type,
                "principal_id": principal_id,
                "organisation": organisation,
                "request_id": request_id,
            },
        )


def _add_request_id_to_json_body(response: HttpResponse, request_id: str) -> None:
    """A JSON 500 body (whatever produced it) also names the request id."""
    if getattr(response, "streaming", False):
        return
    if not response.get("Content-Type", "").startswith("application/json"):
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    if isinstance(body, dict):
        body["request_id"] = request_id
        response.content = json.dumps(body).encode()
        if response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
