"""projects.services: project_create gives its creator a project admin grant; tag_create
keeps labels unique per project, case-insensitively."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditLogEntry
from permissions.models import Grant
from projects.models import Project, Tag
from projects.services import project_create, tag_create
from tests import factories as f

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------------------
# project_create
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("admin_member", [True, False], ids=["org-admin", "org-user"])
def test_project_create__creator_gets_user_project_grant_with_admin(
    organisation: Any, admin_member: bool
) -> None:
    creator = f.member(organisation, admin=admin_member)
    project = project_create(organisation=organisation, name="Checkout", actor=creator)
    grant = Grant.objects.get()
    assert (grant.user, grant.group, grant.role) == (creator, None, None)
    assert (grant.organisation, grant.project, grant.environment) == (organisation, project, None)
    assert grant.admin is True
    assert not grant.entries.exists()
    assert sorted(AuditLogEntry.objects.values_list("object_type", "action")) == [
        ("grant", "created"),
        ("project", "created"),
    ]
    project_entry = AuditLogEntry.objects.get(object_type="project")
    assert (project_entry.project_id, project_entry.after) == (project.pk, {"name": "Checkout"})


def test_project_create__by_the_system__no_grant(organisation: Any) -> None:
    project_create(organisation=organisation, name="Checkout", actor=None)
    assert Project.objects.count() == 1
    assert not Grant.objects.exists()


def test_project_create__by_an_api_key__no_user_grant(organisation: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    project_create(organisation=organisation, name="Checkout", actor=key)
    assert Project.objects.count() == 1
    assert not Grant.objects.exists()
    assert AuditLogEntry.objects.get().actor_api_key == key


def test_project_create__creator_not_a_member__400_on_user_and_nothing_created(
    organisation: Any,
) -> None:
    outsider = f.member(f.OrganisationFactory())
    with pytest.raises(ValidationError) as excinfo:
        project_create(organisation=organisation, name="Checkout", actor=outsider)
    assert list(excinfo.value.message_dict) == ["user"]
    assert not Project.objects.exists()
    assert not Grant.objects.exists()
    assert not AuditLogEntry.objects.exists()


def test_project_create__same_creator_two_projects__two_admin_grants(organisation: Any) -> None:
    creator = f.member(organisation)
    project_create(organisation=organisation, name="Checkout", actor=creator)
    project_create(organisation=organisation, name="Mobile app", actor=creator)
    assert Grant.objects.filter(user=creator, admin=True).count() == 2


# --------------------------------------------------------------------------------------
# tag_create
# --------------------------------------------------------------------------------------


def test_tag_create__new_label__created_and_audited(project: Any) -> None:
    tag = tag_create(project=project, label="growth", color="#00aa00", description="d", actor=None)
    assert (tag.label, tag.color, tag.description, tag.is_restricted) == (
        "growth",
        "#00aa00",
        "d",
        False,
    )
    entry = AuditLogEntry.objects.get()
    assert (entry.object_type, entry.action, entry.project_id) == ("tag", "created", project.pk)
    assert entry.after == {
        "label": "growth",
        "color": "#00aa00",
        "description": "d",
        "is_restricted": False,
    }


@pytest.mark.parametrize("label", ["growth", "Growth", "GROWTH"])
def test_tag_create__label_taken_ignoring_case__400_on_label(project: Any, label: str) -> None:
    tag_create(project=project, label="growth", actor=None)
    with pytest.raises(ValidationError) as excinfo:
        tag_create(project=project, label=label, actor=None)
    assert list(excinfo.value.message_dict) == ["label"]
    assert project.tags.count() == 1
    assert AuditLogEntry.objects.count() == 1


def test_tag_create__label_taken_in_another_project__accepted(project: Any) -> None:
    other = f.ProjectFactory(organisation=project.organisation)
    tag_create(project=other, label="growth", actor=None)
    tag_create(project=project, label="Growth", actor=None)
    assert Tag.objects.count() == 2
