"""Database constraints of grants (permissions.models): each one with a row it accepts and a
row it rejects. These pin the last line of defence under the services: a write that skips
`permissions.services` still cannot store an impossible grant."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.db.models import RestrictedError

from environments.models import Environment
from features.models import Feature
from organisations.models import Organisation, Role
from permissions.catalogue import Level
from permissions.models import PRINCIPAL_FIELDS, Grant, GrantEntry, GrantEntryTag
from projects.models import Project, Tag
from tests import factories as f
from tests.support.worlds import ScopeTree

pytestmark = pytest.mark.django_db

LEVELS = ("organisation", "project", "environment")


@contextmanager
def rejected_by_db() -> Iterator[None]:
    """The block must fail with IntegrityError; the savepoint keeps the test's transaction
    usable afterwards (PostgreSQL aborts it otherwise)."""
    with pytest.raises(IntegrityError), transaction.atomic():
        yield


class World(ScopeTree):
    """Two projects of one organisation, two environments in the first, one member, one
    group and one role, and a second of each principal."""

    def __init__(self) -> None:
        super().__init__()
        self.principals = {
            "user": [f.member(self.organisation), f.member(self.organisation)],
            "group": [
                f.UserGroupFactory(organisation=self.organisation),
                f.UserGroupFactory(organisation=self.organisation),
            ],
            "role": [
                f.RoleFactory(organisation=self.organisation),
                f.RoleFactory(organisation=self.organisation),
            ],
        }

    def scope_fields(self, level: str, *, other: bool = False) -> dict[str, Any]:
        """The grant's scope columns for a scope of this level (`other`: the second one)."""
        scope = self.scope(level, other=other)
        if level == "organisation":
            return {"organisation": scope}
        if level == "project":
            return {"organisation": self.organisation, "project": scope}
        return {"organisation": self.organisation, "project": self.project, "environment": scope}

    def principal(self, kind: str, index: int = 0) -> dict[str, Any]:
        return {kind: self.principals[kind][index]}


@pytest.fixture
def world() -> World:
    return World()


# --------------------------------------------------------------------------------------
# grant_exactly_one_principal
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PRINCIPAL_FIELDS)
def test_grant__exactly_one_principal__accepted(world: World, kind: str) -> None:
    grant = Grant.objects.create(**world.scope_fields("project"), **world.principal(kind))
    assert grant.principal_kind == kind
    assert grant.principal == world.principals[kind][0]


@pytest.mark.parametrize(
    "kinds",
    [(), ("user", "group"), ("user", "role"), ("group", "role"), ("user", "group", "role")],
    ids=["none", "user+group", "user+role", "group+role", "all-three"],
)
def test_grant__not_exactly_one_principal__rejected_by_db(
    world: World, kinds: tuple[str, ...]
) -> None:
    principals = {kind: world.principals[kind][0] for kind in kinds}
    with rejected_by_db():
        Grant.objects.create(**world.scope_fields("project"), **principals)
    assert not Grant.objects.exists()


# --------------------------------------------------------------------------------------
# grant_environment_has_project
# --------------------------------------------------------------------------------------


def test_grant__environment_with_its_project__accepted(world: World) -> None:
    grant = Grant.objects.create(**world.scope_fields("environment"), **world.principal("user"))
    assert grant.level == Level.ENVIRONMENT
    assert grant.scope == world.environment


def test_grant__environment_without_project__rejected_by_db(world: World) -> None:
    with rejected_by_db():
        Grant.objects.create(
            organisation=world.organisation,
            environment=world.environment,
            **world.principal("user"),
        )
    assert not Grant.objects.exists()


# --------------------------------------------------------------------------------------
# grant_no_admin_at_organisation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["project", "environment"])
def test_grant__admin_on_project_or_environment__accepted(world: World, level: str) -> None:
    grant = Grant.objects.create(admin=True, **world.scope_fields(level), **world.principal("user"))
    assert grant.admin is True
    assert grant.level == Level(level)


def test_grant__organisation_without_admin__accepted(world: World) -> None:
    grant = Grant.objects.create(**world.scope_fields("organisation"), **world.principal("role"))
    assert grant.level == Level.ORGANISATION
    assert grant.scope == world.organisation


def test_grant__admin_at_organisation__rejected_by_db(world: World) -> None:
    with rejected_by_db():
        Grant.objects.create(
            admin=True, **world.scope_fields("organisation"), **world.principal("user")
        )
    assert not Grant.objects.exists()


# --------------------------------------------------------------------------------------
# One grant per principal and scope: 3 principal kinds × 3 levels = 9 partial unique
# constraints.
# --------------------------------------------------------------------------------------


