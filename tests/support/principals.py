"""Members holding keys: directly (`user_with`), or through a role assigned to them, to one
of their groups, or to an API key (`role_principal`)."""

from __future__ import annotations

from typing import Any

from tests import factories as f


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
