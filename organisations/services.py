"""Writes for organisations, membership, groups, roles, role assignments and API keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar, cast

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import Http404

from audit.models import AuditAction
from audit.services import Actor, Auditor
from organisations import models
from organisations.snapshots import (
    api_key_snapshot,
    grant_snapshots,
    group_snapshot,
    membership_snapshot,
    organisation_snapshot,
    role_assignment_snapshot,
    role_snapshot,
)
from tagwarden.errors import DomainPermissionDenied
from tagwarden.services import key_rename_or_revoke, lock_current, unique_write


def organisation_create(*, name: str, creator: AbstractBaseUser | None) -> models.Organisation:
    """The creator becomes the organisation's ADMIN member."""
    with transaction.atomic():
        organisation = models.Organisation.objects.create(name=name)
        Auditor(actor=creator, organisation_id=organisation.pk).record(
            AuditAction.CREATED, organisation, after={"name": organisation.name}
        )
        if creator is not None:
            membership_create(
                organisation=organisation,
                user=creator,
                role=models.MembershipRole.ADMIN,
                actor=creator,
            )
    return organisation


# The rows `_delete_current` deletes: each belongs to one organisation.
_OrganisationRow = TypeVar("_OrganisationRow", models.Role, models.OrganisationAPIKey)
_GROUP_TAKEN = "A group with this name already exists."
_ROLE_TAKEN = "A role with this name already exists."


def _require_name_free(
    model: type[models.Role] | type[models.UserGroup],
    *,
    organisation_id: int,
    name: str,
    message: str,
    exclude_pk: int | None = None,
) -> None:
    """400 on `name` when another row of the organisation has it, ignoring case."""
    taken = model.objects.filter(organisation_id=organisation_id, name__iexact=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"name": [message]})


def _rename(row: models.Role | models.UserGroup, name: str | None, *, taken: str) -> bool:
    """Give `row` the name `name` (None keeps its name): 400 on `name` (`taken`) when another
    row of its organisation has it, ignoring case. Whether the name changed."""
    if name is None or name == row.name:
        return False
    _require_name_free(
        type(row), organisation_id=row.organisation_id, name=name, message=taken, exclude_pk=row.pk
    )
    row.name = name
    return True


# --------------------------------------------------------------------------------------
# Locks (docs/CONCURRENCY.md): every write that relies on a member still being a member
# locks that membership row, and every write that removes or demotes a member locks it too,
# so the two are serialised whichever starts first. Membership rows are always locked in
# user-id order, before any group, role, API key, grant or tag row.
# --------------------------------------------------------------------------------------


def members_lock(*, organisation_id: int, user_ids: Iterable[int]) -> set[int]:
    """Lock the memberships of `user_ids` in the organisation (user-id order); the ids of
    those that are members. Inside the caller's transaction."""
    ids = sorted(set(user_ids))
    if not ids:
        return set()
    return set(
        models.OrganisationMembership.objects.select_for_update()
        .filter(organisation_id=organisation_id, user_id__in=ids)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )


def _lock_membership_and_admins(
    membership: models.OrganisationMembership,
) -> models.OrganisationMembership:
    """Lock a membership together with every ADMIN membership of its organisation, in one
    statement and in user-id order (the last-admin rule reads the other admins); 404 when
    it is gone."""
    rows = list(
        models.OrganisationMembership.objects.select_for_update()
        .filter(organisation_id=membership.organisation_id)
        .filter(Q(pk=membership.pk) | Q(role=models.MembershipRole.ADMIN))
        .order_by("user_id")
    )
    for row in rows:
        if row.pk == membership.pk:
            return row
    raise Http404("This user is not a member of this organisation.")


def membership_create(
    *,
    organisation: models.Organisation,
    user: AbstractBaseUser,
    role: str = models.MembershipRole.USER,
    actor: Actor,
) -> models.OrganisationMembership:
    if role not in models.MembershipRole.values:
        raise ValidationError(
            {"role": [f"Must be one of {', '.join(models.MembershipRole.values)}."]}
        )
    with transaction.atomic():
        if models.OrganisationMembership.objects.filter(
            organisation=organisation, user_id=user.pk
        ).exists():
            raise ValidationError({"user": ["This user is already a member."]})
        with unique_write(field="user", message="This user is already a member."):
            membership = models.OrganisationMembership.objects.create(
                organisation=organisation, user_id=user.pk, role=role
            )
        Auditor(actor=actor, organisation_id=organisation.pk).record(
            AuditAction.CREATED, membership, after={"user": user.pk, "role": role}
        )
    return membership


