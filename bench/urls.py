"""Benchmark URLconf (`bench.settings`): every project URL, unchanged, plus

- `bench/naive/environments/{api_key}/featurestates/` and `bench/naive-memo/...`: the naive
  lists of `bench.naive`; `bench/floor/...`: the same page with no authorisation at all;
- with `BENCH_ALLOWANY=1` in the environment, the real feature-state detail route served by a
  subclass of its own view whose only change is its permission classes: `[AllowAny]`
  (`permission_classes` and `get_permissions()`), so the two gunicorn runs differ by the
  checks of the permission classes and nothing else (authentication, middleware, scope
  lookup, services and serialisers are the same).
"""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, URLResolver, include, path, resolve
from django.urls.exceptions import Resolver404
from rest_framework.permissions import AllowAny

from bench.naive import FloorFeatureStateList, NaiveFeatureStateList, NaiveMemoFeatureStateList

STATE_DETAIL_PROBE = "/api/v1/environments/probe/featurestates/1/"


def allow_any_state_detail() -> URLPattern:
    """The feature-state detail route, with the real view's permission classes → AllowAny."""
    try:
        match = resolve(STATE_DETAIL_PROBE, urlconf="tagwarden.urls")
    except Resolver404 as exc:
        raise ImproperlyConfigured(
            "No feature-state detail route "
            "(docs/API.md: /api/v1/environments/{api_key}/featurestates/{id}/)"
        ) from exc
    func: Any = match.func
    cls = getattr(func, "cls", None)
    if cls is None:
        raise ImproperlyConfigured(f"{match.view_name} is not a DRF view")
    # Both: DRF reads `get_permissions()`, which the project's viewsets override (they map
    # actions to requirements there) instead of reading `permission_classes`.
    allow_any = type(
        f"AllowAny{cls.__name__}",
        (cls,),
        {"permission_classes": [AllowAny], "get_permissions": lambda self: [AllowAny()]},
    )
    initkwargs = dict(getattr(func, "initkwargs", {}) or {})
    actions = getattr(func, "actions", None)
    view = (
        allow_any.as_view(actions, **initkwargs)
        if actions is not None
        else allow_any.as_view(**initkwargs)
    )
    return path(match.route, view, name=f"allowany-{match.url_name}")


urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "bench/floor/environments/<str:api_key>/featurestates/",
        FloorFeatureStateList.as_view(),
        name="bench-floor-featurestates",
    ),
    path(
        "bench/naive/environments/<str:api_key>/featurestates/",
        NaiveFeatureStateList.as_view(),
        name="bench-naive-featurestates",
    ),
    path(
        "bench/naive-memo/environments/<str:api_key>/featurestates/",
        NaiveMemoFeatureStateList.as_view(),
        name="bench-naive-memo-featurestates",
    ),
]
if os.environ.get("BENCH_ALLOWANY") == "1":
    urlpatterns.append(allow_any_state_detail())
urlpatterns.append(path("", include("tagwarden.urls")))
