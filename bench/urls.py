"""Benchmark URLconf (`bench.settings`): every project URL, unchanged, plus

- `bench/naive/environments/{api_key}/featurestates/` and `bench/naive-memo/...`: the naive
  lists of `bench.naive`;
- `api/v1/environments/{api_key}/featurestates-floor/`: the floor (`bench.naive`), the real
  list view less its authorisation, routed just before the real list's routes, so Django
  tries as many patterns to reach it;
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

from bench.naive import FloorFeatureStateViewSet, NaiveFeatureStateList, NaiveMemoFeatureStateList
from tagwarden import urls as project_urls

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


FLOOR_ROUTE = "environments/<env_key:api_key>/featurestates-floor/"
FEATURE_STATE_ROUTES = "features.workflow.api.urls"


def _with_floor(api_patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    """The project's API routes with the floor's just before the feature states' own."""
    at = next(
        (
            i
            for i, pattern in enumerate(api_patterns)
            if getattr(getattr(pattern, "urlconf_name", None), "__name__", "")
            == FEATURE_STATE_ROUTES
        ),
        None,
    )
    if at is None:
        raise ImproperlyConfigured(f"No `{FEATURE_STATE_ROUTES}` among the API's routes")
    floor = path(
        FLOOR_ROUTE,
        FloorFeatureStateViewSet.as_view({"get": "list"}),
        name="bench-floor-featurestates",
    )
    return [*api_patterns[:at], floor, *api_patterns[at:]]


urlpatterns: list[URLPattern | URLResolver] = [
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
urlpatterns += [
    path("api/v1/", include(_with_floor(project_urls.api_patterns)))
    if str(pattern.pattern) == "api/v1/"
    else pattern
    for pattern in project_urls.urlpatterns
]
