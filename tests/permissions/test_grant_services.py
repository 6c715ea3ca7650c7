"""Validation and writes of grants (permissions.services, docs/PERMISSIONS.md "The catalogue", "Who may change grants").

Every rule has a case that is accepted and one that is rejected. The rules on entries hold
on every write path, so they run against both `grant_create` and `grant_update`; a rejected
write changes nothing (no grant, no entry, no tag link, no audit entry)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditLogEntry
from permissions.catalogue import CATALOGUE, TAG_SUPPORTED_KEYS, Level
from permissions.models import Grant, GrantEntry, GrantEntryTag
from permissions.services import (
    EntryInput,
    grant_create,
    grant_delete,
    grant_snapshot,
    grant_update,
    role_organisation_permissions_set,
)
from tests import factories as f
from tests.support.worlds import ScopeTree

pytestmark = pytest.mark.django_db
E = EntryInput


class World(ScopeTree):
    """The scope tree, an admin, tags of the first project (and a tag of the same name in the
    other), one principal of each kind, and another organisation."""

    def __init__(self) -> None:
        super().__init__()
        self.admin = f.member(self.organisation, admin=True)
        self.payments = f.TagFactory(project=self.project, label="payments")
        self.growth = f.TagFactory(project=self.project, label="growth")
        self.foreign_tag = f.TagFactory(project=self.other_project, label="payments")
        self.user = f.member(self.organisation)
        self.group = f.UserGroupFactory(organisation=self.organisation)
        self.role = f.RoleFactory(organisation=self.organisation)
        self.other_organisation = f.OrganisationFactory()

    def principal(self, kind: str) -> Any:
        return {"user": self.user, "group": self.group, "role": self.role}[kind]


@pytest.fixture
def w() -> World:
    return World()


def state() -> tuple[int, int, int, int]:
    """Everything a grant write can touch."""
    return (
        Grant.objects.count(),
        GrantEntry.objects.count(),
        GrantEntryTag.objects.count(),
        AuditLogEntry.objects.count(),
    )


def entries_of(grant: Grant) -> dict[str, list[int]]:
    return {
        entry.key: sorted(et.tag_id for et in entry.entry_tags.all())
        for entry in GrantEntry.objects.filter(grant=grant).prefetch_related("entry_tags")
    }


class Writer:
    """One write path for a grant's entries: `create` makes the grant with them, `update`
    first makes an empty grant (outside what is checked) and then writes them into it."""

    def __init__(self, path: str, actor: Any) -> None:
        self.path = path
        self.actor = actor

    def _target(self, principal: Any, scope: Any) -> Grant | None:
        if self.path == "create":
            return None
        return grant_create(principal=principal, scope=scope, actor=self.actor)

    def __call__(
        self, *, principal: Any, scope: Any, entries: Sequence[EntryInput] = (), admin: bool = False
    ) -> Grant:
        target = self._target(principal, scope)
        if target is None:
            return grant_create(
                principal=principal, scope=scope, entries=entries, admin=admin, actor=self.actor
            )
        return grant_update(grant=target, entries=entries, admin=admin, actor=self.actor)

    def reject(
        self, *, principal: Any, scope: Any, entries: Sequence[EntryInput] = (), admin: bool = False
    ) -> dict[str, list[str]]:
        """Expect a ValidationError and that nothing was written; return its messages."""
        target = self._target(principal, scope)
        before = state()
        snapshot = grant_snapshot(target) if target is not None else None
        with pytest.raises(ValidationError) as excinfo:
            if target is None:
                grant_create(
                    principal=principal,
                    scope=scope,
                    entries=entries,
                    admin=admin,
                    actor=self.actor,
                )
            else:
                grant_update(grant=target, entries=entries, admin=admin, actor=self.actor)
        assert state() == before
        if target is not None:
            target.refresh_from_db()
            assert grant_snapshot(target) == snapshot
        return excinfo.value.message_dict


@pytest.fixture(params=["create", "update"])
def write(request: Any, w: World) -> Writer:
    return Writer(request.param, w.admin)


def mentions(messages: list[str], word: str) -> bool:
    return any(word in message for message in messages)


# --------------------------------------------------------------------------------------
# Tags only on keys that support them; the error names every offending key.
# --------------------------------------------------------------------------------------


def test_grant_write__tagged_unsupported_keys__400_names_every_key(w: World, write: Writer) -> None:
    errors = write.reject(
        principal=w.role,
        scope=w.project,
        entries=[
            E("VIEW_PROJECT", (w.payments.pk,)),
            E("CREATE_FEATURE", (w.growth.pk,)),
            E("DELETE_FEATURE", (w.payments.pk,)),
        ],
    )
    assert list(errors) == ["permissions"]
    assert mentions(errors["permissions"], "VIEW_PROJECT")
    assert mentions(errors["permissions"], "CREATE_FEATURE")
    assert not mentions(errors["permissions"], "DELETE_FEATURE")


def test_grant_write__tagged_view_environment__400_names_key(w: World, write: Writer) -> None:
    errors = write.reject(
        principal=w.role,
        scope=w.environment,
        entries=[E("VIEW_ENVIRONMENT", (w.payments.pk,)), E("UPDATE_FEATURE_STATE")],
    )
    assert mentions(errors["permissions"], "VIEW_ENVIRONMENT")
    assert not mentions(errors["permissions"], "UPDATE_FEATURE_STATE")


@pytest.mark.parametrize("key", sorted(TAG_SUPPORTED_KEYS))
def test_grant_write__tagged_supported_key_on_role__stored_with_tags(
    w: World, write: Writer, key: str
) -> None:
    scope = w.scope(CATALOGUE[key].level.value)
    grant = write(principal=w.role, scope=scope, entries=[E(key, (w.payments.pk, w.growth.pk))])
    assert entries_of(grant) == {key: sorted([w.payments.pk, w.growth.pk])}


def test_grant_write__tag_listed_twice_in_one_entry__stored_once(w: World, write: Writer) -> None:
    grant = write(
        principal=w.role,
        scope=w.project,
        entries=[E("DELETE_FEATURE", (w.payments.pk, w.payments.pk))],
    )
    assert entries_of(grant) == {"DELETE_FEATURE": [w.payments.pk]}


def test_grant_write__admin_as_an_entry_key__400_unknown_key(w: World, write: Writer) -> None:
    """`admin` is a property of the grant, never an entry, so it can never be tagged."""
    errors = write.reject(principal=w.role, scope=w.project, entries=[E("ADMIN", (w.payments.pk,))])
    assert mentions(errors["permissions"], "ADMIN")


# --------------------------------------------------------------------------------------
# Keys: known, of the grant's level, each once.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["NOT_A_KEY", "view_project", ""])
def test_grant_write__unknown_key__400_names_key(w: World, write: Writer, key: str) -> None:
    errors = write.reject(principal=w.user, scope=w.project, entries=[E(key), E("VIEW_PROJECT")])
    assert list(errors) == ["permissions"]
    assert mentions(errors["permissions"], repr(key))


@pytest.mark.parametrize(
    ("key", "level"),
    [
        ("UPDATE_FEATURE_STATE", "project"),
        ("VIEW_ENVIRONMENT", "project"),
        ("CREATE_PROJECT", "project"),
        ("CREATE_PROJECT", "environment"),
        ("VIEW_PROJECT", "environment"),
        ("DELETE_FEATURE", "environment"),
        ("VIEW_PROJECT", "organisation"),
        ("APPROVE_CHANGE_REQUEST", "organisation"),
    ],
)
def test_grant_write__key_of_another_level__400_names_key(
    w: World, write: Writer, key: str, level: str
) -> None:
    errors = write.reject(principal=w.role, scope=w.scope(level), entries=[E(key)])
    assert list(errors) == ["permissions"]
    assert mentions(errors["permissions"], key)


@pytest.mark.parametrize("level", [lv.value for lv in Level])
@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_grant_write__every_key_of_the_level__accepted(
    w: World, write: Writer, kind: str, level: str
) -> None:
    keys = [k for k, spec in CATALOGUE.items() if spec.level == level]
    grant = write(principal=w.principal(kind), scope=w.scope(level), entries=[E(k) for k in keys])
    assert entries_of(grant) == {k: [] for k in keys}
    assert grant.level == Level(level)


def test_grant_write__duplicate_key__400_names_key(w: World, write: Writer) -> None:
    errors = write.reject(
        principal=w.role,
        scope=w.environment,
        entries=[
            E("UPDATE_FEATURE_STATE", (w.payments.pk,)),
            E("UPDATE_FEATURE_STATE", (w.growth.pk,)),
        ],
    )
    assert mentions(errors["permissions"], "UPDATE_FEATURE_STATE")


def test_grant_write__no_entries__accepted(w: World, write: Writer) -> None:
    grant = write(principal=w.user, scope=w.project)
    assert entries_of(grant) == {}


# --------------------------------------------------------------------------------------
# Only role grants carry tags, and only tags of the grant's project.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["project", "environment"])
@pytest.mark.parametrize("kind", ["user", "group"])
def test_grant_write__tags_on_user_or_group_grant__400(
    w: World, write: Writer, kind: str, level: str
) -> None:
    key = "DELETE_FEATURE" if level == "project" else "UPDATE_FEATURE_STATE"
    errors = write.reject(
        principal=w.principal(kind), scope=w.scope(level), entries=[E(key, (w.payments.pk,))]
    )
    assert list(errors) == ["permissions"]
    assert mentions(errors["permissions"], key)


@pytest.mark.parametrize("kind", ["user", "group"])
def test_grant_write__untagged_tag_supported_key_on_user_or_group__accepted(
    w: World, write: Writer, kind: str
) -> None:
    grant = write(
        principal=w.principal(kind), scope=w.environment, entries=[E("UPDATE_FEATURE_STATE")]
    )
    assert entries_of(grant) == {"UPDATE_FEATURE_STATE": []}


@pytest.mark.parametrize("level", ["project", "environment"])
def test_grant_write__tag_of_another_project__400_names_tag(
    w: World, write: Writer, level: str
) -> None:
    key = "DELETE_FEATURE" if level == "project" else "UPDATE_FEATURE_STATE"
    errors = write.reject(
        principal=w.role,
        scope=w.scope(level),
        entries=[E(key, (w.payments.pk, w.foreign_tag.pk))],
    )
    assert list(errors) == ["permissions"]
    assert mentions(errors["permissions"], str(w.foreign_tag.pk))


def test_grant_write__tag_of_grant_project_on_environment_grant__accepted(
    w: World, write: Writer
) -> None:
    grant = write(
        principal=w.role,
        scope=w.other_environment,
        entries=[E("APPROVE_CHANGE_REQUEST", (w.growth.pk,))],
    )
    assert entries_of(grant) == {"APPROVE_CHANGE_REQUEST": [w.growth.pk]}


def test_grant_write__tag_id_that_does_not_exist__400(w: World, write: Writer) -> None:
    missing = w.foreign_tag.pk + 1000
    errors = write.reject(
        principal=w.role, scope=w.project, entries=[E("DELETE_FEATURE", (missing,))]
    )
    assert mentions(errors["permissions"], str(missing))


def test_grant_write__tags_on_organisation_role_grant__400(w: World, write: Writer) -> None:
    errors = write.reject(
        principal=w.role, scope=w.organisation, entries=[E("CREATE_PROJECT", (w.payments.pk,))]
    )
    assert mentions(errors["permissions"], "CREATE_PROJECT")


# --------------------------------------------------------------------------------------
# admin: on project and environment grants only.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_grant_write__admin_at_organisation__400_on_admin(
    w: World, write: Writer, kind: str
) -> None:
    errors = write.reject(principal=w.principal(kind), scope=w.organisation, admin=True)
    assert list(errors) == ["admin"]


@pytest.mark.parametrize("level", ["project", "environment"])
@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_grant_write__admin_on_project_or_environment__accepted(
    w: World, write: Writer, kind: str, level: str
) -> None:
    grant = write(principal=w.principal(kind), scope=w.scope(level), admin=True)
    grant.refresh_from_db()
    assert grant.admin is True


# --------------------------------------------------------------------------------------
# grant_create: principal of the organisation, one grant per principal and scope.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["organisation", "project", "environment"])
@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_grant_create__second_for_same_principal_and_scope__400_on_principal_field(
    w: World, kind: str, level: str
) -> None:
    principal, scope = w.principal(kind), w.scope(level)
    first = grant_create(principal=principal, scope=scope, entries=[], actor=w.admin)
    before = state()
    with pytest.raises(ValidationError) as excinfo:
        grant_create(principal=principal, scope=scope, entries=[], actor=w.admin)
    assert list(excinfo.value.message_dict) == [kind]
    assert state() == before
    assert list(Grant.objects.all()) == [first]


@pytest.mark.parametrize("level", ["project", "environment"])
@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_grant_create__same_principal_on_two_scopes_of_a_level__accepted(
    w: World, kind: str, level: str
) -> None:
    principal = w.principal(kind)
    grant_create(principal=principal, scope=w.scope(level), actor=w.admin)
    grant_create(principal=principal, scope=w.scope(level, other=True), actor=w.admin)
    assert Grant.objects.filter(**{kind: principal}).count() == 2


@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_grant_create__same_principal_on_every_level__accepted(w: World, kind: str) -> None:
    for level in ("organisation", "project", "environment"):
        grant_create(principal=w.principal(kind), scope=w.scope(level), actor=w.admin)
    assert Grant.objects.count() == 3


@pytest.mark.parametrize("level", ["organisation", "project", "environment"])
def test_grant_create__user_not_a_member__400_on_user(w: World, level: str) -> None:
    outsider = f.UserFactory()
    f.MembershipFactory(user=outsider, organisation=w.other_organisation)
    before = state()
    with pytest.raises(ValidationError) as excinfo:
        grant_create(principal=outsider, scope=w.scope(level), entries=[], actor=w.admin)
    assert list(excinfo.value.message_dict) == ["user"]
    assert state() == before


@pytest.mark.parametrize("kind", ["group", "role"])
def test_grant_create__group_or_role_of_another_organisation__400_on_field(
    w: World, kind: str
) -> None:
    factory = f.UserGroupFactory if kind == "group" else f.RoleFactory
    foreign = factory(organisation=w.other_organisation)
    before = state()
    with pytest.raises(ValidationError) as excinfo:
        grant_create(principal=foreign, scope=w.project, entries=[], actor=w.admin)
    assert list(excinfo.value.message_dict) == [kind]
    assert state() == before


@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_grant_create__scope_in_another_organisation__400_on_principal_field(
    w: World, kind: str
) -> None:
    foreign_project = f.ProjectFactory(organisation=w.other_organisation)
    with pytest.raises(ValidationError) as excinfo:
        grant_create(principal=w.principal(kind), scope=foreign_project, actor=w.admin)
    assert list(excinfo.value.message_dict) == [kind]
    assert not Grant.objects.exists()


def test_grant_create__success__writes_entries_tags_and_one_audit_entry(w: World) -> None:
    grant = grant_create(
        principal=w.role,
        scope=w.environment,
        entries=[
            E("UPDATE_FEATURE_STATE", (w.payments.pk,)),
            E("CREATE_CHANGE_REQUEST", (w.payments.pk, w.growth.pk)),
            E("VIEW_ENVIRONMENT"),
        ],
        admin=False,
        actor=w.admin,
    )
    assert (grant.organisation, grant.project, grant.environment, grant.role) == (
        w.organisation,
        w.project,
        w.environment,
        w.role,
    )
    assert entries_of(grant) == {
        "CREATE_CHANGE_REQUEST": sorted([w.payments.pk, w.growth.pk]),
        "UPDATE_FEATURE_STATE": [w.payments.pk],
        "VIEW_ENVIRONMENT": [],
    }
    (entry,) = AuditLogEntry.objects.all()
    assert (entry.action, entry.object_type, entry.object_id) == ("created", "grant", str(grant.pk))
    assert (entry.organisation_id, entry.project_id, entry.environment_id) == (
        w.organisation.pk,
        w.project.pk,
        w.environment.pk,
    )
    assert entry.actor_user == w.admin
    assert entry.before is None
    assert entry.after == {
        "principal": {"type": "role", "id": w.role.pk},
        "organisation": w.organisation.pk,
        "project": w.project.pk,
        "environment": w.environment.pk,
        "admin": False,
        "permissions": [
            {
                "permission_key": "CREATE_CHANGE_REQUEST",
                "tags": sorted([w.payments.pk, w.growth.pk]),
            },
            {"permission_key": "UPDATE_FEATURE_STATE", "tags": [w.payments.pk]},
            {"permission_key": "VIEW_ENVIRONMENT", "tags": []},
        ],
    }


# --------------------------------------------------------------------------------------
# grant_update
# --------------------------------------------------------------------------------------


@pytest.fixture
def role_grant(w: World) -> Grant:
    return grant_create(
        principal=w.role,
        scope=w.project,
        entries=[E("VIEW_PROJECT"), E("DELETE_FEATURE", (w.payments.pk, w.growth.pk))],
        actor=w.admin,
    )


def test_grant_update__same_entries_written_back__no_audit_and_nothing_changes(
    w: World, role_grant: Grant
) -> None:
    entry_ids = sorted(GrantEntry.objects.filter(grant=role_grant).values_list("pk", flat=True))
    updated_at = Grant.objects.get(pk=role_grant.pk).updated_at
    before = state()
    grant_update(
        grant=role_grant,
        # Another order, and the tags listed the other way round: still the same grant.
        entries=[E("DELETE_FEATURE", (w.growth.pk, w.payments.pk)), E("VIEW_PROJECT")],
        admin=False,
        actor=w.admin,
    )
    assert state() == before
    assert (
        sorted(GrantEntry.objects.filter(grant=role_grant).values_list("pk", flat=True))
        == entry_ids
    )
    assert Grant.objects.get(pk=role_grant.pk).updated_at == updated_at


def test_grant_update__nothing_given__no_audit(w: World, role_grant: Grant) -> None:
    before = state()
    grant_update(grant=role_grant, actor=w.admin)
    assert state() == before


def test_grant_update__replacing_entries__stored_and_one_audit_entry(
    w: World, role_grant: Grant
) -> None:
    old_snapshot = grant_snapshot(role_grant)
    audit_before = AuditLogEntry.objects.count()
    grant_update(
        grant=role_grant,
        entries=[E("DELETE_FEATURE", (w.growth.pk,)), E("CREATE_FEATURE")],
        actor=w.admin,
    )
    assert entries_of(role_grant) == {"CREATE_FEATURE": [], "DELETE_FEATURE": [w.growth.pk]}
    assert AuditLogEntry.objects.count() == audit_before + 1
    entry = AuditLogEntry.objects.filter(action="updated").get()
    assert (entry.object_type, entry.object_id) == ("grant", str(role_grant.pk))
    assert entry.before == old_snapshot
    assert entry.after == grant_snapshot(role_grant)
    assert entry.after["permissions"] == [
        {"permission_key": "CREATE_FEATURE", "tags": []},
        {"permission_key": "DELETE_FEATURE", "tags": [w.growth.pk]},
    ]


def test_grant_update__empty_entries__removes_every_entry(w: World, role_grant: Grant) -> None:
    grant_update(grant=role_grant, entries=[], actor=w.admin)
    assert entries_of(role_grant) == {}
    assert not GrantEntryTag.objects.exists()
    assert AuditLogEntry.objects.filter(action="updated").count() == 1


def test_grant_update__admin_only__keeps_entries_and_one_audit_entry(
    w: World, role_grant: Grant
) -> None:
    entries = entries_of(role_grant)
    grant_update(grant=role_grant, admin=True, actor=w.admin)
    role_grant.refresh_from_db()
    assert role_grant.admin is True
    assert entries_of(role_grant) == entries
    entry = AuditLogEntry.objects.filter(action="updated").get()
    assert (entry.before["admin"], entry.after["admin"]) == (False, True)


def test_grant_update__rejected__entries_and_tags_intact(w: World, role_grant: Grant) -> None:
    entries = entries_of(role_grant)
    before = state()
    with pytest.raises(ValidationError):
        grant_update(
            grant=role_grant,
            entries=[E("VIEW_PROJECT", (w.payments.pk,)), E("DELETE_FEATURE")],
            actor=w.admin,
        )
    assert state() == before
    assert entries_of(role_grant) == entries


def test_grant_delete__removes_grant_entries_tags_and_writes_one_audit_entry(
    w: World, role_grant: Grant
) -> None:
    snapshot, grant_id = grant_snapshot(role_grant), role_grant.pk
    grant_delete(grant=role_grant, actor=w.admin)
    assert not Grant.objects.exists()
    assert not GrantEntry.objects.exists()
    assert not GrantEntryTag.objects.exists()
    entry = AuditLogEntry.objects.filter(action="deleted").get()
    assert (entry.object_type, entry.object_id) == ("grant", str(grant_id))
    assert entry.before == snapshot
    assert entry.after is None


# --------------------------------------------------------------------------------------
# role_organisation_permissions_set: PUT semantics for a role's organisation keys.
# --------------------------------------------------------------------------------------


def org_grant_keys(role: Any) -> list[str] | None:
    grant = Grant.objects.filter(role=role, project__isnull=True).first()
    return None if grant is None else sorted(grant.entries.values_list("key", flat=True))


def test_role_organisation_permissions_set__no_grant_yet__creates_it(w: World) -> None:
    grant = role_organisation_permissions_set(role=w.role, keys=["CREATE_PROJECT"], actor=w.admin)
    assert grant is not None
    assert grant.level == Level.ORGANISATION
    assert org_grant_keys(w.role) == ["CREATE_PROJECT"]
    assert list(AuditLogEntry.objects.values_list("action", flat=True)) == ["created"]


def test_role_organisation_permissions_set__other_keys__replaces_them(w: World) -> None:
    first = role_organisation_permissions_set(role=w.role, keys=["CREATE_PROJECT"], actor=w.admin)
    second = role_organisation_permissions_set(
        role=w.role, keys=["MANAGE_USER_GROUPS", "CREATE_PROJECT"], actor=w.admin
    )
    assert second is not None and first is not None and second.pk == first.pk
    assert org_grant_keys(w.role) == ["CREATE_PROJECT", "MANAGE_USER_GROUPS"]
    assert sorted(AuditLogEntry.objects.values_list("action", flat=True)) == [
        "created",
        "updated",
    ]


def test_role_organisation_permissions_set__same_keys__no_audit(w: World) -> None:
    role_organisation_permissions_set(
        role=w.role, keys=["CREATE_PROJECT", "MANAGE_USER_GROUPS"], actor=w.admin
    )
    before = state()
    role_organisation_permissions_set(
        role=w.role, keys=["MANAGE_USER_GROUPS", "CREATE_PROJECT"], actor=w.admin
    )
    assert state() == before


def test_role_organisation_permissions_set__empty__removes_the_grant(w: World) -> None:
    role_organisation_permissions_set(role=w.role, keys=["CREATE_PROJECT"], actor=w.admin)
    assert role_organisation_permissions_set(role=w.role, keys=[], actor=w.admin) is None
    assert org_grant_keys(w.role) is None
    assert sorted(AuditLogEntry.objects.values_list("action", flat=True)) == [
        "created",
        "deleted",
    ]


def test_role_organisation_permissions_set__empty_without_grant__nothing(w: World) -> None:
    before = state()
    assert role_organisation_permissions_set(role=w.role, keys=[], actor=w.admin) is None
    assert state() == before


def test_role_organisation_permissions_set__leaves_project_grants_alone(w: World) -> None:
    project_grant = grant_create(
        principal=w.role, scope=w.project, entries=[E("VIEW_PROJECT")], actor=w.admin
    )
    role_organisation_permissions_set(role=w.role, keys=["CREATE_PROJECT"], actor=w.admin)
    role_organisation_permissions_set(role=w.role, keys=[], actor=w.admin)
    assert list(Grant.objects.all()) == [project_grant]
    assert entries_of(project_grant) == {"VIEW_PROJECT": []}


@pytest.mark.parametrize("key", ["VIEW_PROJECT", "UPDATE_FEATURE_STATE", "NOT_A_KEY"])
def test_role_organisation_permissions_set__not_an_organisation_key__400_names_key(
    w: World, key: str
) -> None:
    role_organisation_permissions_set(role=w.role, keys=["CREATE_PROJECT"], actor=w.admin)
    before = state()
    with pytest.raises(ValidationError) as excinfo:
        role_organisation_permissions_set(
            role=w.role, keys=["MANAGE_USER_GROUPS", key], actor=w.admin
        )
    assert mentions(excinfo.value.message_dict["permissions"], key)
    assert state() == before
    assert org_grant_keys(w.role) == ["CREATE_PROJECT"]