def group_create(
    *,
    organisation: models.Organisation,
    name: str,
    users: Iterable[AbstractBaseUser] = (),
    actor: Actor,
) -> models.UserGroup:
    users = list(users)
    with transaction.atomic():
        _check_group_users(organisation, users)  # members only, each once; locks them
        _require_name_free(
            models.UserGroup, organisation_id=organisation.pk, name=name, message=_GROUP_TAKEN
        )
        with unique_write(field="name", message=_GROUP_TAKEN):
            group = models.UserGroup.objects.create(organisation=organisation, name=name)
        group.users.set(cast(Any, users))
        Auditor(actor=actor, organisation_id=organisation.pk).record(
            AuditAction.CREATED, group, after={"name": name, "users": sorted(u.pk for u in users)}
        )
    return group


def role_create(
    *, organisation: models.Organisation, name: str, description: str = "", actor: Actor
) -> models.Role:
    _require_name_free(models.Role, organisation_id=organisation.pk, name=name, message=_ROLE_TAKEN)
    with transaction.atomic():
        with unique_write(field="name", message=_ROLE_TAKEN):
            role = models.Role.objects.create(
                organisation=organisation, name=name, description=description
            )
        Auditor(actor=actor, organisation_id=organisation.pk).record(
            AuditAction.CREATED, role, after={"name": name, "description": description}
        )
    return role


def role_assignment_create(
    *,
    role: models.Role,
    user: AbstractBaseUser | None = None,
    group: models.UserGroup | None = None,
    api_key: models.OrganisationAPIKey | None = None,
    actor: Actor,
) -> models.RoleAssignment:
    """Assign `role` to exactly one principal of the role's organisation."""
    given = {
        name: value
        for name, value in (("user", user), ("group", group), ("api_key", api_key))
        if value is not None
    }
    if len(given) != 1:
        raise ValidationError({"non_field_errors": ["Give exactly one of user, group, api_key."]})
    ((field_name, principal),) = given.items()
    organisation_id = role.organisation_id
    not_in_org = {field_name: [f"This {field_name} is not in the role's organisation."]}
    taken = {field_name: [f"The role is already assigned to this {field_name}."]}
    lookup: dict[str, Any] = {"role": role, f"{field_name}_id": principal.pk}
    with transaction.atomic():
        # Lock order (docs/CONCURRENCY.md): the principal (membership, API key or group),
        # then the role. A member removed, a key or group or role deleted meanwhile is seen
        # here (400), or sees this assignment and removes it with the rest.
        if field_name == "user":
            in_org = bool(members_lock(organisation_id=organisation_id, user_ids=[principal.pk]))
        else:
            model = models.OrganisationAPIKey if field_name == "api_key" else models.UserGroup
            in_org = (
                model.objects.select_for_update()
                .filter(pk=principal.pk, organisation_id=organisation_id)
                .exists()
            )
        if not in_org:
            raise ValidationError(not_in_org)
        if not models.Role.objects.select_for_update().filter(pk=role.pk).exists():
            raise ValidationError({"role": ["This role was deleted."]})
        if models.RoleAssignment.objects.filter(**lookup).exists():
            raise ValidationError(taken)
        with unique_write(field=field_name, message=taken[field_name][0]):
            assignment = models.RoleAssignment.objects.create(**lookup)
        Auditor(actor=actor, organisation_id=organisation_id).record(
            AuditAction.CREATED, assignment, after={"role": role.pk, field_name: principal.pk}
        )
    return assignment


