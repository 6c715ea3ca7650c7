"""DRF glue over the engine: scope lookup with the 404/403 semantics of API.md, and a
permission class mapping each view action to a catalogue key. Decisions are the engine's.

Order of checks on every request (API.md Conventions, DESIGN.md §7):
  1. the containing scope cannot be viewed → 404 (no existence leak);
  2. the key (or admin) is missing → 403;
  3. object actions on a feature pass the feature resolved from the database, so tagged
     entries are matched against the feature's real tags (never a URL or body value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework import permissions
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from environments.models import Environment
from features.models import Feature
from organisations.models import Organisation
from permissions import engine
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
    obj = queryset.filter(**lookup).first()
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


class ScopedActionPermission(permissions.BasePermission):
    """Maps `view.action` to a requirement through `view.action_requirements`.

    The view provides:
      - `action_requirements: Mapping[str, str]` action → catalogue key, VIEW or ADMIN;
        actions not listed are denied (fail closed);
      - `get_scope() -> Organisation | Project | Environment` (raising 404 when not viewable,
        e.g. through `scope_or_404`);
      - optionally `get_permission_feature(obj) -> Feature | None` for object actions: the
        feature the object belongs to, as loaded from the database.
    Tag-supported keys on object actions are checked with the object's feature; on
    collection actions (list, create) the view must check per feature itself (the list is
    filtered by `engine.features_allowed`, create resolves the feature from its payload).
    """

    def _requirement(self, view: Any) -> str | None:
        mapping: Mapping[str, str] = getattr(view, "action_requirements", {})
        return mapping.get(getattr(view, "action", None) or "")

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if getattr(view, (request.method or "").lower(), None) is None:
            return True  # no handler for this method: let DRF answer 405, not 403
        requirement = self._requirement(view)
        if requirement is None:
            return False
        scope = view.get_scope()  # 404 when the scope cannot be viewed
        if requirement in (VIEW, ADMIN) or not _is_feature_scoped(requirement):
            require(request, requirement, scope)
        return True

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        requirement = self._requirement(view)
        if requirement is None:
            return False
        if requirement in (VIEW, ADMIN) or not _is_feature_scoped(requirement):
            return True  # already checked in has_permission
        get_feature: Callable[[Any], Feature | None] | None = getattr(
            view, "get_permission_feature", None
        )
        feature = get_feature(obj) if get_feature else None
        if feature is None:
            # Fail closed: a tag-supported key on an object without a feature would ignore
            # every tagged entry; the view must say which feature the object belongs to.
            raise AssertionError(
                f"{type(view).__name__} must implement get_permission_feature() for {requirement}"
            )
        require(request, requirement, view.get_scope(), feature)
        return True


def _is_feature_scoped(key: str) -> bool:
    from permissions.catalogue import TAG_SUPPORTED_KEYS

    return key in TAG_SUPPORTED_KEYS
