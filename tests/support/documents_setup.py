"""Shared data for the permissions-document tests: a small organisation that uses every part
of the document, and the engine's decisions over all its principals × keys × scopes ×
features (keyed by names, so two organisations can be compared)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

from environments.models import Environment
from features.models import Feature
from impact.changes import IMPACT_LIMIT_MAX
from organisations.models import Organisation, OrganisationAPIKey, OrganisationMembership
from permissions import engine
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CATALOGUE,
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    MANAGE_USER_GROUPS,
    TAG_SUPPORTED_KEYS,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
    Level,
)
from projects.models import Project
from tests import factories as f

User = get_user_model()


@dataclass
class Acme:
    organisation: Organisation
    alice: Any  # ADMIN member: the actor
    bob: Any
    carol: Any
    dave: Any
    erin: Any  # a user who is not a member
    web: Project
    mobile: Project
    production: Environment
    staging: Environment
    mobile_production: Environment
    tags: dict[str, Any]
    api_key: OrganisationAPIKey


def build_skeleton(organisation: Organisation) -> dict[str, Any]:
    """Projects, environments, tags and features (the things a document never creates)."""
    web = f.ProjectFactory(organisation=organisation, name="Web")
    mobile = f.ProjectFactory(organisation=organisation, name="Mobile")
    production = f.EnvironmentFactory(project=web, name="Production")
    staging = f.EnvironmentFactory(project=web, name="Staging")
    mobile_production = f.EnvironmentFactory(project=mobile, name="Production")
    tags = {
        "payments": f.TagFactory(project=web, label="payments"),
        "ui": f.TagFactory(project=web, label="ui"),
        "beta": f.TagFactory(project=web, label="beta"),
        "ios": f.TagFactory(project=mobile, label="ios"),
    }
    f.FeatureFactory(project=web, name="checkout", tags=[tags["payments"]])
    f.FeatureFactory(project=web, name="checkout_ui", tags=[tags["payments"], tags["ui"]])
    f.FeatureFactory(project=web, name="dark_mode", tags=[tags["ui"]])
    f.FeatureFactory(project=web, name="new_nav", tags=[tags["beta"], tags["ui"]])
    f.FeatureFactory(project=web, name="plain")
    f.FeatureFactory(project=mobile, name="widgets", tags=[tags["ios"]])
    f.FeatureFactory(project=mobile, name="offline")
    return {
        "web": web,
        "mobile": mobile,
        "production": production,
        "staging": staging,
        "mobile_production": mobile_production,
        "tags": tags,
    }


def build_acme(name: str = "Acme") -> Acme:
    """Organisation "Acme": members, groups, roles (assigned to users, groups and an API key),
    user and group grants, tagged role entries and a restricted tag."""
    organisation = f.OrganisationFactory(name=name)
    alice = f.member(organisation, admin=True, username="alice", email="alice@example.com")
    bob = f.member(organisation, username="bob", email="bob@example.com")
    carol = f.member(organisation, username="carol", email="carol@example.com")
    dave = f.member(organisation, username="dave", email="dave@example.com")
    erin = f.UserFactory(username="erin", email="erin@example.com")
    sk = build_skeleton(organisation)
    tags = sk["tags"]
    tags["payments"].is_restricted = True
    tags["payments"].save()
    api_key = f.APIKeyFactory(organisation=organisation, name="ci")

    ops = f.UserGroupFactory(organisation=organisation, name="Ops", users=[bob, carol])
    readers = f.UserGroupFactory(organisation=organisation, name="Readers", users=[dave])
    payments = f.RoleFactory(organisation=organisation, name="Payments", description="Card flows")
    viewers = f.RoleFactory(organisation=organisation, name="Viewers")
    f.RoleAssignmentFactory(role=payments, user=bob)
    f.RoleAssignmentFactory(role=payments, group=ops)
    f.RoleAssignmentFactory(role=payments, api_key=api_key)
    f.RoleAssignmentFactory(role=viewers, group=readers)

    f.grant(payments, organisation, [CREATE_PROJECT])
    f.grant(payments, sk["web"], {DELETE_FEATURE: [tags["payments"]], VIEW_PROJECT: []})
    f.grant(
        payments,
        sk["production"],
        {UPDATE_FEATURE_STATE: [tags["payments"], tags["ui"]], VIEW_ENVIRONMENT: []},
    )
    f.grant(viewers, sk["web"], [VIEW_PROJECT])
    f.grant(viewers, sk["staging"], [], admin=True)
    f.grant(carol, sk["mobile"], [VIEW_PROJECT])
    f.grant(carol, sk["mobile_production"], [UPDATE_FEATURE_STATE, APPROVE_CHANGE_REQUEST])
    f.grant(ops, organisation, [MANAGE_USER_GROUPS])
    f.grant(ops, sk["web"], [CREATE_FEATURE])
    return Acme(
        organisation=organisation,
        alice=alice,
        bob=bob,
        carol=carol,
        dave=dave,
        erin=erin,
        web=sk["web"],
        mobile=sk["mobile"],
        production=sk["production"],
        staging=sk["staging"],
        mobile_production=sk["mobile_production"],
        tags=tags,
        api_key=api_key,
    )


Decisions = dict[tuple[str, str, str | None, str | None, str | None], bool]


def decisions(organisation: Organisation, user_ids: set[int] | None = None) -> Decisions:
    """Every decision of the engine in `organisation`: principals (its members, the users of
    `user_ids`, its API keys) × keys × scopes × features, keyed by names. Fresh objects, so
    no memoised policy or feature tags from before a change are reused."""
    ids = set(
        OrganisationMembership.objects.filter(organisation=organisation).values_list(
            "user_id", flat=True
        )
    ) | set(user_ids or ())
    principals: list[tuple[str, Any]] = [
        (f"user:{u.email}", u) for u in User.objects.filter(pk__in=ids)
    ]
    principals += [
        (f"api_key:{k.name}", k)
        for k in OrganisationAPIKey.objects.filter(organisation=organisation)
    ]
    projects = list(Project.objects.filter(organisation=organisation))
    environments = list(
        Environment.objects.filter(project__organisation=organisation).select_related("project")
    )
    features: dict[int, list[Feature]] = {
        p.pk: list(Feature.objects.filter(project=p).prefetch_related("tags")) for p in projects
    }
    result: Decisions = {}
    for label, principal in principals:
        for key, spec in CATALOGUE.items():
            scopes: list[tuple[Any, str | None, str | None, int | None]]
            if spec.level == Level.ORGANISATION:
                scopes = [(organisation, None, None, None)]
            elif spec.level == Level.PROJECT:
                scopes = [(p, p.name, None, p.pk) for p in projects]
            else:
                scopes = [(e, e.project.name, e.name, e.project_id) for e in environments]
            for scope, project_name, env_name, project_id in scopes:
                if key in TAG_SUPPORTED_KEYS and project_id is not None:
                    for feature in features[project_id]:
                        result[(label, key, project_name, env_name, feature.name)] = engine.allowed(
                            principal, key, scope, feature
                        )
                else:
                    result[(label, key, project_name, env_name, None)] = engine.allowed(
                        principal, key, scope
                    )
    return result


def impact_from_decisions(before: Decisions, after: Decisions) -> set[tuple[str, ...]]:
    """The impact (docs/PERMISSIONS.md, "Seeing a change before making it") the difference of two decision sets implies, as
    (direction, principal, key, project, environment, features) rows (names, not ids)."""
    counts: dict[tuple[Any, ...], list[int]] = {}
    for ident in before.keys() | after.keys():
        principal, key, project, environment, _feature = ident
        had, has = before.get(ident, False), after.get(ident, False)
        if had == has:
            continue
        scope = (principal, key, project, environment)
        gained_lost = counts.setdefault(scope, [0, 0])
        gained_lost[0 if has else 1] += 1
    rows: set[tuple[Any, ...]] = set()
    for (principal, key, project, environment), (gained, lost) in counts.items():
        tagged = key in TAG_SUPPORTED_KEYS
        if gained:
            rows.add(("gained", principal, key, project, environment, gained if tagged else None))
        if lost:
            rows.add(("lost", principal, key, project, environment, lost if tagged else None))
    return rows


def impact_rows(impact: Any, organisation: Organisation) -> set[tuple[Any, ...]]:
    """An Impact as the rows of `impact_from_decisions` (ids turned into names)."""
    projects = dict(Project.objects.filter(organisation=organisation).values_list("id", "name"))
    environments = dict(
        Environment.objects.filter(project__organisation=organisation).values_list("id", "name")
    )
    keys = dict(
        OrganisationAPIKey.objects.filter(organisation=organisation).values_list("id", "name")
    )
    rows = set()
    listed = impact.as_dict(limit=IMPACT_LIMIT_MAX)
    for direction in ("gained", "lost"):
        for change in listed[direction]:
            who = (
                f"user:{change['email']}"
                if "user" in change
                else f"api_key:{keys[change['api_key']]}"
            )
            rows.add(
                (
                    direction,
                    who,
                    change["permission"],
                    projects.get(change["project"]),
                    environments.get(change["environment"]),
                    change["features"],
                )
            )
    return rows