def api_key_create(
    *,
    organisation: models.Organisation,
    name: str,
    is_admin: bool = False,
    expires_at: datetime | None = None,
    actor: Actor,
) -> tuple[models.OrganisationAPIKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    with transaction.atomic():
        api_key, key = models.OrganisationAPIKey.objects.create_key(
            organisation=organisation, name=name, is_admin=is_admin, expiry_date=expires_at
        )
        Auditor(actor=actor, organisation_id=organisation.pk).record(
            AuditAction.CREATED,
            api_key,
            after={
                "name": name,
                "prefix": api_key.prefix,
                "is_admin": is_admin,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return cast(models.OrganisationAPIKey, api_key), key


# --------------------------------------------------------------------------------------
# Organisations
# --------------------------------------------------------------------------------------


def organisation_update(
    *, organisation: models.Organisation, name: str | None = None, actor: Actor
) -> models.Organisation:
    """Rename an organisation. Writing back the current name records nothing."""
    with transaction.atomic():
        organisation = models.Organisation.objects.select_for_update().get(pk=organisation.pk)
        before = organisation_snapshot(organisation)
        if name is not None:
            organisation.name = name
        Auditor(actor=actor, organisation_id=organisation.pk).save(
            organisation, fields=["name"], before=before, after=organisation_snapshot(organisation)
        )
    return organisation


def organisation_delete(*, organisation: models.Organisation, actor: Actor) -> None:
    """Delete an organisation with everything in it (its audit log goes with it)."""
    with transaction.atomic():
        Auditor(actor=actor, organisation_id=organisation.pk).delete(
            organisation, before=organisation_snapshot(organisation)
        )


# --------------------------------------------------------------------------------------
# Membership
# --------------------------------------------------------------------------------------

_LAST_ADMIN = "An organisation must keep at least one ADMIN member."


def _other_admins_exist(membership: models.OrganisationMembership) -> bool:
    """Read under the locks of `_lock_membership_and_admins`."""
    admins = models.OrganisationMembership.objects.filter(
        organisation_id=membership.organisation_id, role=models.MembershipRole.ADMIN
    )
    return admins.exclude(pk=membership.pk).exists()


def membership_update(
    *, membership: models.OrganisationMembership, role: str, actor: Actor
) -> models.OrganisationMembership:
    """Change a member's role. Demoting the last ADMIN is a 400 on `role`."""
    if role not in models.MembershipRole.values:
        raise ValidationError(
            {"role": [f"Must be one of {', '.join(models.MembershipRole.values)}."]}
        )
    with transaction.atomic():
        membership = _lock_membership_and_admins(membership)
        before = membership_snapshot(membership)
        if membership.role == role:
            return membership
        if membership.is_admin and not _other_admins_exist(membership):
            raise ValidationError({"role": [_LAST_ADMIN]})
        membership.role = role
        Auditor(actor=actor, organisation_id=membership.organisation_id).save(
            membership, fields=["role"], before=before, after=membership_snapshot(membership)
        )
    return membership


def membership_delete(*, membership: models.OrganisationMembership, actor: Actor) -> None:
    """Remove a member, and in the same transaction their grants, group memberships and role
    assignments in that organisation (re-adding them gives nothing back). The removed
    member's last ADMIN status is protected: 400 on `user`."""
    from permissions.models import Grant

    with transaction.atomic():
        # Lock order (docs/CONCURRENCY.md): this membership (and the admins', for the
        # last-admin rule) first. Every write of a grant, role assignment or group
        # membership for this user locks the same row first, so it either commits before
        # (and its row is deleted below, read after the lock) or sees no member (400).
        membership = _lock_membership_and_admins(membership)
        if membership.is_admin and not _other_admins_exist(membership):
            raise ValidationError({"user": [_LAST_ADMIN]})
        organisation_id = membership.organisation_id
        user_id = membership.user_id
        grants = list(
            Grant.objects.filter(organisation_id=organisation_id, user_id=user_id)
            .prefetch_related("entries__entry_tags")
            .order_by("id")
        )
        group_links = models.UserGroup.users.through.objects.filter(
            usergroup__organisation_id=organisation_id, user_id=user_id
        )
        assignments = models.RoleAssignment.objects.filter(
            role__organisation_id=organisation_id, user_id=user_id
        )
        before = {
            **membership_snapshot(membership),
            "grants": grant_snapshots(grants),
            "groups": sorted(group_links.values_list("usergroup_id", flat=True)),
            "roles": sorted(assignments.values_list("role_id", flat=True)),
        }
        Auditor(actor=actor, organisation_id=organisation_id).record(
            AuditAction.DELETED, membership, before=before
        )
        Grant.objects.filter(pk__in=[g.pk for g in grants]).delete()
        group_links.delete()
        assignments.delete()
        membership.delete()


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------


def group_require_manager(
    *, actor: Actor, organisation: models.Organisation, group: models.UserGroup | None = None
) -> None:
    """docs/PERMISSIONS.md, "Who may change grants": organisation admins write groups; MANAGE_USER_GROUPS holders create
    groups and manage those that hold no grant and no role. 403 otherwise. `actor=None` is
    the system and passes."""
    from organisations.selectors import group_is_bare
    from permissions import engine
    from permissions.catalogue import MANAGE_USER_GROUPS

    if actor is None or engine.is_admin(actor, organisation):
        return
    if not engine.allowed(actor, MANAGE_USER_GROUPS, organisation):
        raise DomainPermissionDenied(
            "Only organisation admins and MANAGE_USER_GROUPS holders may manage groups.",
            code="permission_denied",
        )
    if group is not None and not group_is_bare(group=group):
        raise DomainPermissionDenied(
            "This group holds a grant or a role: only organisation admins may change it.",
            code="group_holds_access",
        )


def _check_group_users(organisation: models.Organisation, users: list[Any]) -> None:
    """Members only, each once (400 on `users`). Inside the write's transaction: locks the
    memberships, so a member removed meanwhile is either refused here or loses the group
    membership with the rest (docs/CONCURRENCY.md)."""
    ids = [u.pk for u in users]
    if len(set(ids)) != len(ids):
        raise ValidationError({"users": ["A user is listed more than once."]})
    member_ids = members_lock(organisation_id=organisation.pk, user_ids=ids)
    outsiders = sorted(i for i in ids if i not in member_ids)
    if outsiders:
        raise ValidationError(
            {"users": [f"Not members of this organisation: {', '.join(map(str, outsiders))}."]}
        )


def group_update(
    *,
    group: models.UserGroup,
    name: str | None = None,
    users: Iterable[AbstractBaseUser] | None = None,
    actor: Actor,
) -> models.UserGroup:
    """Rename a group and/or replace its members. Writing back what was read changes
    nothing and records nothing."""
    organisation = group.organisation
    group_require_manager(actor=actor, organisation=organisation, group=group)
    user_list = list(users) if users is not None else None
    with transaction.atomic():
        # Lock order (docs/CONCURRENCY.md): the memberships of the new members, then the
        # group. Whether the group is bare (what MANAGE_USER_GROUPS holders may change) is
        # read again under the group's lock, which grant and role-assignment writes for the
        # group take too.
        if user_list is not None:
            _check_group_users(organisation, user_list)
        locked = lock_current(group)
        if locked is None:
            raise Http404("This group was deleted.")
        group = locked
        group_require_manager(actor=actor, organisation=organisation, group=group)
        before = group_snapshot(group)
        if _rename(group, name, taken=_GROUP_TAKEN):
            group.save(update_fields=["name"])
        if user_list is not None and sorted(u.pk for u in user_list) != before["users"]:
            group.users.set(cast(Any, user_list))
        after = group_snapshot(group)
        if after != before:
            Auditor(actor=actor, organisation_id=group.organisation_id).record(
                AuditAction.UPDATED, group, before=before, after=after
            )
    return group


def group_delete(*, group: models.UserGroup, actor: Actor) -> None:
    """Delete a group; its grants and role assignments go with it (described in `before`)."""
    from permissions.models import Grant

    group_require_manager(actor=actor, organisation=group.organisation, group=group)
    with transaction.atomic():
        locked = lock_current(group)
        if locked is None:  # deleted meanwhile
            return
        group = locked
        group_require_manager(actor=actor, organisation=group.organisation, group=group)
        grants = Grant.objects.filter(group=group).prefetch_related("entries__entry_tags")
        before = {
            **group_snapshot(group),
            "grants": grant_snapshots(grants.order_by("id")),
            "roles": sorted(
                models.RoleAssignment.objects.filter(group=group).values_list("role_id", flat=True)
            ),
        }
        Auditor(actor=actor, organisation_id=group.organisation_id).delete(group, before=before)


# --------------------------------------------------------------------------------------
# Roles and role assignments
# --------------------------------------------------------------------------------------


def role_update(
    *, role: models.Role, name: str | None = None, description: str | None = None, actor: Actor
) -> models.Role:
    with transaction.atomic():
        role = models.Role.objects.select_for_update().get(pk=role.pk)
        before = role_snapshot(role)
        _rename(role, name, taken=_ROLE_TAKEN)
        if description is not None:
            role.description = description
        Auditor(actor=actor, organisation_id=role.organisation_id).save(
            role, fields=["name", "description"], before=before, after=role_snapshot(role)
        )
    return role


def _delete_current(
    row: _OrganisationRow, *, describe: Callable[[_OrganisationRow], dict[str, Any]], actor: Actor
) -> None:
    """Delete `row` under its row lock, recording `describe(row)` (what goes with it) as
    read under that lock; a row deleted meanwhile is left alone."""
    locked = lock_current(row)
    if locked is None:  # deleted meanwhile
        return
    Auditor(actor=actor, organisation_id=locked.organisation_id).delete(
        locked, before=describe(locked)
    )


def _role_with_dependents(role: models.Role) -> dict[str, Any]:
    from permissions.models import Grant

    grants = Grant.objects.filter(role=role).prefetch_related("entries__entry_tags")
    return {
        **role_snapshot(role),
        "grants": grant_snapshots(grants.order_by("id")),
        "assignments": [
            role_assignment_snapshot(a) for a in models.RoleAssignment.objects.filter(role=role)
        ],
    }


def role_delete(*, role: models.Role, actor: Actor) -> None:
    """Delete a role; its grants and assignments go with it (described in `before`)."""
    with transaction.atomic():
        _delete_current(role, describe=_role_with_dependents, actor=actor)


def role_assignment_delete(*, assignment: models.RoleAssignment, actor: Actor) -> None:
    with transaction.atomic():
        if not models.RoleAssignment.objects.select_for_update().filter(pk=assignment.pk).exists():
            return  # deleted meanwhile (or with its member, group, key or role)
        Auditor(actor=actor, organisation_id=assignment.role.organisation_id).delete(
            assignment, before=role_assignment_snapshot(assignment)
        )


# --------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------

_UNSET: Any = object()


def api_key_update(
    *,
    api_key: models.OrganisationAPIKey,
    name: str | None = None,
    revoked: bool | None = None,
    expires_at: datetime | None = _UNSET,
    actor: Actor,
) -> models.OrganisationAPIKey:
    """Rename, revoke or change the expiry of a key. Revoking cannot be undone (400 on
    `revoked`); writing back the current values records nothing."""
    with transaction.atomic():
        api_key = models.OrganisationAPIKey.objects.select_for_update().get(pk=api_key.pk)
        before = api_key_snapshot(api_key)
        key_rename_or_revoke(
            api_key, name=name, revoked=revoked, irrevocable="A revoked key cannot be un-revoked."
        )
        if expires_at is not _UNSET:
            api_key.expiry_date = expires_at
        Auditor(actor=actor, organisation_id=api_key.organisation_id).save(
            api_key,
            fields=["name", "revoked", "expiry_date"],
            before=before,
            after=api_key_snapshot(api_key),
        )
    return api_key


def _api_key_with_roles(api_key: models.OrganisationAPIKey) -> dict[str, Any]:
    roles = models.RoleAssignment.objects.filter(api_key=api_key).values_list("role_id", flat=True)
    return {**api_key_snapshot(api_key), "roles": sorted(roles)}


def api_key_delete(*, api_key: models.OrganisationAPIKey, actor: Actor) -> None:
    """Delete a key; its role assignments go with it (described in `before`)."""
    with transaction.atomic():
        _delete_current(api_key, describe=_api_key_with_roles, actor=actor)
