"""The audit log is append-only (docs/API.md, "Choices where the contract is silent"): entries can be added, never changed or
removed through the ORM."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from audit.models import AuditAction, AuditLogEntry
from audit.services import audit_record, object_type_of
from organisations.models import Organisation, RoleAssignment
from permissions.models import GrantEntryTag
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(organisation: Any) -> AuditLogEntry:
    return f.AuditLogEntryFactory(
        organisation=organisation, object_type="feature", object_id="7", after={"name": "x"}
    )


def unchanged(entry: AuditLogEntry) -> bool:
    row = AuditLogEntry.objects.filter(pk=entry.pk).values("object_id", "after", "action").get()
    return row == {"object_id": "7", "after": {"name": "x"}, "action": "created"}


def test_audit_entry__new_entries__appended(organisation: Any) -> None:
    a = f.AuditLogEntryFactory(organisation=organisation)
    b = AuditLogEntry(organisation=organisation, action="deleted", object_type="tag", object_id="3")
    b.save()
    AuditLogEntry.objects.bulk_create(
        [AuditLogEntry(organisation=organisation, action="updated", object_type="x", object_id="1")]
    )
    assert a.pk is not None and b.pk is not None
    assert AuditLogEntry.objects.count() == 3


def test_audit_entry__save_of_existing_entry__type_error(entry: AuditLogEntry) -> None:
    entry.object_id = "8"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.save(update_fields=["object_id"])
    assert unchanged(entry)


def test_audit_entry__delete__type_error(entry: AuditLogEntry) -> None:
    with pytest.raises(TypeError):
        entry.delete()
    assert unchanged(entry)


def test_audit_queryset__update__type_error(entry: AuditLogEntry) -> None:
    with pytest.raises(TypeError):
        AuditLogEntry.objects.filter(pk=entry.pk).update(object_id="8")
    with pytest.raises(TypeError):
        AuditLogEntry.objects.update(after=None)
    assert unchanged(entry)


def test_audit_queryset__delete__type_error(entry: AuditLogEntry) -> None:
    with pytest.raises(TypeError):
        AuditLogEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(TypeError):
        AuditLogEntry.objects.all().delete()
    assert unchanged(entry)


def test_audit_queryset__bulk_update__type_error(entry: AuditLogEntry) -> None:
    entry.object_id = "8"
    # bulk_update runs in its own atomic block, which the error marks for rollback.
    with pytest.raises(TypeError), transaction.atomic():
        AuditLogEntry.objects.bulk_update([entry], ["object_id"])
    assert unchanged(entry)


def test_audit_entry__survives_deletion_of_its_project(organisation: Any) -> None:
    """project_id and environment_id are plain ids, not foreign keys."""
    project = f.ProjectFactory(organisation=organisation)
    environment = f.EnvironmentFactory(project=project)
    ids = (project.pk, environment.pk)
    kept = f.AuditLogEntryFactory(
        organisation=organisation, project_id=ids[0], environment_id=ids[1]
    )
    project.delete()
    kept_row = AuditLogEntry.objects.get(pk=kept.pk)
    assert (kept_row.project_id, kept_row.environment_id) == ids


def test_audit_entry__survives_deletion_of_its_actor(organisation: Any) -> None:
    actor = f.member(organisation)
    kept = audit_record(
        actor=actor, action=AuditAction.CREATED, obj=organisation, organisation_id=organisation.pk
    )
    assert kept is not None
    actor.delete()
    kept_row = AuditLogEntry.objects.get(pk=kept.pk)
    assert kept_row.actor_user is None
    assert kept_row.actor_name == actor.username


# --------------------------------------------------------------------------------------
# audit_record
# --------------------------------------------------------------------------------------


def test_audit_record__update_that_changes_nothing__records_nothing(organisation: Any) -> None:
    result = audit_record(
        actor=None,
        action=AuditAction.UPDATED,
        obj=organisation,
        organisation_id=organisation.pk,
        before={"name": "a"},
        after={"name": "a"},
    )
    assert result is None
    assert not AuditLogEntry.objects.exists()


def test_audit_record__update_that_changes_something__one_entry(organisation: Any) -> None:
    entry = audit_record(
        actor=None,
        action=AuditAction.UPDATED,
        obj=organisation,
        organisation_id=organisation.pk,
        before={"name": "a"},
        after={"name": "b"},
    )
    assert entry is not None
    assert (entry.object_type, entry.object_id, entry.before, entry.after) == (
        "organisation",
        str(organisation.pk),
        {"name": "a"},
        {"name": "b"},
    )


def test_audit_record__api_key_actor__recorded_as_key(organisation: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, name="ci")
    entry = audit_record(
        actor=key, action=AuditAction.CREATED, obj=organisation, organisation_id=organisation.pk
    )
    assert entry is not None
    assert entry.actor_api_key == key
    assert entry.actor_user is None
    assert "ci" in entry.actor_name


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (Organisation, "organisation"),
        (RoleAssignment, "role_assignment"),
        (GrantEntryTag, "grant_entry_tag"),
    ],
)
def test_object_type_of__model_name_in_snake_case(model: Any, expected: str) -> None:
    assert object_type_of(model) == expected
