"""Login throttling (docs/API.md, Authentication): per username and per client address.

DRF's rate throttles, counting in the shared cache (the database cache in settings, so every
process on every host sees the same counters). Both the API login and the Django admin's login
form use them; a refused attempt answers 429 with `Retry-After`. The rate is read from
settings on every request (`DEFAULT_THROTTLE_RATES`), so tests can change it.

Counting is DRF's: read, then write, without a lock, so a burst of simultaneous attempts may
let a few more through than the rate; the rate bounds guessing, it does not make it impossible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import SimpleRateThrottle


def _rate(scope: str | None) -> str | None:
    rates: Any = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
    return rates.get(scope) if scope else None


def submitted_username(request: Any) -> str:
    """The username a login attempt names: DRF's parsed body, or the admin form's POST."""
    data = getattr(request, "data", None)
    if data is None:
        data = request.POST
    value = data.get("username") if hasattr(data, "get") else None
    return value.strip().casefold() if isinstance(value, str) else ""


class LoginRateThrottle(SimpleRateThrottle):
    """Counts POSTs only: showing the admin's login form is not an attempt."""

    def get_rate(self) -> str | None:
        return _rate(self.scope)

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class LoginUsernameThrottle(LoginRateThrottle):
    """Attempts naming one username, from anywhere (the case-folded name, hashed for the key)."""

    scope = "login_username"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        username = submitted_username(request)
        if not username:
            return None  # nothing to guess: the 400 for the missing field costs nothing
        digest = hashlib.sha256(username.encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}


class LoginAddressThrottle(LoginRateThrottle):
    """Attempts from one client address, whatever the username (`NUM_PROXIES` says which
    X-Forwarded-For entry is the client's; none is trusted by default)."""

    scope = "login_address"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


LOGIN_THROTTLES: tuple[type[LoginRateThrottle], ...] = (
    LoginUsernameThrottle,
    LoginAddressThrottle,
)


def throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a plain Django login view (the admin's) in the API login's throttles."""

    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        waits = [
            throttle.wait() or 0.0
            for throttle in (cls() for cls in LOGIN_THROTTLES)
            if not throttle.allow_request(request, None)
        ]
        if waits:
            response = HttpResponse(
                "Too many login attempts. Try again later.", status=429, content_type="text/plain"
            )
            response["Retry-After"] = str(max(1, int(max(waits) + 0.999)))
            return response
        return view(request, *args, **kwargs)

    return wrapper
