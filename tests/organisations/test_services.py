"""Writes of organisations.services: each validation rule with a case that is accepted and
one that is rejected, and the audit entry every successful write records."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditLogEntry
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from organisations.services import (
    api_key_create,
    group_create,
    membership_create,
    organisation_create,
    role_assignment_create,
    role_create,
)
from tests import factories as f

pytestmark = pytest.mark.django_db


def audit_actions() -> list[tuple[str, str]]:
    return sorted(AuditLogEntry.objects.values_list("object_type", "action"))


# --------------------------------------------------------------------------------------
# organisation_create
# --------------------------------------------------------------------------------------


def test_organisation_create__creator_becomes_admin_member(db: Any) -> None:
    creator = f.UserFactory()
    organisation = organisation_create(name="Acme", creator=creator)
    membership = OrganisationMembership.objects.get(organisation=organisation)
    assert membership.user == creator
    assert membership.role == MembershipRole.ADMIN
    assert audit_actions() == [
        ("organisation", "created"),
        ("organisation_membership", "created"),
    ]
    assert set(AuditLogEntry.objects.values_list("actor_user", flat=True)) == {creator.pk}


def test_organisation_create__without_creator__no_member(db: Any) -> None:
    organisation = organisation_create(name="Acme", creator=None)
    assert Organisation.objects.get().name == "Acme"
    assert not organisation.memberships.exists()
    assert audit_actions() == [("organisation", "created")]


# --------------------------------------------------------------------------------------
# membership_create
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["ADMIN", "USER"])
def test_membership_create__new_member__created_and_audited(
    organisation: Any, org_admin: Any, role: str
) -> None:
    user = f.UserFactory()
    membership = membership_create(organisation=organisation, user=user, role=role, actor=org_admin)
    assert (membership.user, membership.role) == (user, role)
    entry = AuditLogEntry.objects.get(object_type="organisation_membership")
    assert entry.after == {"user": user.pk, "role": role}


def test_membership_create__member_of_another_organisation__accepted(
    organisation: Any, org_admin: Any
) -> None:
    user = f.member(f.OrganisationFactory())
    membership_create(organisation=organisation, user=user, actor=org_admin)
    assert OrganisationMembership.objects.filter(user=user).count() == 2


def test_membership_create__already_a_member__400_on_user(
    organisation: Any, org_admin: Any
) -> None:
    user = f.member(organisation)
    with pytest.raises(ValidationError) as excinfo:
        membership_create(
            organisation=organisation, user=user, role=MembershipRole.ADMIN, actor=org_admin
        )
    assert list(excinfo.value.message_dict) == ["user"]
    assert OrganisationMembership.objects.get(user=user).role == MembershipRole.USER
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize("role", ["OWNER", "admin", ""])
def test_membership_create__unknown_role__400_on_role(
    organisation: Any, org_admin: Any, role: str
) -> None:
    user = f.UserFactory()
    with pytest.raises(ValidationError) as excinfo:
        membership_create(organisation=organisation, user=user, role=role, actor=org_admin)
    assert list(excinfo.value.message_dict) == ["role"]
    assert not OrganisationMembership.objects.filter(user=user).exists()


# --------------------------------------------------------------------------------------
# group_create
# --------------------------------------------------------------------------------------


def test_group_create__members__created_with_users_and_audited(
    organisation: Any, org_admin: Any
) -> None:
    bob, carol = f.member(organisation), f.member(organisation)
    group = group_create(
        organisation=organisation, name="Payments team", users=[bob, carol], actor=org_admin
    )
    assert set(group.users.all()) == {bob, carol}
    entry = AuditLogEntry.objects.get(object_type="user_group")
    assert entry.action == "created"
    assert entry.after == {"name": "Payments team", "users": sorted([bob.pk, carol.pk])}


def test_group_create__non_member__400_on_users_naming_them(
    organisation: Any, org_admin: Any
) -> None:
    bob = f.member(organisation)
    outsider = f.member(f.OrganisationFactory())
    with pytest.raises(ValidationError) as excinfo:
        group_create(
            organisation=organisation, name="Payments team", users=[bob, outsider], actor=org_admin
        )
    errors = excinfo.value.message_dict
    assert list(errors) == ["users"]
    assert str(outsider.pk) in errors["users"][0]
    assert not UserGroup.objects.exists()
    assert not AuditLogEntry.objects.exists()


def test_group_create__user_listed_twice__400_on_users_and_nothing_written(
    organisation: Any, org_admin: Any
) -> None:
    bob = f.member(organisation)
    with pytest.raises(ValidationError) as excinfo:
        group_create(organisation=organisation, name="QA", users=[bob, bob], actor=org_admin)
    assert list(excinfo.value.message_dict) == ["users"]
    assert not UserGroup.objects.exists()
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize("name", ["QA", "qa", "Qa"])
def test_group_create__name_taken_ignoring_case__400_on_name(
    organisation: Any, org_admin: Any, name: str
) -> None:
    group_create(organisation=organisation, name="QA", actor=org_admin)
    with pytest.raises(ValidationError) as excinfo:
        group_create(organisation=organisation, name=name, actor=org_admin)
    assert list(excinfo.value.message_dict) == ["name"]
    assert UserGroup.objects.count() == 1


def test_group_create__name_taken_in_another_organisation__accepted(
    organisation: Any, org_admin: Any
) -> None:
    group_create(organisation=f.OrganisationFactory(), name="QA", actor=None)
    group_create(organisation=organisation, name="QA", actor=org_admin)
    assert UserGroup.objects.filter(name="QA").count() == 2


# --------------------------------------------------------------------------------------
# role_create
# --------------------------------------------------------------------------------------


def test_role_create__new_name__created_and_audited(organisation: Any, org_admin: Any) -> None:
    role = role_create(
        organisation=organisation, name="Release approver", description="d", actor=org_admin
    )
    assert (role.name, role.description) == ("Release approver", "d")
    entry = AuditLogEntry.objects.get(object_type="role")
    assert entry.after == {"name": "Release approver", "description": "d"}


@pytest.mark.parametrize("name", ["Release approver", "RELEASE APPROVER"])
def test_role_create__name_taken_ignoring_case__400_on_name(
    organisation: Any, org_admin: Any, name: str
) -> None:
    role_create(organisation=organisation, name="Release approver", actor=org_admin)
    with pytest.raises(ValidationError) as excinfo:
        role_create(organisation=organisation, name=name, actor=org_admin)
    assert list(excinfo.value.message_dict) == ["name"]
    assert Role.objects.count() == 1


def test_role_create__name_taken_in_another_organisation__accepted(
    organisation: Any, org_admin: Any
) -> None:
    role_create(organisation=f.OrganisationFactory(), name="Release approver", actor=None)
    role_create(organisation=organisation, name="Release approver", actor=org_admin)
    assert Role.objects.count() == 2


# --------------------------------------------------------------------------------------
# role_assignment_create
# --------------------------------------------------------------------------------------


def principal_of(kind: str, organisation: Any) -> Any:
    if kind == "user":
        return f.member(organisation)
    if kind == "group":
        return f.UserGroupFactory(organisation=organisation)
    return f.APIKeyFactory(organisation=organisation)


KINDS = ("user", "group", "api_key")


@pytest.mark.parametrize("kind", KINDS)
def test_role_assignment_create__principal_of_the_organisation__assigned_and_audited(
    organisation: Any, org_admin: Any, kind: str
) -> None:
    role = f.RoleFactory(organisation=organisation)
    principal = principal_of(kind, organisation)
    assignment = role_assignment_create(role=role, **{kind: principal}, actor=org_admin)
    assert assignment.principal == principal
    entry = AuditLogEntry.objects.get(object_type="role_assignment")
    assert entry.after == {"role": role.pk, kind: principal.pk}


@pytest.mark.parametrize("kind", KINDS)
def test_role_assignment_create__principal_of_another_organisation__400_on_field(
    organisation: Any, org_admin: Any, kind: str
) -> None:
    role = f.RoleFactory(organisation=organisation)
    principal = principal_of(kind, f.OrganisationFactory())
    with pytest.raises(ValidationError) as excinfo:
        role_assignment_create(role=role, **{kind: principal}, actor=org_admin)
    assert list(excinfo.value.message_dict) == [kind]
    assert not RoleAssignment.objects.exists()
    assert not AuditLogEntry.objects.exists()


def test_role_assignment_create__user_without_membership__400_on_user(
    organisation: Any, org_admin: Any
) -> None:
    role = f.RoleFactory(organisation=organisation)
    with pytest.raises(ValidationError) as excinfo:
        role_assignment_create(role=role, user=f.UserFactory(), actor=org_admin)
    assert list(excinfo.value.message_dict) == ["user"]


@pytest.mark.parametrize("kind", KINDS)
def test_role_assignment_create__already_assigned__400_on_field(
    organisation: Any, org_admin: Any, kind: str
) -> None:
    role = f.RoleFactory(organisation=organisation)
    principal = principal_of(kind, organisation)
    role_assignment_create(role=role, **{kind: principal}, actor=org_admin)
    with pytest.raises(ValidationError) as excinfo:
        role_assignment_create(role=role, **{kind: principal}, actor=org_admin)
    assert list(excinfo.value.message_dict) == [kind]
    assert RoleAssignment.objects.count() == 1
    assert AuditLogEntry.objects.count() == 1


@pytest.mark.parametrize(
    "kinds", [(), ("user", "group"), ("group", "api_key"), KINDS], ids=["none", "two", "two'", "3"]
)
def test_role_assignment_create__not_exactly_one_principal__400(
    organisation: Any, org_admin: Any, kinds: tuple[str, ...]
) -> None:
    role = f.RoleFactory(organisation=organisation)
    principals = {kind: principal_of(kind, organisation) for kind in kinds}
    with pytest.raises(ValidationError) as excinfo:
        role_assignment_create(role=role, **principals, actor=org_admin)
    assert list(excinfo.value.message_dict) == ["non_field_errors"]
    assert not RoleAssignment.objects.exists()


# --------------------------------------------------------------------------------------
# api_key_create
# --------------------------------------------------------------------------------------


def test_api_key_create__plain_key_authenticates_and_is_not_stored(
    organisation: Any, org_admin: Any
) -> None:
    api_key, plain = api_key_create(organisation=organisation, name="ci-pipeline", actor=org_admin)
    assert isinstance(api_key.pk, int)
    assert OrganisationAPIKey.objects.get_from_key(plain) == api_key
    stored = OrganisationAPIKey.objects.filter(pk=api_key.pk).values().get()
    secret = plain.partition(".")[2]
    assert secret
    for value in stored.values():
        assert plain not in str(value)
        assert secret not in str(value)
    assert isinstance(stored["id"], int)
    assert (stored["name"], stored["is_admin"], stored["revoked"]) == ("ci-pipeline", False, False)
    entry = AuditLogEntry.objects.get(object_type="organisation_api_key")
    assert entry.action == "created"
    assert entry.object_id == str(api_key.pk)
    assert secret not in str(entry.after)
    assert entry.after["prefix"] == api_key.prefix


def test_api_key_create__wrong_key__does_not_authenticate(
    organisation: Any, org_admin: Any
) -> None:
    _, plain = api_key_create(organisation=organisation, name="ci", actor=org_admin)
    tampered = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    with pytest.raises(OrganisationAPIKey.DoesNotExist):
        OrganisationAPIKey.objects.get_from_key(tampered)


def test_api_key_create__admin_and_expiry__stored(organisation: Any, org_admin: Any) -> None:
    import datetime as dt

    from django.utils import timezone

    expires = timezone.now() + dt.timedelta(days=30)
    api_key, _ = api_key_create(
        organisation=organisation, name="ops", is_admin=True, expires_at=expires, actor=org_admin
    )
    api_key.refresh_from_db()
    assert api_key.is_admin is True
    assert api_key.expiry_date == expires
    assert api_key.is_usable


def test_api_key_create__two_keys__distinct_integer_ids_and_keys(
    organisation: Any, org_admin: Any
) -> None:
    a, key_a = api_key_create(organisation=organisation, name="a", actor=org_admin)
    b, key_b = api_key_create(organisation=organisation, name="b", actor=org_admin)
    assert a.pk != b.pk and key_a != key_b
    assert OrganisationAPIKey.objects.get_from_key(key_a) == a
    assert OrganisationAPIKey.objects.get_from_key(key_b) == b


@pytest.mark.parametrize("kind", ["group", "role", "membership"])
def test_create__duplicate_slips_past_the_check__400_not_integrity_error(
    organisation: Any, org_admin: Any, kind: str, monkeypatch: Any
) -> None:
    """A concurrent request that inserts between the existence check and the insert."""
    from django.db.models import QuerySet

    from organisations import services

    user = f.member(organisation) if kind != "membership" else f.UserFactory()
    if kind == "group":
        services.group_create(organisation=organisation, name="QA", actor=org_admin)
        call = lambda: services.group_create(organisation=organisation, name="QA", actor=org_admin)  # noqa: E731
        field = "name"
    elif kind == "role":
        services.role_create(organisation=organisation, name="QA", actor=org_admin)
        call = lambda: services.role_create(organisation=organisation, name="QA", actor=org_admin)  # noqa: E731
        field = "name"
    else:
        services.membership_create(organisation=organisation, user=user, actor=org_admin)
        call = lambda: services.membership_create(  # noqa: E731
            organisation=organisation, user=user, actor=org_admin
        )
        field = "user"
    monkeypatch.setattr(QuerySet, "exists", lambda self: False)  # the check loses the race
    with pytest.raises(ValidationError) as excinfo:
        call()
    assert list(excinfo.value.message_dict) == [field]
