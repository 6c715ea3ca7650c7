"""The audited state of each organisation object: what its audit entries record as
`before` and `after` (docs/API.md, "Audit")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from organisations import models


def organisation_snapshot(organisation: models.Organisation) -> dict[str, Any]:
    return {"name": organisation.name}


def membership_snapshot(membership: models.OrganisationMembership) -> dict[str, Any]:
    return {"user": membership.user_id, "role": membership.role}


def group_snapshot(group: models.UserGroup) -> dict[str, Any]:
    return {
        "name": group.name,
        "users": sorted(group.users.values_list("id", flat=True)),
    }


def role_snapshot(role: models.Role) -> dict[str, Any]:
    return {"name": role.name, "description": role.description}


def role_assignment_snapshot(assignment: models.RoleAssignment) -> dict[str, Any]:
    snapshot: dict[str, Any] = {"role": assignment.role_id}
    for name in ("user", "group", "api_key"):
        value = getattr(assignment, f"{name}_id")
        if value is not None:
            snapshot[name] = value
    return snapshot


def api_key_snapshot(api_key: models.OrganisationAPIKey) -> dict[str, Any]:
    return {
        "name": api_key.name,
        "prefix": api_key.prefix,
        "is_admin": api_key.is_admin,
        "expires_at": api_key.expiry_date.isoformat() if api_key.expiry_date else None,
        "revoked": api_key.revoked,
    }


def grant_snapshots(grants: Iterable[Any]) -> list[dict[str, Any]]:
    from permissions.services import grant_snapshot  # permissions depends on organisations

    return [{"id": grant.pk, **grant_snapshot(grant)} for grant in grants]
