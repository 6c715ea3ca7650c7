"""Helpers shared by the feature admin pages (docs/ADMIN.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest

from permissions import engine
from projects.models import Project
from tagwarden.admin.base import (
    _viewable,
    reaches,
)
from tagwarden.errors import DomainPermissionDenied

JSON_HELP = 'JSON: true, 42, "text", {"a": 1}, or null for no value.'
JSON_ERROR = 'value: not valid JSON. Write JSON, e.g. true, 42, "text", {"a": 1} or null.'


def json_field(**kwargs: Any) -> forms.JSONField:
    return forms.JSONField(
        required=False,
        help_text=JSON_HELP,
        error_messages={"invalid": JSON_ERROR},
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        **kwargs,
    )


def superuser(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_superuser", False))


def may_write(
    request: HttpRequest, obj: Any, level: str, key: str, targets: Callable[[Any], tuple[Any, ...]]
) -> bool:
    """A write permission of the feature admin pages: superusers may; without an object (the
    list page asks), whoever reaches some object of `level`; on an object, whoever holds
    `key` on `targets(obj)` (the engine decides)."""
    if superuser(request):
        return True
    if obj is None:
        return reaches(request, level)
    return engine.allowed(request.user, key, *targets(obj))


def require_key(request: HttpRequest, key: str, *targets: Any, what: str) -> None:
    """Superusers pass; anyone else needs `key` on `targets` (the engine decides), or gets a
    403 naming `what`."""
    if not superuser(request) and not engine.allowed(request.user, key, *targets):
        raise DomainPermissionDenied(f"You need {key} on {what}.", code="permission_denied")


# --------------------------------------------------------------------------------------
# Features and segments
# --------------------------------------------------------------------------------------


def projects_holding(request: HttpRequest, key: str) -> QuerySet[Project]:
    """The viewable projects on which the engine grants the project key `key` (untagged:
    CREATE_FEATURE, MANAGE_SEGMENTS do not support tags). One query for the projects, the
    decisions from the memoised policies."""
    if superuser(request):
        return Project.objects.all()
    cache: dict[str, list[int]] = request.__dict__.setdefault("_tagwarden_projects_holding", {})
    if key not in cache:
        viewable = _viewable(request, "project")
        cache[key] = [p.pk for p in viewable if engine.allowed(request.user, key, p)]
    return Project.objects.filter(pk__in=cache[key])


def has_projects_holding(request: HttpRequest, key: str) -> bool:
    if not reaches(request, "project"):
        return False
    projects_holding(request, key)
    return bool(request.__dict__["_tagwarden_projects_holding"][key])