def test_grant__has_one_unique_constraint_per_principal_kind_and_level() -> None:
    names = {c.name for c in Grant._meta.constraints if c.name.startswith("grant_unique_")}
    assert names == {
        f"grant_unique_{kind}_{level}" for kind in PRINCIPAL_FIELDS for level in LEVELS
    }
    assert len(names) == 9


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", PRINCIPAL_FIELDS)
def test_grant__second_for_same_principal_and_scope__rejected_by_db(
    world: World, kind: str, level: str
) -> None:
    first = Grant.objects.create(**world.scope_fields(level), **world.principal(kind))
    with rejected_by_db():
        Grant.objects.create(**world.scope_fields(level), **world.principal(kind))
    assert list(Grant.objects.all()) == [first]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", PRINCIPAL_FIELDS)
def test_grant__two_principals_of_a_kind_on_one_scope__accepted(
    world: World, kind: str, level: str
) -> None:
    Grant.objects.create(**world.scope_fields(level), **world.principal(kind, 0))
    Grant.objects.create(**world.scope_fields(level), **world.principal(kind, 1))
    assert Grant.objects.count() == 2


@pytest.mark.parametrize("level", ["project", "environment"])
@pytest.mark.parametrize("kind", PRINCIPAL_FIELDS)
def test_grant__same_principal_on_two_scopes_of_a_level__accepted(
    world: World, kind: str, level: str
) -> None:
    Grant.objects.create(**world.scope_fields(level), **world.principal(kind))
    Grant.objects.create(**world.scope_fields(level, other=True), **world.principal(kind))
    assert Grant.objects.count() == 2


@pytest.mark.parametrize("kind", PRINCIPAL_FIELDS)
def test_grant__same_principal_on_each_level_of_one_organisation__accepted(
    world: World, kind: str
) -> None:
    """The partial conditions keep the levels apart: an organisation grant does not collide
    with a project grant, nor a project grant with an environment grant of that project."""
    for level in LEVELS:
        Grant.objects.create(**world.scope_fields(level), **world.principal(kind))
    assert sorted(g.level.value for g in Grant.objects.all()) == sorted(LEVELS)


def test_grant__same_user_in_two_organisations__accepted(world: World) -> None:
    user = world.principals["user"][0]
    other_organisation = f.OrganisationFactory()
    f.MembershipFactory(user=user, organisation=other_organisation)
    Grant.objects.create(organisation=world.organisation, user=user)
    Grant.objects.create(organisation=other_organisation, user=user)
    assert Grant.objects.filter(user=user).count() == 2


# --------------------------------------------------------------------------------------
# grantentry_unique_key, grantentrytag_unique
# --------------------------------------------------------------------------------------


def test_grant_entry__distinct_keys_on_one_grant__accepted(world: World) -> None:
    grant = Grant.objects.create(**world.scope_fields("project"), **world.principal("role"))
    GrantEntry.objects.create(grant=grant, key="VIEW_PROJECT")
    GrantEntry.objects.create(grant=grant, key="DELETE_FEATURE")
    assert sorted(grant.entries.values_list("key", flat=True)) == [
        "DELETE_FEATURE",
        "VIEW_PROJECT",
    ]


def test_grant_entry__same_key_on_two_grants__accepted(world: World) -> None:
    a = Grant.objects.create(**world.scope_fields("project"), **world.principal("role", 0))
    b = Grant.objects.create(**world.scope_fields("project"), **world.principal("role", 1))
    GrantEntry.objects.create(grant=a, key="VIEW_PROJECT")
    GrantEntry.objects.create(grant=b, key="VIEW_PROJECT")
    assert GrantEntry.objects.filter(key="VIEW_PROJECT").count() == 2


def test_grant_entry__same_key_twice_on_one_grant__rejected_by_db(world: World) -> None:
    grant = Grant.objects.create(**world.scope_fields("project"), **world.principal("role"))
    GrantEntry.objects.create(grant=grant, key="VIEW_PROJECT")
    with rejected_by_db():
        GrantEntry.objects.create(grant=grant, key="VIEW_PROJECT")
    assert grant.entries.count() == 1


def test_grant_entry_tag__two_tags_on_one_entry__accepted(world: World) -> None:
    grant = Grant.objects.create(**world.scope_fields("project"), **world.principal("role"))
    entry = GrantEntry.objects.create(grant=grant, key="DELETE_FEATURE")
    a, b = f.TagFactory(project=world.project), f.TagFactory(project=world.project)
    GrantEntryTag.objects.create(entry=entry, tag=a)
    GrantEntryTag.objects.create(entry=entry, tag=b)
    assert set(entry.tags.all()) == {a, b}


