"""Permissions as code: the export of an organisation's permissions document."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from organisations.models import Organisation
from permission_documents.state import (
    PrincipalRef,
    State,
    World,
    _current_state,
    _load_users,
    _name_key,
)

# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------


def _sorted_keys(value: Any) -> Any:
    """Every dict with its keys in sorted order (JSON and YAML render them as built)."""
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _grant_lists(
    world: World, state: State, principal: PrincipalRef
) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """(organisation keys, project grants, environment grants) of one principal."""
    organisation_keys: list[str] = []
    projects: list[tuple[Any, dict[str, Any]]] = []
    environments: list[tuple[Any, dict[str, Any]]] = []
    for (ref_principal, scope), spec in state.grants.items():
        if ref_principal != principal:
            continue
        project_id, environment_id = scope
        permissions = {key: world.tag_labels(tags) for key, tags in spec.entries}
        if project_id is None:
            organisation_keys = sorted(permissions)
        elif environment_id is None:
            projects.append(
                (
                    world.scope_sort_key(scope),
                    {
                        "project": world.project_name(project_id),
                        "admin": spec.admin,
                        "permissions": permissions,
                    },
                )
            )
        else:
            environments.append(
                (
                    world.scope_sort_key(scope),
                    {
                        "project": world.project_name(project_id),
                        "environment": world.environments[environment_id].name,
                        "admin": spec.admin,
                        "permissions": permissions,
                    },
                )
            )
    return (
        organisation_keys,
        [item for _, item in sorted(projects, key=lambda p: p[0])],
        [item for _, item in sorted(environments, key=lambda e: e[0])],
    )


def _document_of(world: World, state: State) -> dict[str, Any]:
    emails = {uid: world.email(uid) for uid in state.members}
    by_email = sorted(state.members, key=lambda uid: (*_name_key(emails[uid]), uid))
    groups = sorted(state.groups.items(), key=lambda item: _name_key(item[1][0]))
    roles = sorted(state.roles.items(), key=lambda item: _name_key(item[1][0]))
    group_names = {lname: name for lname, (name, _) in state.groups.items()}
    role_names = {lname: name for lname, (name, _) in state.roles.items()}

    def assigned(role: str, kind: str) -> list[Any]:
        return [ref for r, k, ref in state.assignments if r == role and k == kind]

    def sorted_emails(user_ids: Iterable[int]) -> list[str]:
        return sorted((emails[u] for u in user_ids), key=_name_key)

    document_roles: list[dict[str, Any]] = []
    for lname, (name, description) in roles:
        organisation_keys, projects, environments = _grant_lists(world, state, ("role", lname))
        document_roles.append(
            {
                "name": name,
                "description": description,
                "users": sorted_emails(assigned(lname, "user")),
                "groups": sorted(
                    [str(group_names[g]) for g in assigned(lname, "group")], key=_name_key
                ),
                "api_keys": sorted(
                    [str(world.api_keys[k].name) for k in assigned(lname, "api_key")],
                    key=_name_key,
                ),
                "organisation": organisation_keys,
                "projects": projects,
                "environments": environments,
            }
        )

    users = []
    for uid in by_email:
        organisation_keys, projects, environments = _grant_lists(world, state, ("user", uid))
        if organisation_keys or projects or environments:
            users.append(
                {
                    "email": emails[uid],
                    "organisation": organisation_keys,
                    "projects": projects,
                    "environments": environments,
                }
            )
    group_grants = []
    for lname, (name, _) in groups:
        organisation_keys, projects, environments = _grant_lists(world, state, ("group", lname))
        if organisation_keys or projects or environments:
            group_grants.append(
                {
                    "group": name,
                    "organisation": organisation_keys,
                    "projects": projects,
                    "environments": environments,
                }
            )

    restricted_by_project: dict[int, list[str]] = defaultdict(list)
    for tag_id in state.restricted:
        tag = world.tags[tag_id]
        restricted_by_project[tag.project_id].append(tag.label)
    restricted_tags = [
        {"project": world.project_name(pid), "tags": sorted(labels, key=_name_key)}
        for pid, labels in sorted(
            restricted_by_project.items(),
            key=lambda item: (*_name_key(world.project_name(item[0])), item[0]),
        )
    ]

    return _sorted_keys(
        {
            "organisation": world.organisation.name,
            "members": [{"email": emails[uid], "role": state.members[uid]} for uid in by_email],
            "groups": [
                {
                    "name": name,
                    "members": sorted_emails(users_),
                    "roles": sorted(
                        (
                            role_names[r]
                            for r, kind, ref in state.assignments
                            if kind == "group" and ref == lname
                        ),
                        key=_name_key,
                    ),
                }
                for lname, (name, users_) in groups
            ],
            "roles": document_roles,
            "users": users,
            "group_grants": group_grants,
            "restricted_tags": restricted_tags,
        }
    )


def permissions_document_export(*, organisation: Organisation) -> dict[str, Any]:
    """The organisation's permissions document: every list sorted, every dict's keys
    sorted; only non-empty grants (a grant without `admin` and without keys holds nothing)."""
    world = World.load(organisation)
    member_ids = set(world.memberships)
    world.users = _load_users(member_ids)
    state = _current_state(world, member_ids)
    return _document_of(world, state)
