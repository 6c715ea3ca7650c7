"""Database constraints of organisations.models: each with a row it accepts and one it
rejects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from organisations.models import (
    MembershipRole,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from tests import factories as f

pytestmark = pytest.mark.django_db


@contextmanager
def rejected_by_db() -> Iterator[None]:
    with pytest.raises(IntegrityError), transaction.atomic():
        yield


# --------------------------------------------------------------------------------------
# OrganisationMembership: one per user and organisation; role ADMIN or USER.
# --------------------------------------------------------------------------------------


def test_membership__same_user_in_two_organisations__accepted(organisation: Any) -> None:
    user = f.UserFactory()
    OrganisationMembership.objects.create(user=user, organisation=organisation)
    OrganisationMembership.objects.create(user=user, organisation=f.OrganisationFactory())
    assert OrganisationMembership.objects.filter(user=user).count() == 2


def test_membership__same_user_twice_in_one_organisation__rejected_by_db(
    organisation: Any,
) -> None:
    user = f.UserFactory()
    OrganisationMembership.objects.create(user=user, organisation=organisation)
    with rejected_by_db():
        OrganisationMembership.objects.create(
            user=user, organisation=organisation, role=MembershipRole.ADMIN
        )
    assert OrganisationMembership.objects.filter(user=user).count() == 1


@pytest.mark.parametrize("role", ["ADMIN", "USER"])
def test_membership__role_admin_or_user__accepted(organisation: Any, role: str) -> None:
    membership = OrganisationMembership.objects.create(
        user=f.UserFactory(), organisation=organisation, role=role
    )
    assert membership.is_admin is (role == "ADMIN")


@pytest.mark.parametrize("role", ["OWNER", "admin", ""])
def test_membership__other_role__rejected_by_db(organisation: Any, role: str) -> None:
    with rejected_by_db():
        OrganisationMembership.objects.create(
            user=f.UserFactory(), organisation=organisation, role=role
        )
    assert not OrganisationMembership.objects.exists()


# --------------------------------------------------------------------------------------
# UserGroup and Role names: unique per organisation, case-insensitively.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [UserGroup, Role], ids=["group", "role"])
def test_name__same_in_two_organisations__accepted(organisation: Any, model: Any) -> None:
    model.objects.create(organisation=organisation, name="Payments team")
    model.objects.create(organisation=f.OrganisationFactory(), name="Payments team")
    assert model.objects.filter(name="Payments team").count() == 2


@pytest.mark.parametrize("model", [UserGroup, Role], ids=["group", "role"])
def test_name__different_in_one_organisation__accepted(organisation: Any, model: Any) -> None:
    model.objects.create(organisation=organisation, name="Payments team")
    model.objects.create(organisation=organisation, name="Payments team 2")
    assert model.objects.filter(organisation=organisation).count() == 2


@pytest.mark.parametrize("other", ["Payments team", "payments team", "PAYMENTS TEAM"])
@pytest.mark.parametrize("model", [UserGroup, Role], ids=["group", "role"])
def test_name__same_ignoring_case_in_one_organisation__rejected_by_db(
    organisation: Any, model: Any, other: str
) -> None:
    model.objects.create(organisation=organisation, name="Payments team")
    with rejected_by_db():
        model.objects.create(organisation=organisation, name=other)
    assert model.objects.filter(organisation=organisation).count() == 1


# --------------------------------------------------------------------------------------
# RoleAssignment: exactly one principal; each principal at most once per role.
# --------------------------------------------------------------------------------------


class Principals:
    def __init__(self, organisation: Any) -> None:
        self.organisation = organisation
        self.role = f.RoleFactory(organisation=organisation)
        self.other_role = f.RoleFactory(organisation=organisation)
        self.by_kind = {
            "user": [f.member(organisation), f.member(organisation)],
            "group": [
                f.UserGroupFactory(organisation=organisation),
                f.UserGroupFactory(organisation=organisation),
            ],
            "api_key": [
                f.APIKeyFactory(organisation=organisation),
                f.APIKeyFactory(organisation=organisation),
            ],
        }


@pytest.fixture
def p(organisation: Any) -> Principals:
    return Principals(organisation)


KINDS = ("user", "group", "api_key")


@pytest.mark.parametrize("kind", KINDS)
def test_role_assignment__one_principal__accepted(p: Principals, kind: str) -> None:
    assignment = RoleAssignment.objects.create(role=p.role, **{kind: p.by_kind[kind][0]})
    assert assignment.principal == p.by_kind[kind][0]


@pytest.mark.parametrize(
    "kinds",
    [(), ("user", "group"), ("user", "api_key"), ("group", "api_key"), KINDS],
    ids=["none", "user+group", "user+api_key", "group+api_key", "all-three"],
)
def test_role_assignment__not_exactly_one_principal__rejected_by_db(
    p: Principals, kinds: tuple[str, ...]
) -> None:
    with rejected_by_db():
        RoleAssignment.objects.create(role=p.role, **{k: p.by_kind[k][0] for k in kinds})
    assert not RoleAssignment.objects.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_role_assignment__same_principal_twice_on_one_role__rejected_by_db(
    p: Principals, kind: str
) -> None:
    RoleAssignment.objects.create(role=p.role, **{kind: p.by_kind[kind][0]})
    with rejected_by_db():
        RoleAssignment.objects.create(role=p.role, **{kind: p.by_kind[kind][0]})
    assert RoleAssignment.objects.count() == 1


@pytest.mark.parametrize("kind", KINDS)
def test_role_assignment__same_principal_on_two_roles__accepted(p: Principals, kind: str) -> None:
    RoleAssignment.objects.create(role=p.role, **{kind: p.by_kind[kind][0]})
    RoleAssignment.objects.create(role=p.other_role, **{kind: p.by_kind[kind][0]})
    assert RoleAssignment.objects.count() == 2


@pytest.mark.parametrize("kind", KINDS)
def test_role_assignment__two_principals_of_a_kind_on_one_role__accepted(
    p: Principals, kind: str
) -> None:
    for principal in p.by_kind[kind]:
        RoleAssignment.objects.create(role=p.role, **{kind: principal})
    assert RoleAssignment.objects.count() == 2


def test_role_assignment__one_of_each_kind_on_one_role__accepted(p: Principals) -> None:
    for kind in KINDS:
        RoleAssignment.objects.create(role=p.role, **{kind: p.by_kind[kind][0]})
    assert p.role.assignments.count() == 3


# --------------------------------------------------------------------------------------
# OrganisationAPIKey: integer primary key, unique prefix, no plain key stored.
# --------------------------------------------------------------------------------------


def test_api_key__created_by_manager__integer_pk_and_unique_prefix(organisation: Any) -> None:
    a, key_a = OrganisationAPIKey.objects.create_key(organisation=organisation, name="a")
    b, key_b = OrganisationAPIKey.objects.create_key(organisation=organisation, name="b")
    assert isinstance(a.pk, int) and isinstance(b.pk, int)
    assert a.pk != b.pk
    assert a.prefix != b.prefix
    assert key_a.startswith(a.prefix + ".")
    assert OrganisationAPIKey.objects.get_from_key(key_b) == b


def test_api_key__duplicate_prefix__rejected_by_db(organisation: Any) -> None:
    a, _ = OrganisationAPIKey.objects.create_key(organisation=organisation, name="a")
    with rejected_by_db():
        OrganisationAPIKey.objects.create(
            organisation=organisation, name="b", prefix=a.prefix, hashed_key="x"
        )
    assert OrganisationAPIKey.objects.count() == 1


def test_api_key__usable__unless_revoked_or_expired(organisation: Any) -> None:
    import datetime as dt

    from django.utils import timezone

    key = f.APIKeyFactory(organisation=organisation)
    assert key.is_usable
    key.revoked = True
    assert not key.is_usable
    key.revoked = False
    key.expiry_date = timezone.now() - dt.timedelta(seconds=1)
    assert not key.is_usable
