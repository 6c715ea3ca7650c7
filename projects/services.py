"""Writes for projects and tags."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404

from audit.models import AuditAction
from audit.services import Actor, Auditor
from organisations.models import Organisation
from permissions import engine
from projects import selectors
from projects.models import DEFAULT_TAG_COLOR, Project, Tag, tag_label_key
from tagwarden.errors import Conflict, DomainPermissionDenied
from tagwarden.services import lock_current, unique_write

_LABEL_TAKEN = "A tag with this label already exists in the project."


def actor_is_project_admin(*, actor: Actor, project: Project) -> bool:
    """Project admin in the sense of docs/PERMISSIONS.md ("Who may change grants"). `actor=None` is the system
    (seeding, migrations, shell) and passes."""
    return actor is None or engine.is_admin(actor, project)


def _require_project_admin(*, actor: Actor, project: Project, detail: str) -> None:
    if not actor_is_project_admin(actor=actor, project=project):
        raise DomainPermissionDenied(detail, code="protected_tag")


def project_create(*, organisation: Organisation, name: str, actor: Actor) -> Project:
    """The creating user receives a project grant with `admin: true` (docs/API.md, "Grants")."""
    from permissions.services import grant_create  # permissions depends on projects

    with transaction.atomic():
        project = Project.objects.create(organisation=organisation, name=name)
        Auditor.in_project(project, actor=actor).record(
            AuditAction.CREATED, project, after={"name": name}
        )
        if isinstance(actor, AbstractBaseUser):
            grant_create(principal=actor, scope=project, admin=True, actor=actor)
            engine.forget(actor)  # its memoised policy predates the grant
    return project


def project_snapshot(project: Project) -> dict[str, Any]:
    return {"name": project.name, "organisation": project.organisation_id}


def project_update(*, project: Project, name: str | None = None, actor: Actor) -> Project:
    """Rename a project. Writing back the current name records nothing."""
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        before = project_snapshot(project)
        if name is not None:
            project.name = name
        Auditor.in_project(project, actor=actor).save(
            project, fields=["name"], before=before, after=project_snapshot(project)
        )
    return project


def project_delete(*, project: Project, actor: Actor) -> None:
    """Delete a project with everything in it (its environments, features, tags, segments
    and every grant on it or its environments: foreign-key cascades). One audit entry, whose
    `before` counts what went with it."""
    with transaction.atomic():
        before = {
            **project_snapshot(project),
            "environments_deleted": project.environments.count(),
            "features_deleted": project.features.count(),
            "tags_deleted": project.tags.count(),
            "segments_deleted": project.segments.count(),
            "grants_deleted": project.grants.count(),
        }
        Auditor.in_project(project, actor=actor).delete(project, before=before)


def tag_snapshot(tag: Tag) -> dict[str, object]:
    return {
        "label": tag.label,
        "color": tag.color,
        "description": tag.description,
        "is_restricted": tag.is_restricted,
    }


def tag_create(
    *,
    project: Project,
    label: str,
    color: str = DEFAULT_TAG_COLOR,
    description: str = "",
    is_restricted: bool = False,
    actor: Actor,
) -> Tag:
    """Creating a restricted tag needs project admin (docs/PERMISSIONS.md); labels are unique
    per project under Unicode case folding (`tag_label_key`, docs/API.md)."""
    if is_restricted:
        _require_project_admin(
            actor=actor, project=project, detail="Only project admins may create restricted tags."
        )
    if Tag.objects.filter(project=project, label_key=tag_label_key(label)).exists():
        raise ValidationError({"label": [_LABEL_TAKEN]})
    with transaction.atomic():
        with unique_write(field="label", message=_LABEL_TAKEN):
            tag = Tag.objects.create(
                project=project,
                label=label,
                color=color,
                description=description,
                is_restricted=is_restricted,
            )
        Auditor.in_project(project, actor=actor).record(
            AuditAction.CREATED, tag, after=tag_snapshot(tag)
        )
    return tag


def tag_update(
    *,
    tag: Tag,
    label: str | None = None,
    color: str | None = None,
    description: str | None = None,
    is_restricted: bool | None = None,
    actor: Actor,
) -> Tag:
    """Edit a tag. Changing `is_restricted` needs project admin; writing back what was read
    changes nothing and records nothing."""
    project = tag.project
    if (
        label is not None
        and Tag.objects.filter(project_id=tag.project_id, label_key=tag_label_key(label))
        .exclude(pk=tag.pk)
        .exists()
    ):
        raise ValidationError({"label": [_LABEL_TAKEN]})
    with transaction.atomic():
        locked = lock_current(tag)
        if locked is None:
            raise Http404("This tag was deleted.")
        tag = locked
        if is_restricted is not None and is_restricted != tag.is_restricted:
            _require_project_admin(
                actor=actor,
                project=project,
                detail=f"Only project admins may change whether tag {tag.label!r} is restricted.",
            )
        before = tag_snapshot(tag)
        for name, value in (
            ("label", label),
            ("color", color),
            ("description", description),
            ("is_restricted", is_restricted),
        ):
            if value is not None:
                setattr(tag, name, value)
        Auditor.in_project(project, actor=actor).save(
            tag,
            fields=["label", "color", "description", "is_restricted"],
            before=before,
            after=tag_snapshot(tag),
            unique=("label", _LABEL_TAKEN),
        )
    return tag


def tag_delete(*, tag: Tag, actor: Actor) -> None:
    """Delete a tag (docs/PERMISSIONS.md, Protected tags), in this order:
    - a protected tag (restricted, or named by a grant entry) needs project admin → 403;
    - a tag named by a grant entry cannot be deleted by anyone → 409 `tag_in_use` naming the
      roles (deleting it would widen or silently change their reach);
    - a restricted tag still attached to a feature → 409 `tag_in_use`.
    Other tags are detached from their features; the audit entry lists them.

    Every fact is read under the tag's row lock, which grant writes naming the tag and
    feature writes attaching it take too (docs/CONCURRENCY.md): a grant written meanwhile
    is either refused (the tag is gone, 400) or seen here (409)."""
    project = tag.project
    with transaction.atomic():
        locked = lock_current(tag)
        if locked is None:  # deleted meanwhile
            return
        tag = locked
        named_by_grant = selectors.tag_is_named_by_grant(tag=tag)
        if tag.is_restricted or named_by_grant:
            _require_project_admin(
                actor=actor,
                project=project,
                detail=f"Tag {tag.label!r} is protected: only project admins may delete it.",
            )
        if named_by_grant:
            roles = selectors.roles_naming_tag(tag=tag)
            raise Conflict(
                f"Tag {tag.label!r} is named by the grants of "
                + (", ".join(repr(r.name) for r in roles) or "other principals")
                + "; remove it from them first.",
                code="tag_in_use",
                roles=[{"id": r.pk, "name": r.name} for r in roles],
            )
        feature_ids = sorted(tag.features.values_list("id", flat=True))
        if tag.is_restricted and feature_ids:
            raise Conflict(
                f"Restricted tag {tag.label!r} is still attached to {len(feature_ids)} "
                "feature(s): lift the restriction or detach it first.",
                code="tag_in_use",
                roles=[],
            )
        Auditor.in_project(project, actor=actor).delete(
            tag, before={**tag_snapshot(tag), "features": feature_ids}
        )