def test_grant_entry_tag__same_tag_twice_on_one_entry__rejected_by_db(world: World) -> None:
    grant = Grant.objects.create(**world.scope_fields("project"), **world.principal("role"))
    entry = GrantEntry.objects.create(grant=grant, key="DELETE_FEATURE")
    tag = f.TagFactory(project=world.project)
    GrantEntryTag.objects.create(entry=entry, tag=tag)
    with rejected_by_db():
        GrantEntryTag.objects.create(entry=entry, tag=tag)
    assert entry.entry_tags.count() == 1


# --------------------------------------------------------------------------------------
# GrantEntryTag.tag is RESTRICT: a tag named by a grant entry cannot disappear from under
# it (the entry would silently become untagged and reach every feature: never widen).
# --------------------------------------------------------------------------------------


class TaggedGrant:
    def __init__(self, world: World) -> None:
        self.world = world
        self.tag = f.TagFactory(project=world.project, label="payments")
        self.feature = f.FeatureFactory(project=world.project, tags=[self.tag])
        self.role = world.principals["role"][0]
        self.project_grant = f.grant(self.role, world.project, {"DELETE_FEATURE": [self.tag]})
        self.environment_grant = f.grant(
            self.role, world.environment, {"UPDATE_FEATURE_STATE": [self.tag]}
        )

    def intact(self) -> bool:
        return (
            Tag.objects.filter(pk=self.tag.pk).exists()
            and Grant.objects.filter(
                pk__in=[self.project_grant.pk, self.environment_grant.pk]
            ).count()
            == 2
            and GrantEntryTag.objects.filter(tag=self.tag).count() == 2
            and list(self.feature.tags.all()) == [self.tag]
        )


@pytest.fixture
def tagged(world: World) -> TaggedGrant:
    return TaggedGrant(world)


def test_tag_delete__tag_named_by_grant_entry__restricted_and_everything_intact(
    tagged: TaggedGrant,
) -> None:
    with pytest.raises(RestrictedError):
        tagged.tag.delete()
    assert tagged.intact()


def test_tag_queryset_delete__tag_named_by_grant_entry__restricted_and_everything_intact(
    tagged: TaggedGrant,
) -> None:
    with pytest.raises(RestrictedError):
        Tag.objects.filter(pk=tagged.tag.pk).delete()
    assert tagged.intact()


def test_tag_delete__tag_named_by_no_grant__deleted_and_detached(tagged: TaggedGrant) -> None:
    free = f.TagFactory(project=tagged.world.project)
    tagged.feature.tags.add(free)
    free.delete()
    assert not Tag.objects.filter(pk=free.pk).exists()
    assert tagged.intact()


def test_project_delete__with_tag_named_by_its_grants__deletes_grants_and_tags(
    tagged: TaggedGrant,
) -> None:
    world = tagged.world
    survivor = Grant.objects.create(
        organisation=world.organisation, project=world.other_project, role=tagged.role
    )
    world.project.delete()
    assert not Project.objects.filter(pk=world.project.pk).exists()
    assert not Tag.objects.filter(pk=tagged.tag.pk).exists()
    assert not Environment.objects.filter(project_id=world.project.pk).exists()
    assert not Feature.objects.filter(pk=tagged.feature.pk).exists()
    assert list(Grant.objects.all()) == [survivor]
    assert not GrantEntry.objects.filter(grant__project_id=world.project.pk).exists()
    assert not GrantEntryTag.objects.exists()
    assert Role.objects.filter(pk=tagged.role.pk).exists()


def test_organisation_delete__with_tag_named_by_its_grants__deletes_everything(
    tagged: TaggedGrant,
) -> None:
    tagged.world.organisation.delete()
    assert not Organisation.objects.filter(pk=tagged.world.organisation.pk).exists()
    assert not Tag.objects.exists()
    assert not Grant.objects.exists()
    assert not GrantEntryTag.objects.exists()


def test_role_delete__then_its_tag__both_deleted(tagged: TaggedGrant) -> None:
    tagged.role.delete()
    assert not Grant.objects.exists()
    tagged.tag.delete()
    assert not Tag.objects.filter(pk=tagged.tag.pk).exists()


def test_environment_delete__deletes_its_grant_and_keeps_the_tag(tagged: TaggedGrant) -> None:
    tagged.world.environment.delete()
    assert list(Grant.objects.all()) == [tagged.project_grant]
    assert Tag.objects.filter(pk=tagged.tag.pk).exists()
    assert GrantEntryTag.objects.filter(tag=tagged.tag).count() == 1
    with pytest.raises(RestrictedError):
        tagged.tag.delete()
