"""Permissions as code, the domain (permissions/documents/): export, plan, apply."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from django.db import connection

from audit.models import AuditLogEntry
from organisations.models import MembershipRole, OrganisationMembership, Role, UserGroup
from permission_documents import documents
from permissions import engine
from permissions.catalogue import (
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    MANAGE_SEGMENTS,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.models import Grant
from projects.models import Tag
from tests import factories as f
from tests.support.documents_setup import (
    Acme,
    build_acme,
    build_skeleton,
    decisions,
    impact_from_decisions,
    impact_rows,
)

pytestmark = pytest.mark.django_db

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "permissions-document.schema.json"


@pytest.fixture
def acme(db: Any) -> Acme:
    return build_acme()


def export(acme: Acme) -> dict[str, Any]:
    return documents.permissions_document_export(organisation=acme.organisation)


ALICE: Any = object()  # the default actor: acme.alice (None is the system)


def plan(acme: Acme, document: Any, actor: Any = ALICE) -> documents.Plan:
    return documents.permissions_document_plan(
        organisation=acme.organisation,
        document=document,
        actor=acme.alice if actor is ALICE else actor,
    )


def apply(acme: Acme, document: Any, actor: Any = ALICE) -> documents.Plan:
    return documents.permissions_document_apply(
        organisation=acme.organisation,
        document=document,
        actor=acme.alice if actor is ALICE else actor,
    )


def errors_of(acme: Acme, document: Any, actor: Any = ALICE) -> dict[str, list[str]]:
    """The path-keyed errors of applying `document`, checking that nothing changed."""
    before, entries = export(acme), AuditLogEntry.objects.count()
    with pytest.raises(documents.DocumentInvalid) as caught:
        apply(acme, document, actor)
    assert export(acme) == before
    assert AuditLogEntry.objects.count() == entries
    return caught.value.errors


def role_of(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in document["roles"] if r["name"] == name)


def index_of(items: list[dict[str, Any]], field: str, value: str) -> int:
    return next(i for i, item in enumerate(items) if item[field] == value)


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------


def test_export__small_organisation__the_whole_document_by_names() -> None:
    organisation = f.OrganisationFactory(name="Tiny")
    zoe = f.member(organisation, admin=True, email="zoe@example.com")
    adam = f.member(organisation, email="Adam@example.com")
    web = f.ProjectFactory(organisation=organisation, name="Web")
    prod = f.EnvironmentFactory(project=web, name="Prod")
    ui = f.TagFactory(project=web, label="ui")
    f.TagFactory(project=web, label="pci", is_restricted=True)
    group = f.UserGroupFactory(organisation=organisation, name="team", users=[zoe, adam])
    role = f.RoleFactory(organisation=organisation, name="Editors", description="Edit")
    f.RoleAssignmentFactory(role=role, group=group)
    f.RoleAssignmentFactory(role=role, user=adam)
    f.grant(role, prod, {UPDATE_FEATURE_STATE: [ui], VIEW_ENVIRONMENT: []})
    f.grant(adam, web, [MANAGE_SEGMENTS, VIEW_PROJECT], admin=True)
    f.grant(group, organisation, [CREATE_PROJECT])
    f.grant(zoe, web, [])  # empty: holds nothing, not exported

    document = documents.permissions_document_export(organisation=organisation)

    assert document == {
        "group_grants": [
            {"environments": [], "group": "team", "organisation": [CREATE_PROJECT], "projects": []}
        ],
        "groups": [
            {
                "members": ["Adam@example.com", "zoe@example.com"],
                "name": "team",
                "roles": ["Editors"],
            }
        ],
        "members": [
            {"email": "Adam@example.com", "role": "USER"},
            {"email": "zoe@example.com", "role": "ADMIN"},
        ],
        "organisation": "Tiny",
        "restricted_tags": [{"project": "Web", "tags": ["pci"]}],
        "roles": [
            {
                "api_keys": [],
                "description": "Edit",
                "environments": [
                    {
                        "admin": False,
                        "environment": "Prod",
                        "permissions": {UPDATE_FEATURE_STATE: ["ui"], VIEW_ENVIRONMENT: []},
                        "project": "Web",
                    }
                ],
                "groups": ["team"],
                "name": "Editors",
                "organisation": [],
                "projects": [],
                "users": ["Adam@example.com"],
            }
        ],
        "users": [
            {
                "email": "Adam@example.com",
                "environments": [],
                "organisation": [],
                "projects": [
                    {
                        "admin": True,
                        "permissions": {MANAGE_SEGMENTS: [], VIEW_PROJECT: []},
                        "project": "Web",
                    }
                ],
            }
        ],
    }


def test_export__every_list_sorted_and_every_key_sorted(acme: Acme) -> None:
    document = export(acme)

    assert json.dumps(document) == json.dumps(document, sort_keys=True)
    assert [m["email"] for m in document["members"]] == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    assert [g["name"] for g in document["groups"]] == ["Ops", "Readers"]
    assert [r["name"] for r in document["roles"]] == ["Payments", "Viewers"]
    payments = role_of(document, "Payments")
    assert payments["environments"][0]["permissions"][UPDATE_FEATURE_STATE] == ["payments", "ui"]
    assert [(e["project"], e["environment"]) for e in document["users"][0]["environments"]] == [
        ("Mobile", "Production")
    ]


def test_export__is_stable_whatever_the_creation_order(acme: Acme) -> None:
    """Two exports of the same state are byte-identical, also after rows are re-created in
    another order (ids do not leak into the order)."""
    first = json.dumps(export(acme))
    ops = UserGroup.objects.get(organisation=acme.organisation, name="Ops")
    users = sorted(ops.users.all(), key=lambda u: u.pk, reverse=True)
    ops.users.clear()
    for user in users:  # membership rows now in the other order
        ops.users.add(user)

    assert json.dumps(export(acme)) == first


def test_export__matches_the_json_schema_in_docs(acme: Acme) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)

    jsonschema.Draft202012Validator(schema).validate(export(acme))


def test_json_schema__rejects_what_the_reader_rejects(acme: Acme) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    document = export(acme)
    document["roles"][0]["colour"] = "red"
    del document["restricted_tags"]

    assert not validator.is_valid(document)


def test_export__leaves_out_non_members_grants(acme: Acme) -> None:
    f.grant(acme.erin, acme.web, [VIEW_PROJECT])  # an orphan row: membership gates it anyway

    assert "erin@example.com" not in json.dumps(export(acme))


# --------------------------------------------------------------------------------------
# Apply: no-ops
# --------------------------------------------------------------------------------------


def test_apply__exported_document__no_change_no_audit_entry(acme: Acme) -> None:
    document, entries = export(acme), AuditLogEntry.objects.count()

    result = apply(acme, document)

    assert result.changes == ()
    assert not result.impact
    assert AuditLogEntry.objects.count() == entries
    assert export(acme) == document


def test_plan__exported_document__no_change(acme: Acme) -> None:
    result = plan(acme, export(acme))

    assert result.as_dict() == {
        "changes": [],
        "impact": {"gained": [], "lost": [], "summary": [], "truncated": False},
    }


def test_apply__exported_document__calls_no_service(
    acme: Acme, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = export(acme)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a service was called")

    for module, name in (
        (documents.organisation_services, "membership_update"),
        (documents.organisation_services, "group_update"),
        (documents.organisation_services, "role_update"),
        (documents.grant_services, "grant_update"),
        (documents.grant_services, "role_organisation_permissions_set"),
        (documents.project_services, "tag_update"),
    ):
        monkeypatch.setattr(module, name, refuse)

    assert apply(acme, document).changes == ()


def test_apply__same_document_twice__second_is_a_no_op(acme: Acme) -> None:
    document = export(acme)
    role_of(document, "Viewers")["description"] = "Read only"
    document["members"].append({"email": "erin@example.com", "role": "USER"})

    first = apply(acme, document)
    entries = AuditLogEntry.objects.count()
    second = apply(acme, document)

    assert len(first.changes) == 2
    assert second.changes == ()
    assert AuditLogEntry.objects.count() == entries


def test_apply__existing_empty_grant_not_listed__kept_and_export_apply_is_a_no_op(
    acme: Acme,
) -> None:
    empty = f.grant(acme.dave, acme.web, [])

    assert apply(acme, export(acme)).changes == ()
    assert Grant.objects.filter(pk=empty.pk).exists()


def test_apply__listed_empty_grant__creates_nothing(acme: Acme) -> None:
    document = export(acme)
    document["users"].append(
        {"email": "dave@example.com", "projects": [{"project": "Web", "permissions": {}}]}
    )

    assert apply(acme, document).changes == ()
    assert not Grant.objects.filter(user=acme.dave).exists()


# --------------------------------------------------------------------------------------
# Reproducing an organisation
# --------------------------------------------------------------------------------------


def test_apply__export_to_fresh_organisation__reproduces_every_decision(acme: Acme) -> None:
    """Export from Acme, apply to a new organisation with the same users, projects,
    environments, tags and features: the engine decides the same for every member × key ×
    scope × feature (and for the API key), and the two documents are equal."""
    fresh = f.OrganisationFactory(name="Fresh")
    f.MembershipFactory(organisation=fresh, user=acme.alice, role=MembershipRole.ADMIN)
    build_skeleton(fresh)
    f.APIKeyFactory(organisation=fresh, name="ci")
    document = export(acme)
    document["organisation"] = "Fresh"

    result = documents.permissions_document_apply(
        organisation=fresh, document=document, actor=acme.alice
    )

    assert result.changes
    reproduced = documents.permissions_document_export(organisation=fresh)
    assert reproduced == document
    expected, actual = decisions(acme.organisation), decisions(fresh)
    assert len(expected) == 360  # 4 members and 1 API key × 72 (key, scope, feature)
    assert actual == expected
    assert any(expected.values()) and not all(expected.values())


def test_apply__to_fresh_organisation__audited_with_the_actor(acme: Acme) -> None:
    fresh = f.OrganisationFactory(name="Fresh")
    f.MembershipFactory(organisation=fresh, user=acme.alice, role=MembershipRole.ADMIN)
    build_skeleton(fresh)
    f.APIKeyFactory(organisation=fresh, name="ci")
    document = export(acme)
    document["organisation"] = "Fresh"

    result = documents.permissions_document_apply(
        organisation=fresh, document=document, actor=acme.alice
    )

    entries = AuditLogEntry.objects.filter(organisation=fresh)
    assert entries.count() == len(result.changes)
    assert set(entries.values_list("actor_user", flat=True)) == {acme.alice.pk}
    assert set(entries.values_list("object_type", flat=True)) == {
        "organisation_membership",
        "user_group",
        "role",
        "role_assignment",
        "grant",
        "tag",
    }


# --------------------------------------------------------------------------------------
# Plan: changes and impact
# --------------------------------------------------------------------------------------


def edited(acme: Acme) -> dict[str, Any]:
    """A document touching every kind of object: a member added, one removed, one promoted,
    a group emptied, a role created, one renamed by case, grants changed, a restriction moved."""
    document = export(acme)
    document["members"] = [
        {"email": "alice@example.com", "role": "ADMIN"},
        {"email": "bob@example.com", "role": "ADMIN"},
        {"email": "dave@example.com", "role": "USER"},
        {"email": "ERIN@example.com", "role": "USER"},
    ]
    document["groups"][index_of(document["groups"], "name", "Ops")]["members"] = ["bob@example.com"]
    document["users"] = [
        {
            "email": "erin@example.com",
            "environments": [],
            "organisation": [],
            "projects": [{"admin": False, "permissions": {VIEW_PROJECT: []}, "project": "Mobile"}],
        }
    ]
    viewers = role_of(document, "Viewers")
    viewers["name"] = "viewers"
    viewers["users"] = ["erin@example.com"]
    viewers["groups"] = []
    document["groups"][index_of(document["groups"], "name", "Readers")]["roles"] = []
    payments = role_of(document, "Payments")
    payments["environments"][0]["permissions"][UPDATE_FEATURE_STATE] = ["payments"]
    payments["api_keys"] = []
    document["roles"].append(
        {
            "name": "QA",
            "environments": [
                {
                    "project": "Web",
                    "environment": "Staging",
                    "permissions": {UPDATE_FEATURE_STATE: ["beta"]},
                }
            ],
        }
    )
    document["restricted_tags"] = [{"project": "Web", "tags": ["beta"]}]
    return document


def test_plan__edited_document__ordered_changes_in_document_terms(acme: Acme) -> None:
    result = plan(acme, edited(acme))

    assert [c.as_dict() for c in result.changes] == [
        {
            "action": "update",
            "object_type": "organisation_membership",
            "name": 'member "bob@example.com"',
            "before": {"email": "bob@example.com", "role": "USER"},
            "after": {"email": "bob@example.com", "role": "ADMIN"},
        },
        {
            "action": "create",
            "object_type": "organisation_membership",
            "name": 'member "erin@example.com"',
            "before": None,
            "after": {"email": "erin@example.com", "role": "USER"},
        },
        {
            "action": "delete",
            "object_type": "organisation_membership",
            "name": 'member "carol@example.com"',
            "before": {"email": "carol@example.com", "role": "USER"},
            "after": None,
        },
        {
            "action": "create",
            "object_type": "role",
            "name": 'role "QA"',
            "before": None,
            "after": {"name": "QA", "description": ""},
        },
        {
            "action": "update",
            "object_type": "role",
            "name": 'role "viewers"',
            "before": {"name": "Viewers", "description": ""},
            "after": {"name": "viewers", "description": ""},
        },
        {
            "action": "delete",
            "object_type": "role_assignment",
            "name": 'role "Payments" / api key "ci"',
            "before": {"role": "Payments", "api_key": "ci"},
            "after": None,
        },
        {
            "action": "delete",
            "object_type": "role_assignment",
            "name": 'role "viewers" / group "Readers"',
            "before": {"role": "viewers", "group": "Readers"},
            "after": None,
        },
        {
            "action": "create",
            "object_type": "role_assignment",
            "name": 'role "viewers" / user "erin@example.com"',
            "before": None,
            "after": {"role": "viewers", "user": "erin@example.com"},
        },
        {
            "action": "update",
            "object_type": "grant",
            "name": 'role "Payments" / environment "Web"/"Production"',
            "before": {
                "admin": False,
                "permissions": {UPDATE_FEATURE_STATE: ["payments", "ui"], VIEW_ENVIRONMENT: []},
            },
            "after": {
                "admin": False,
                "permissions": {UPDATE_FEATURE_STATE: ["payments"], VIEW_ENVIRONMENT: []},
            },
        },
        {
            "action": "create",
            "object_type": "grant",
            "name": 'role "QA" / environment "Web"/"Staging"',
            "before": None,
            "after": {"admin": False, "permissions": {UPDATE_FEATURE_STATE: ["beta"]}},
        },
        {
            "action": "create",
            "object_type": "grant",
            "name": 'user "erin@example.com" / project "Mobile"',
            "before": None,
            "after": {"admin": False, "permissions": {VIEW_PROJECT: []}},
        },
        {
            "action": "update",
            "object_type": "tag",
            "name": 'tag "Web"/"beta"',
            "before": {"is_restricted": False},
            "after": {"is_restricted": True},
        },
        {
            "action": "update",
            "object_type": "tag",
            "name": 'tag "Web"/"payments"',
            "before": {"is_restricted": True},
            "after": {"is_restricted": False},
        },
    ]


def test_plan__saves_nothing(acme: Acme) -> None:
    before, entries = export(acme), AuditLogEntry.objects.count()

    result = plan(acme, edited(acme))

    assert result.changes and result.impact
    assert export(acme) == before
    assert AuditLogEntry.objects.count() == entries


def test_plan__impact_equals_the_difference_of_decisions_before_and_after_apply(
    acme: Acme,
) -> None:
    document = edited(acme)
    watched = {acme.carol.pk, acme.erin.pk}  # removed and added: not members on one side
    before = decisions(acme.organisation, watched)

    planned = plan(acme, document)
    applied = apply(acme, document)

    expected = impact_from_decisions(before, decisions(acme.organisation, watched))
    assert impact_rows(planned.impact, acme.organisation) == expected
    assert applied.impact == planned.impact
    assert {row[0] for row in expected} == {"gained", "lost"}
    assert any(row[1] == "api_key:ci" for row in expected)
    assert any(row[5] is not None for row in expected)  # feature counts of tagged keys


def test_apply__edited_document__then_exports_it(acme: Acme) -> None:
    document = edited(acme)

    result = apply(acme, document)

    assert len(result.changes) == 13
    expected = copy.deepcopy(document)
    expected["members"][3]["email"] = "erin@example.com"  # matched case-insensitively
    exported = export(acme)
    for key in ("members", "restricted_tags", "users"):
        assert exported[key] == expected[key]
    assert [r["name"] for r in exported["roles"]] == ["Payments", "QA", "viewers"]
    assert plan(acme, document).changes == ()


def test_apply__removing_a_member__only_the_membership_change_and_the_services_cascade(
    acme: Acme,
) -> None:
    document = export(acme)
    document["members"] = [m for m in document["members"] if m["email"] != "carol@example.com"]
    document["users"] = []
    ops = document["groups"][index_of(document["groups"], "name", "Ops")]
    ops["members"] = ["bob@example.com"]

    result = apply(acme, document)

    assert [(c.action, c.object_type) for c in result.changes] == [
        ("delete", "organisation_membership")
    ]
    assert not Grant.objects.filter(user=acme.carol).exists()
    assert not UserGroup.objects.filter(users=acme.carol).exists()
    deleted = AuditLogEntry.objects.get(object_type="organisation_membership", action="deleted")
    assert len(deleted.before["grants"]) == 2  # described by the membership's entry


def test_apply__role_removed__its_grants_and_assignments_go_with_it(acme: Acme) -> None:
    document = export(acme)
    document["roles"] = [r for r in document["roles"] if r["name"] != "Payments"]
    document["groups"][index_of(document["groups"], "name", "Ops")]["roles"] = []

    result = apply(acme, document)

    assert [(c.action, c.object_type, c.name) for c in result.changes] == [
        ("delete", "role", 'role "Payments"')
    ]
    assert not Role.objects.filter(organisation=acme.organisation, name="Payments").exists()
    assert not engine.allowed(acme.bob, CREATE_PROJECT, acme.organisation)


def test_apply__restricted_tags__restricted_iff_listed(acme: Acme) -> None:
    document = export(acme)
    document["restricted_tags"] = [{"project": "Web", "tags": ["ui", "beta"]}]

    apply(acme, document)

    assert set(
        Tag.objects.filter(project=acme.web, is_restricted=True).values_list("label", flat=True)
    ) == {"ui", "beta"}


def test_apply__restricted_tags_empty__lifts_every_restriction(acme: Acme) -> None:
    document = export(acme)
    document["restricted_tags"] = []

    apply(acme, document)

    assert not Tag.objects.filter(project__organisation=acme.organisation, is_restricted=True)


def test_apply__role_grant_tags__granted_on_tagged_features_only(acme: Acme) -> None:
    document = export(acme)
    document["members"].append({"email": "erin@example.com"})
    document["roles"].append(
        {
            "name": "Deleters",
            "users": ["erin@example.com"],
            "projects": [{"project": "Mobile", "permissions": {DELETE_FEATURE: ["ios"]}}],
        }
    )

    apply(acme, document)

    widgets = acme.mobile.features.get(name="widgets")
    offline = acme.mobile.features.get(name="offline")
    assert engine.allowed(acme.erin, DELETE_FEATURE, acme.mobile, widgets)
    assert not engine.allowed(acme.erin, DELETE_FEATURE, acme.mobile, offline)


def test_apply__system_actor__audited_as_the_system(acme: Acme) -> None:
    document = export(acme)
    role_of(document, "Viewers")["description"] = "Read only"

    documents.permissions_document_apply(
        organisation=acme.organisation, document=document, actor=None
    )

    entry = AuditLogEntry.objects.get(object_type="role", action="updated")
    assert (entry.actor_user, entry.actor_api_key, entry.actor_type) == (None, None, "")


def test_apply__api_key_actor__audited_as_the_key(acme: Acme) -> None:
    admin_key = f.APIKeyFactory(organisation=acme.organisation, is_admin=True, name="deploy")
    document = export(acme)
    role_of(document, "Viewers")["description"] = "Read only"

    apply(acme, document, actor=admin_key)

    entry = AuditLogEntry.objects.get(object_type="role", action="updated")
    assert entry.actor_api_key == admin_key


# --------------------------------------------------------------------------------------
# Invalid documents: path-keyed errors, nothing applied
# --------------------------------------------------------------------------------------


def _set(path: list[Any], value: Any) -> Any:
    def edit(document: dict[str, Any]) -> None:
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return edit


def _role_env(acme_document: dict[str, Any]) -> dict[str, Any]:
    return role_of(acme_document, "Payments")["environments"][0]


INVALID: list[tuple[str, Any, str, str]] = [
    (
        "unknown_user",
        lambda d: d["members"].append({"email": "nobody@example.com"}),
        "members[4].email",
        'No user has the email "nobody@example.com".',
    ),
    (
        "unknown_project",
        lambda d: role_of(d, "Viewers")["projects"].append({"project": "Nope"}),
        "roles[1].projects[1].project",
        'No project is named "Nope".',
    ),
    (
        "unknown_environment",
        lambda d: _role_env(d).update(environment="Moon"),
        "roles[0].environments[0].environment",
        'No environment of project "Web" is named "Moon".',
    ),
    (
        "unknown_tag",
        lambda d: _role_env(d)["permissions"].update({UPDATE_FEATURE_STATE: ["payments", "x"]}),
        "roles[0].environments[0].permissions.UPDATE_FEATURE_STATE[1]",
        'No tag of project "Web" is named "x".',
    ),
    (
        "tag_of_another_project",
        lambda d: _role_env(d)["permissions"].update({UPDATE_FEATURE_STATE: ["ios"]}),
        "roles[0].environments[0].permissions.UPDATE_FEATURE_STATE[0]",
        'No tag of project "Web" is named "ios".',
    ),
    (
        "unknown_api_key",
        lambda d: role_of(d, "Viewers")["api_keys"].append("gone"),
        "roles[1].api_keys[0]",
        'No API key is named "gone".',
    ),
    (
        "tagged_unsupported_key",
        lambda d: _role_env(d)["permissions"].update({VIEW_ENVIRONMENT: ["ui"]}),
        "roles[0].environments[0].permissions.VIEW_ENVIRONMENT",
        "VIEW_ENVIRONMENT does not support tags.",
    ),
    (
        "key_at_wrong_level",
        lambda d: _role_env(d)["permissions"].update({CREATE_FEATURE: []}),
        "roles[0].environments[0].permissions.CREATE_FEATURE",
        "CREATE_FEATURE is a project permission and cannot be granted on a environment.",
    ),
    (
        "unknown_key",
        lambda d: role_of(d, "Payments")["organisation"].append("FLY"),
        "roles[0].organisation[1]",
        "Unknown permission key: 'FLY'.",
    ),
    (
        "tags_on_user_grant",
        lambda d: d["users"][0]["projects"][0]["permissions"].update({DELETE_FEATURE: ["ios"]}),
        "users[0].projects[0].permissions.DELETE_FEATURE",
        "Only role grants may carry tags; remove the tags of: DELETE_FEATURE.",
    ),
    (
        "duplicate_role",
        lambda d: d["roles"].append({"name": "payments"}),
        "roles[2].name",
        "Listed more than once (also at roles[0]).",
    ),
    (
        "duplicate_project_in_role",
        lambda d: role_of(d, "Payments")["projects"].append({"project": "Web"}),
        "roles[0].projects[1].project",
        "Listed more than once (also at roles[0].projects[0]).",
    ),
    (
        "duplicate_member",
        lambda d: d["members"].append({"email": "BOB@example.com"}),
        "members[4].email",
        "Listed more than once (also at members[1]).",
    ),
    (
        "grant_of_non_member",
        lambda d: d["users"].append({"email": "erin@example.com"}),
        "users[1].email",
        '"erin@example.com" is not listed in `members`.',
    ),
    (
        "group_role_listed_on_one_side",
        lambda d: d["groups"][1]["roles"].append("Payments"),
        "groups[1].roles[1]",
        "roles[0].groups does not list this group: list the assignment on both sides or on "
        "neither.",
    ),
    (
        "unknown_group_in_role",
        lambda d: role_of(d, "Viewers")["groups"].append("Ghosts"),
        "roles[1].groups[1]",
        'Group "Ghosts" is not listed in `groups`.',
    ),
    (
        "another_organisation",
        _set(["organisation"], "Globex"),
        "organisation",
        'This document is for organisation "Globex", not "Acme"; change this field to apply '
        "it here.",
    ),
    (
        "missing_section",
        lambda d: d.pop("restricted_tags"),
        "restricted_tags",
        "This field is required.",
    ),
    ("unknown_field", _set(["roles", 0, "colour"], "red"), "roles[0].colour", "Unknown field."),
    ("wrong_type", _set(["roles", 1, "users"], "dave"), "roles[1].users", "Expected a list."),
    (
        "admin_not_boolean",
        lambda d: _role_env(d).update(admin="yes"),
        "roles[0].environments[0].admin",
        "Expected true or false.",
    ),
    (
        "bad_member_role",
        _set(["members", 1, "role"], "OWNER"),
        "members[1].role",
        "Must be one of ADMIN, USER.",
    ),
    (
        "name_too_long",
        _set(["roles", 1, "name"], "x" * 201),
        "roles[1].name",
        "Ensure this field has no more than 200 characters.",
    ),
    (
        "null_character",
        _set(["groups", 0, "name"], "O\x00ps"),
        "groups[0].name",
        "Null characters and lone surrogates are not allowed.",
    ),
]


@pytest.mark.parametrize(
    ("edit", "path", "message"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_apply__invalid_document__path_keyed_error_and_nothing_applied(
    acme: Acme, edit: Any, path: str, message: str
) -> None:
    document = export(acme)
    role_of(document, "Viewers")["description"] = "a valid change that must not be applied"
    edit(document)

    errors = errors_of(acme, document)

    assert message in errors.get(path, []), errors


def test_plan__invalid_document__the_same_errors_as_apply(acme: Acme) -> None:
    document = export(acme)
    _role_env(document)["permissions"][VIEW_ENVIRONMENT] = ["ui"]

    with pytest.raises(documents.DocumentInvalid) as caught:
        plan(acme, document)

    assert caught.value.errors == errors_of(acme, document)


def test_apply__several_errors__every_one_reported(acme: Acme) -> None:
    document = export(acme)
    document["members"].append({"email": "nobody@example.com"})
    _role_env(document)["permissions"][VIEW_ENVIRONMENT] = ["ui"]
    document["restricted_tags"][0]["tags"] = ["nope"]

    errors = errors_of(acme, document)

    assert set(errors) == {
        "members[4].email",
        "roles[0].environments[0].permissions.VIEW_ENVIRONMENT",
        "restricted_tags[0].tags[0]",
    }


@pytest.mark.parametrize("document", [None, [], "members: []", 3], ids=repr)
def test_apply__not_an_object__400_shaped_error(acme: Acme, document: Any) -> None:
    assert errors_of(acme, document) == {"non_field_errors": ["Expected an object."]}


def test_apply__ambiguous_project_name__error_names_the_ambiguity(acme: Acme) -> None:
    f.ProjectFactory(organisation=acme.organisation, name="web")
    f.ProjectFactory(organisation=acme.organisation, name="WEB ")
    document = export(acme)
    document["restricted_tags"][0]["project"] = "wEb"

    errors = errors_of(acme, document)

    assert errors == {
        "restricted_tags[0].project": [
            '2 projects are named "wEb": the document cannot tell them apart; rename one of '
            "them first."
        ]
    }


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="PostgreSQL's LOWER folds É too: its unique constraint refuses the twin role",
)
def test_export__role_names_equal_only_in_python_lower__refused_never_merged(acme: Acme) -> None:
    f.RoleFactory(organisation=acme.organisation, name="Émile")
    f.RoleFactory(organisation=acme.organisation, name="émile")  # SQLite's LOWER: ASCII only

    with pytest.raises(documents.DocumentInvalid) as caught:
        export(acme)

    assert list(caught.value.errors) == ["roles"]
    assert "differ only in case" in caught.value.errors["roles"][0]


def test_apply__exact_name_wins_over_case_insensitive_twins(acme: Acme) -> None:
    f.ProjectFactory(organisation=acme.organisation, name="web")

    assert apply(acme, export(acme)).changes == ()


# --------------------------------------------------------------------------------------
# The acting user and the last ADMIN
# --------------------------------------------------------------------------------------


def test_apply__actor_removes_own_admin_membership__refused(acme: Acme) -> None:
    document = export(acme)
    document["members"] = document["members"][1:]  # without alice, the actor
    document["members"][0]["role"] = "ADMIN"  # bob: the organisation keeps an ADMIN

    errors = errors_of(acme, document)

    assert list(errors) == ["members"]
    assert errors["members"][0].startswith("You (alice@example.com) are not listed: you would")


def test_apply__actor_demotes_self__refused_at_the_role(acme: Acme) -> None:
    document = export(acme)
    document["members"][0]["role"] = "USER"
    document["members"][1]["role"] = "ADMIN"

    errors = errors_of(acme, document)

    assert list(errors) == ["members[0].role"]


def test_apply__another_admin_removes_the_actor__allowed(acme: Acme) -> None:
    bob = acme.bob
    OrganisationMembership.objects.filter(user=bob).update(role=MembershipRole.ADMIN)
    document = export(acme)
    document["members"] = [m for m in document["members"] if m["email"] != "alice@example.com"]

    result = apply(acme, document, actor=bob)

    assert [c.name for c in result.changes] == ['member "alice@example.com"']
    assert not OrganisationMembership.objects.filter(user=acme.alice).exists()


def test_apply__system_actor_leaves_no_admin__services_last_admin_rule_at_the_item_path(
    acme: Acme,
) -> None:
    document = export(acme)
    document["members"][0]["role"] = "USER"
    document["members"].append({"email": "erin@example.com"})  # applied first, rolled back

    errors = errors_of(acme, document, actor=None)

    assert errors == {"members[0].role": ["An organisation must keep at least one ADMIN member."]}


def test_apply__admin_promoted_before_the_old_one_is_demoted__allowed(acme: Acme) -> None:
    document = export(acme)
    document["members"][0]["role"] = "USER"  # alice
    document["members"][1]["role"] = "ADMIN"  # bob

    apply(acme, document, actor=None)

    roles = dict(
        OrganisationMembership.objects.filter(organisation=acme.organisation).values_list(
            "user__username", "role"
        )
    )
    assert roles["alice"] == "USER" and roles["bob"] == "ADMIN"


# --------------------------------------------------------------------------------------
# Names and YAML
# --------------------------------------------------------------------------------------


def test_apply__emails_match_case_insensitively(acme: Acme) -> None:
    document = export(acme)
    document["members"][1]["email"] = "BOB@EXAMPLE.COM"

    assert apply(acme, document).changes == ()


def test_apply__two_users_share_an_email__the_member_is_chosen(acme: Acme) -> None:
    f.UserFactory(username="bob2", email="bob@example.com")  # not a member

    assert apply(acme, export(acme)).changes == ()


def test_apply__two_non_members_share_an_email__ambiguous(acme: Acme) -> None:
    f.UserFactory(username="erin2", email="Erin@example.com")
    document = export(acme)
    document["members"].append({"email": "erin@example.com"})

    errors = errors_of(acme, document)

    assert errors == {
        "members[4].email": [
            '2 users have the email "erin@example.com": the document cannot tell them apart.'
        ]
    }


def test_yaml__round_trip_of_the_export(acme: Acme) -> None:
    document = export(acme)

    assert documents.yaml_load(documents.yaml_dump(document)) == document


def test_yaml__aliases_refused() -> None:
    text = "a: &x [1, 2]\nb: *x\n"

    with pytest.raises(yaml.YAMLError, match="aliases are not allowed"):
        documents.yaml_load(text)


def test_yaml__unsafe_tags_refused() -> None:
    with pytest.raises(yaml.YAMLError):
        documents.yaml_load("!!python/object/apply:os.system ['true']")
