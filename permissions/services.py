"""Writing grants. Every write path (API, admin, documents, seed) goes through here, so the
rules of docs/PERMISSIONS.md ("Who may change grants", "Never widen") are enforced in one place, atomically, with an audit entry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404

from audit.models import AuditAction
from audit.services import Actor, Auditor
from environments.models import Environment
from organisations.models import Organisation, Role, UserGroup
from organisations.services import members_lock
from permissions.catalogue import CATALOGUE, TAG_SUPPORTED_KEYS, Level
from permissions.models import Grant, GrantEntry, GrantEntryTag
from projects.models import Project, Tag
from tagwarden.services import lock_current, unique_write

Scope = Organisation | Project | Environment
GrantPrincipal = AbstractBaseUser | UserGroup | Role


@dataclass(frozen=True)
class EntryInput:
    """One `{permission_key, tags}` entry of a grant as the caller wrote it."""

    key: str
    tags: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class ScopeParts:
    level: Level
    organisation: Organisation
    project: Project | None
    environment: Environment | None


def scope_parts(scope: Scope) -> ScopeParts:
    if isinstance(scope, Environment):
        return ScopeParts(Level.ENVIRONMENT, scope.project.organisation, scope.project, scope)
    if isinstance(scope, Project):
        return ScopeParts(Level.PROJECT, scope.organisation, scope, None)
    return ScopeParts(Level.ORGANISATION, scope, None, None)


def principal_field(principal: GrantPrincipal) -> str:
    if isinstance(principal, Role):
        return "role"
    if isinstance(principal, UserGroup):
        return "group"
    return "user"


def entries_from_keys(keys: Iterable[str]) -> list[EntryInput]:
    return [EntryInput(key=key) for key in keys]


def grant_entries_validate(
    *,
    level: Level,
    project: Project | None,
    entries: Sequence[EntryInput],
    tags_allowed: bool,
    lock_tags: bool = False,
) -> dict[str, list[Tag]]:
    """Check entries against docs/PERMISSIONS.md (the catalogue, grants) and resolve their
    tags.

    Returns `{key: [Tag, ...]}`. Raises `ValidationError({"permissions": [...]})` naming every
    offending key: unknown keys, keys of another level, duplicates, tags on keys that do not
    support them (or on user and group grants), and tags of another project.

    `lock_tags` (inside the write's transaction) locks the named tags, in id order, so that
    a concurrent tag delete either sees the grant (409 `tag_in_use`) or has deleted the tag
    before it is read here (400): docs/CONCURRENCY.md.
    """
    errors: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        spec = CATALOGUE.get(entry.key)
        if spec is None:
            errors.append(f"Unknown permission key: {entry.key!r}.")
        elif spec.level != level:
            errors.append(
                f"{entry.key} is a {spec.level} permission and cannot be granted on a {level}."
            )
        if entry.key in seen:
            errors.append(f"{entry.key} is listed more than once.")
        seen.add(entry.key)

    tagged = [e for e in entries if e.tags]
    if tagged and not tags_allowed:
        errors.append(
            "Only role grants may carry tags; remove the tags of: "
            + ", ".join(sorted({e.key for e in tagged}))
            + "."
        )
    elif tagged:
        unsupported = sorted(
            {e.key for e in tagged if e.key in CATALOGUE and e.key not in TAG_SUPPORTED_KEYS}
        )
        for key in unsupported:
            errors.append(f"{key} does not support tags.")

    wanted = {tag_id for e in tagged for tag_id in e.tags}
    found: dict[int, Tag] = {}
    if wanted:
        if project is None:
            errors.append("Organisation grants cannot carry tags.")
        else:
            tags = Tag.objects.filter(project=project, pk__in=wanted).order_by("pk")
            if lock_tags:
                tags = tags.select_for_update()
            found = {t.pk: t for t in tags}
            missing = sorted(wanted - found.keys())
            if missing:
                errors.append(
                    "Unknown tag id(s) for this project: " + ", ".join(map(str, missing)) + "."
                )
    if errors:
        raise ValidationError({"permissions": errors})
    return {e.key: [found[t] for t in sorted(set(e.tags))] for e in entries}


def grant_snapshot(grant: Grant) -> dict[str, Any]:
    """The audited state of a grant: its principal, scope, admin flag and entries."""
    tags_by_key: dict[str, list[int]] = {}
    if "entries" in getattr(grant, "_prefetched_objects_cache", {}):
        for entry in grant.entries.all():
            tags_by_key[entry.key] = [et.tag_id for et in entry.entry_tags.all()]
    else:  # one query, not one per entry
        for key, tag_id in GrantEntry.objects.filter(grant=grant).values_list(
            "key", "entry_tags__tag_id"
        ):
            tags = tags_by_key.setdefault(key, [])
            if tag_id is not None:
                tags.append(tag_id)
    entries: list[dict[str, Any]] = [
        {"permission_key": key, "tags": sorted(tags)} for key, tags in sorted(tags_by_key.items())
    ]
    return {
        "principal": {
            "type": grant.principal_kind,
            "id": getattr(grant, f"{grant.principal_kind}_id"),
        },
        "organisation": grant.organisation_id,
        "project": grant.project_id,
        "environment": grant.environment_id,
        "admin": grant.admin,
        "permissions": entries,
    }


def _principal_lock(*, field_name: str, principal_id: int, organisation_id: int) -> bool:
    """Lock the row that makes the principal part of the organisation (a user's membership,
    a group, a role); whether it is there. Inside the write's transaction, first of the
    write's locks (docs/CONCURRENCY.md): a member removed, a group or role deleted while a
    grant is written either happens before (the grant is refused) or after (it sees the
    grant and deletes it), never between."""
    if field_name == "user":
        return bool(members_lock(organisation_id=organisation_id, user_ids=[principal_id]))
    model = Role if field_name == "role" else UserGroup
    return (
        model.objects.select_for_update()
        .filter(pk=principal_id, organisation_id=organisation_id)
        .exists()
    )


def _check_principal_in_organisation(
    principal: GrantPrincipal, organisation: Organisation, field_name: str
) -> None:
    if not _principal_lock(
        field_name=field_name, principal_id=principal.pk, organisation_id=organisation.pk
    ):
        if field_name == "user":
            message = "This user is not a member of this organisation."
        else:
            message = f"This {field_name} is not in this organisation."
        raise ValidationError({field_name: [message]})


def _write_entries(grant: Grant, resolved: dict[str, list[Tag]]) -> None:
    created = GrantEntry.objects.bulk_create(
        [GrantEntry(grant=grant, key=key) for key in sorted(resolved)]
    )
    # bulk_create sets primary keys on PostgreSQL and SQLite >= 3.35 (both supported).
    GrantEntryTag.objects.bulk_create(
        [GrantEntryTag(entry=entry, tag=tag) for entry in created for tag in resolved[entry.key]]
    )


def _auditor(grant: Grant, actor: Actor) -> Auditor:
    """Grant entries belong to the grant's scope."""
    return Auditor(
        actor=actor,
        organisation_id=grant.organisation_id,
        project_id=grant.project_id,
        environment_id=grant.environment_id,
    )


def grant_create(
    *,
    principal: GrantPrincipal,
    scope: Scope,
    entries: Sequence[EntryInput] = (),
    admin: bool = False,
    actor: Actor,
) -> Grant:
    """Give `principal` the `entries` (and maybe `admin`) on `scope`. One grant per
    principal and scope: a second one is a 400 on the principal field."""
    parts = scope_parts(scope)
    field_name = principal_field(principal)
    if admin and parts.level == Level.ORGANISATION:
        raise ValidationError(
            {"admin": ["Organisation grants cannot hold admin; make the user an ADMIN member."]}
        )
    duplicate = {
        "organisation": parts.organisation,
        "project": parts.project,
        "environment": parts.environment,
        field_name: principal,
    }
    message = f"This {field_name} already has a grant on this {parts.level}."
    with transaction.atomic():
        # Lock order (docs/CONCURRENCY.md): the principal, then the tags.
        _check_principal_in_organisation(principal, parts.organisation, field_name)
        resolved = grant_entries_validate(
            level=parts.level,
            project=parts.project,
            entries=entries,
            tags_allowed=field_name == "role",
            lock_tags=True,
        )
        if Grant.objects.filter(**duplicate).exists():
            raise ValidationError({field_name: [message]})
        with unique_write(field=field_name, message=message):
            grant = Grant.objects.create(admin=admin, **duplicate)
        _write_entries(grant, resolved)
        _auditor(grant, actor).record(AuditAction.CREATED, grant, after=grant_snapshot(grant))
    return grant


def grant_update(
    *,
    grant: Grant,
    entries: Sequence[EntryInput] | None = None,
    admin: bool | None = None,
    actor: Actor,
) -> Grant:
    """Replace a grant's entries and/or admin flag. Writing back what was read changes
    nothing and records nothing."""
    parts_level = grant.level
    if admin and parts_level == Level.ORGANISATION:
        raise ValidationError({"admin": ["Organisation grants cannot hold admin."]})
    gone = "This grant was deleted."
    with transaction.atomic():
        # Lock order (docs/CONCURRENCY.md): the principal, the grant, then the tags. A
        # principal removed meanwhile took its grants with it (404 below); one removed
        # later sees this update and deletes the grant.
        kind = grant.principal_kind
        _principal_lock(
            field_name=kind,
            principal_id=getattr(grant, f"{kind}_id"),
            organisation_id=grant.organisation_id,
        )
        locked = lock_current(grant)
        if locked is None:
            raise Http404(gone)
        grant = locked
        resolved = None
        if entries is not None:
            resolved = grant_entries_validate(
                level=parts_level,
                project=grant.project,
                entries=entries,
                tags_allowed=kind == "role",
                lock_tags=True,
            )
        before = grant_snapshot(grant)
        if admin is not None:
            grant.admin = admin
        if resolved is not None:
            grant.entries.all().delete()
            _write_entries(grant, resolved)
        after = grant_snapshot(grant)
        if after == before:
            transaction.set_rollback(True)
            return grant
        _auditor(grant, actor).save(
            grant, fields=["admin", "updated_at"], before=before, after=after
        )
    return grant


def grant_delete(*, grant: Grant, actor: Actor) -> None:
    with transaction.atomic():
        locked = lock_current(grant)
        if locked is None:  # deleted meanwhile (or with its principal)
            return
        grant = locked
        _auditor(grant, actor).delete(grant, before=grant_snapshot(grant))


def role_organisation_permissions_set(
    *, role: Role, keys: Sequence[str], actor: Actor
) -> Grant | None:
    """PUT semantics for a role's organisation-level keys: replace the set; an empty set
    removes the grant. Idempotent under concurrency: the role's row lock serialises
    identical PUTs, so the first creates the grant and the others find it
    (docs/CONCURRENCY.md)."""
    entries = entries_from_keys(keys)
    grant_entries_validate(
        level=Level.ORGANISATION, project=None, entries=entries, tags_allowed=False
    )
    with transaction.atomic():
        if not Role.objects.select_for_update().filter(pk=role.pk).exists():
            raise Http404("This role was deleted.")
        grant = Grant.objects.filter(
            role=role, organisation_id=role.organisation_id, project__isnull=True
        ).first()
        if grant is None:
            if not entries:
                return None
            return grant_create(
                principal=role, scope=role.organisation, entries=entries, actor=actor
            )
        if not entries:
            grant_delete(grant=grant, actor=actor)
            return None
        return grant_update(grant=grant, entries=entries, actor=actor)
