"""Builders and URLs shared by the feature-state, segment-override and change-request tests:
the environment's URLs, its default states, principals holding keys directly or through a
role, and the audit entries written."""

from __future__ import annotations

from typing import Any

from audit.models import AuditLogEntry
from features.models import FeatureState
from tests import factories as f


def env_url(environment: Any, suffix: str = "") -> str:
    return f"/api/v1/environments/{environment.api_key}/{suffix}"


def state_url(environment: Any, state: Any | None = None) -> str:
    return env_url(environment, "featurestates/" + (f"{state.pk}/" if state is not None else ""))


def default_state(feature: Any, environment: Any) -> FeatureState:
    return FeatureState.objects.get(
        feature=feature, environment=environment, segment_override__isnull=True
    )


def role_principal(organisation: Any, scope: Any, entries: Any, *, via: str = "user") -> Any:
    """A principal holding `entries` on `scope` through a role assigned to it directly
    (`via="user"`), through one of its groups (`"group"`), or an API key with the role."""
    role = f.RoleFactory(organisation=organisation)
    f.grant(role, scope, entries)
    if via == "api_key":
        principal = f.APIKeyFactory(organisation=organisation)
        f.RoleAssignmentFactory(role=role, api_key=principal)
    elif via == "group":
        principal = f.member(organisation)
        group = f.UserGroupFactory(organisation=organisation, users=[principal])
        f.RoleAssignmentFactory(role=role, group=group)
    else:
        principal = f.member(organisation)
        f.RoleAssignmentFactory(role=role, user=principal)
    return principal


def user_with(organisation: Any, scope: Any, entries: Any, *, admin: bool = False) -> Any:
    """A member with a direct (untagged) grant on `scope`."""
    user = f.member(organisation)
    f.grant(user, scope, entries, admin=admin)
    return user


def audit_entries(object_type: str, **kwargs: Any) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type=object_type, **kwargs).order_by("id"))
