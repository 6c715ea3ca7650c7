"""DRF glue over the engine: scope lookup with the 404/403 semantics of docs/API.md, and a
permission class mapping each view action to a catalogue key. Decisions are the engine's.

Order of checks on every request (docs/API.md, Errors):
  1. the containing scope cannot be viewed → 404 (no existence leak);
  2. the key (or admin) is missing → 403;
  3. an action of a tag-supported key is decided with the feature it acts on, resolved from
     the database (never a URL or body value), as its requirement declares.

Fail closed by construction (docs/PERMISSIONS.md, "Every action names its feature"): an
action mapped to a tag-supported key must say how its feature is resolved, with
`on_object_feature` (object actions: the object's feature), `on_request_feature` (collection
actions acting on one feature named by the request, e.g. create) or `filtered_by_feature`
(list actions: the rows are filtered in SQL by the engine). A bare tag-supported key in
`action_requirements` raises ImproperlyConfigured when the viewset class is created, i.e.
when the URL conf imports it, so such a route cannot exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar, cast

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework import permissions
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from environments.models import Environment
from features.models import Feature
from organisations.models import Organisation
from permissions import engine
from permissions.catalogue import TAG_SUPPORTED_KEYS
from projects.models import Project

M = TypeVar("M", bound=Model)

#: Action requirement meaning "any principal who can view the scope".
VIEW = "__view__"
#: Action requirement meaning "admin of the scope" (organisation, project or environment).
ADMIN = "__admin__"


def scope_or_404(request: Request, queryset: QuerySet[M], **lookup: Any) -> M:
    """The scope (Organisation, Project or Environment) if the caller may view it, else 404."""
    if queryset.model is Environment:
        queryset = queryset.select_related("project")  # the engine needs the organisation id
    obj = next(iter(queryset.filter(**lookup)[:1]), None)  # unique lookups: no ORDER BY
    if obj is None or not engine.can_view(request.user, cast(engine.Scope, obj)):
        raise Http404
    return obj


def organisation_or_404(request: Request, pk: Any) -> Organisation:
    return scope_or_404(request, Organisation.objects.all(), pk=pk)


def project_or_404(request: Request, pk: Any) -> Project:
    return scope_or_404(request, Project.objects.all(), pk=pk)


def environment_or_404(request: Request, api_key: str) -> Environment:
    return scope_or_404(request, Environment.objects.all(), api_key=api_key)


def require(
    request: Request,
    requirement: str,
    scope: Organisation | Project | Environment,
    feature: Feature | None = None,
    *,
    message: str | None = None,
) -> None:
    """403 unless the caller meets `requirement` (a catalogue key, VIEW or ADMIN) on `scope`."""
    if requirement == VIEW:
        ok = engine.can_view(request.user, scope)
    elif requirement == ADMIN:
        ok = engine.is_admin(request.user, scope)
    else:
        ok = engine.allowed(request.user, requirement, scope, feature)
    if not ok:
        if requirement == ADMIN:
            default = "Only admins of this scope may do this."
        elif requirement == VIEW:
            default = "You cannot view this."
        else:
            default = f"You need {requirement} here" + (" for this feature." if feature else ".")
        raise PermissionDenied(message or default)


class Resolution(StrEnum):
    """How the feature of an action on a tag-supported key is found."""

    #: an object action: `view.get_permission_feature(obj)` after DRF loads the object
    OBJECT = "object"
    #: a collection action on one feature named by the request (e.g. create):
    #: `view.get_request_feature()`, checked before the handler runs
    REQUEST = "request"
    #: a list action: the rows are filtered in SQL by the engine (`filter_queryset`)
    FILTERED = "filtered"


@dataclass(frozen=True, slots=True)
class FeatureRequirement:
    """A tag-supported key and how the action's feature is resolved (see module docstring)."""

    key: str
    resolution: Resolution
    #: FILTERED: the path from the listed model to its feature's id ("pk" for features)
    feature_ref: str = "pk"


Requirement = str | FeatureRequirement


def on_object_feature(key: str) -> FeatureRequirement:
    """`key` checked on the object's feature (`get_permission_feature(obj)`)."""
    return FeatureRequirement(key, Resolution.OBJECT)


def on_request_feature(key: str) -> FeatureRequirement:
    """`key` checked on the feature the request names (`get_request_feature()`)."""
    return FeatureRequirement(key, Resolution.REQUEST)


def filtered_by_feature(key: str, *, feature_ref: str) -> FeatureRequirement:
    """A list filtered in SQL to the rows whose feature (reached by `feature_ref`) the caller
    holds `key` on."""
    return FeatureRequirement(key, Resolution.FILTERED, feature_ref)


