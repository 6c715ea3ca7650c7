"""Helpers shared by the feature admin pages (docs/ADMIN.md)."""

from __future__ import annotations

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


def refuse(key: str, what: str) -> DomainPermissionDenied:
    return DomainPermissionDenied(f"You need {key} on {what}.", code="permission_denied")


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
