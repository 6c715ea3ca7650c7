"""Writes for projects and tags."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditAction
from audit.services import Actor, audit_record
from organisations.models import Organisation
from projects.models import DEFAULT_TAG_COLOR, Project, Tag


def project_create(*, organisation: Organisation, name: str, actor: Actor) -> Project:
    """The creating user receives a project grant with `admin: true` (DESIGN.md §4)."""
    from permissions.services import grant_create  # permissions depends on projects

    with transaction.atomic():
        project = Project.objects.create(organisation=organisation, name=name)
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=project,
            organisation_id=organisation.pk,
            project_id=project.pk,
            after={"name": name},
        )
        if isinstance(actor, AbstractBaseUser):
            grant_create(principal=actor, scope=project, admin=True, actor=actor)
    return project


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
    if Tag.objects.filter(project=project, label__iexact=label).exists():
        raise ValidationError({"label": ["A tag with this label already exists in the project."]})
    with transaction.atomic():
        tag = Tag.objects.create(
            project=project,
            label=label,
            color=color,
            description=description,
            is_restricted=is_restricted,
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=tag,
            organisation_id=project.organisation_id,
            project_id=project.pk,
            after=tag_snapshot(tag),
        )
    return tag