_RESOLVERS = {
    Resolution.OBJECT: "get_permission_feature",
    Resolution.REQUEST: "get_request_feature",
}


def check_action_requirements(view_class: type) -> None:
    """Refuse a viewset whose actions do not say how a tag-supported key finds its feature.

    Called when every API viewset class is created (`tagwarden.api.base.ActionViewSet`), so a
    misdeclared viewset fails at import, before any URL routes to it.
    """
    mapping: Mapping[str, Requirement] = getattr(view_class, "action_requirements", {})
    for action, requirement in mapping.items():
        where = f"{view_class.__name__}.action_requirements[{action!r}]"
        if isinstance(requirement, str):
            if requirement in TAG_SUPPORTED_KEYS:
                raise ImproperlyConfigured(
                    f"{where} maps {requirement}, a tag-supported key, without naming how its "
                    "feature is resolved: use on_object_feature, on_request_feature or "
                    "filtered_by_feature (docs/PERMISSIONS.md)."
                )
            continue
        if requirement.key not in TAG_SUPPORTED_KEYS:
            raise ImproperlyConfigured(
                f"{where}: {requirement.key} is not narrowed by tags; map the key itself."
            )
        resolver = _RESOLVERS.get(requirement.resolution)
        if resolver is not None and not callable(getattr(view_class, resolver, None)):
            raise ImproperlyConfigured(
                f"{where} resolves its feature with {resolver}(), which "
                f"{view_class.__name__} does not define."
            )


def filter_by_requirement(view: Any, queryset: QuerySet[M]) -> QuerySet[M]:
    """The rows of a FILTERED list action the caller may see (the engine's SQL filter);
    other actions' querysets unchanged."""
    requirement = _requirement_of(view)
    if not isinstance(requirement, FeatureRequirement):
        return queryset
    if requirement.resolution != Resolution.FILTERED:
        return queryset
    view._feature_filter_applied = True
    return engine.filter_by_feature(
        view.request.user,
        requirement.key,
        view.get_scope(),
        queryset,
        feature_ref=requirement.feature_ref,
    )


def assert_filtered(view: Any, status_code: int) -> None:
    """Fail closed if a FILTERED list answered without its rows going through the filter."""
    requirement = _requirement_of(view)
    if (
        isinstance(requirement, FeatureRequirement)
        and requirement.resolution == Resolution.FILTERED
        and status_code < 400
        and not getattr(view, "_feature_filter_applied", False)
    ):
        raise ImproperlyConfigured(
            f"{type(view).__name__}.{view.action} is filtered_by_feature but its rows never "
            "went through filter_queryset()."
        )


def _requirement_of(view: Any) -> Requirement | None:
    mapping: Mapping[str, Requirement] = getattr(view, "action_requirements", {})
    return mapping.get(getattr(view, "action", None) or "")


class ScopedActionPermission(permissions.BasePermission):
    """Maps `view.action` to a requirement through `view.action_requirements`.

    The view provides:
      - `action_requirements: Mapping[str, Requirement]` action → catalogue key, VIEW, ADMIN,
        or (for tag-supported keys, always) a `FeatureRequirement`; actions not listed are
        denied (fail closed);
      - `get_scope() -> Organisation | Project | Environment` (raising 404 when not viewable,
        e.g. through `scope_or_404`);
      - the resolver its feature requirements name: `get_permission_feature(obj)`,
        `get_request_feature()` (both return the feature as loaded from the database).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if getattr(view, (request.method or "").lower(), None) is None:
            return True  # no handler for this method: let DRF answer 405, not 403
        requirement = _requirement_of(view)
        if requirement is None:
            return False
        scope = view.get_scope()  # 404 when the scope cannot be viewed
        if isinstance(requirement, str):
            if requirement in TAG_SUPPORTED_KEYS:
                return False  # unreachable (check_action_requirements); fail closed anyway
            require(request, requirement, scope)
            return True
        if requirement.resolution == Resolution.REQUEST:
            require(request, requirement.key, scope, view.get_request_feature())
        elif requirement.resolution == Resolution.OBJECT:
            # Only an object route has an object to take the feature from: on any other
            # route has_object_permission would never run, so refuse here.
            lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "")
            if lookup not in getattr(view, "kwargs", {}):
                return False
        # FILTERED: the scope is viewable; the rows are the engine's (filter_by_requirement)
        return True

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        requirement = _requirement_of(view)
        if requirement is None:
            return False
        if isinstance(requirement, str) or requirement.resolution != Resolution.OBJECT:
            return True  # already checked in has_permission
        feature = view.get_permission_feature(obj)
        if feature is None:
            # Fail closed: a tag-supported key on an object without a feature would ignore
            # every tagged entry.
            return False
        require(request, requirement.key, view.get_scope(), feature)
        return True
