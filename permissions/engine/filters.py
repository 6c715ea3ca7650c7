"""Querysets filtered in SQL by the same rules as the decisions (docs/PERMISSIONS.md)."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import Combinable

from environments.models import Environment
from features.models import Feature, FeatureState
from organisations.models import MembershipRole, OrganisationAPIKey, OrganisationMembership
from permissions.catalogue import CATALOGUE, TAG_SUPPORTED_KEYS, Level
from permissions.engine.loader import policy_for_scope, scope_ids
from permissions.engine.paths import grants_reaching
from permissions.engine.policy import NO_TAGS, Principal, ScopeRights, is_superuser
from permissions.models import Grant
from projects.models import Project
from tagwarden.sql import Likely

# --------------------------------------------------------------------------------------
# Querysets: one SQL filter built from the same policy
# --------------------------------------------------------------------------------------

FeatureTagThrough = Feature.tags.through


def _feature_q(
    key: str, rights: ScopeRights | None, *, is_admin: bool, feature_ref: str
) -> Q | Combinable | None:
    """A Q over Feature (or a model reaching it through `feature_ref`) equivalent to
    `entry_reaches` for every feature; None means "every feature"."""
    if is_admin:
        return None
    if rights is None:
        return Q(pk__in=[])
    untagged = key in rights.untagged
    if key not in TAG_SUPPORTED_KEYS:
        return None if untagged else Q(pk__in=[])
    tags = rights.tagged.get(key, NO_TAGS)
    through = FeatureTagThrough.objects.filter(feature_id=OuterRef(feature_ref))
    # A restricted tag of the feature that the key's tags do not name: the feature is out
    # (docs/PERMISSIONS.md, "Restricted tags"). Without one, an untagged entry reaches the
    # feature, and a tagged one when it shares a tag (always so for a restricted feature).
    restricted = through.filter(tag__is_restricted=True)
    uncovered_restricted = Exists(
        restricted.exclude(tag_id__in=sorted(tags)) if tags else restricted
    )
    if untagged:
        return ~uncovered_restricted
    if tags:
        return ~uncovered_restricted & Exists(through.filter(tag_id__in=sorted(tags)))
    return Q(pk__in=[])


def features_allowed(
    principal: Principal,
    key: str,
    scope: Project | Environment,
    queryset: QuerySet[Feature] | None = None,
) -> QuerySet[Feature]:
    """The features of the scope's project on which `principal` holds `key`: one query."""
    level, _, project_id, environment_id = scope_ids(scope)
    if CATALOGUE[key].level != level:
        raise ValueError(f"{key} is a {CATALOGUE[key].level} key; it was checked on a {level}")
    assert project_id is not None
    qs = (queryset if queryset is not None else Feature.objects.all()).filter(project_id=project_id)
    policy = policy_for_scope(principal, scope)
    if not policy.is_member:
        return qs.none()
    admin = policy.is_scope_admin(level, project_id, environment_id)
    rights = policy.scope_rights(level, project_id, environment_id)
    q = _feature_q(key, rights, is_admin=admin, feature_ref="pk")
    return qs if q is None else qs.filter(q)


def feature_states_allowed(
    principal: Principal,
    key: str,
    environment: Environment,
    queryset: QuerySet[FeatureState] | None = None,
) -> QuerySet[FeatureState]:
    """The environment's default feature states whose feature `principal` holds `key` on."""
    if CATALOGUE[key].level != Level.ENVIRONMENT:
        raise ValueError(f"{key} is not an environment key")
    qs = (queryset if queryset is not None else FeatureState.objects.all()).filter(
        Likely(Q(segment_override__isnull=True)), environment_id=environment.pk
    )  # Likely: by the environment's index of default states (features.models.defaults_of)
    policy = policy_for_scope(principal, environment)
    if not policy.is_member:
        return qs.none()
    admin = policy.is_scope_admin(Level.ENVIRONMENT, environment.project_id, environment.pk)
    rights = policy.scope_rights(Level.ENVIRONMENT, environment.project_id, environment.pk)
    q = _feature_q(key, rights, is_admin=admin, feature_ref="feature_id")
    return qs if q is None else qs.filter(q)


def filter_by_feature(
    principal: Principal,
    key: str,
    scope: Project | Environment,
    queryset: QuerySet[Any],
    *,
    feature_ref: str,
) -> QuerySet[Any]:
    """The rows of `queryset` whose feature (the field path `feature_ref`, "pk" for features)
    `principal` holds `key` on in `scope`: the same one `Q` as `features_allowed`. For list
    actions declared `filtered_by_feature` (permissions/drf.py)."""
    level, _, project_id, environment_id = scope_ids(scope)
    if CATALOGUE[key].level != level:
        raise ValueError(f"{key} is a {CATALOGUE[key].level} key; it was checked on a {level}")
    # Never a row of a feature of another project than the scope's.
    project_path = (
        "project_id" if feature_ref == "pk" else f"{feature_ref.removesuffix('_id')}__project_id"
    )
    queryset = queryset.filter(**{project_path: project_id})
    policy = policy_for_scope(principal, scope)
    if not policy.is_member:
        return queryset.none()
    admin = policy.is_scope_admin(level, project_id, environment_id)
    rights = policy.scope_rights(level, project_id, environment_id)
    q = _feature_q(key, rights, is_admin=admin, feature_ref=feature_ref)
    return queryset if q is None else queryset.filter(q)


# A grant with neither a key nor admin holds nothing and shows nothing (as in the policy).
_HOLDS_SOMETHING = Q(admin=True) | Q(entries__isnull=False)


def viewable_projects_q(principal: Principal) -> Q:
    """Projects the principal may view, across its organisations: one Q, evaluated in SQL.

    Computed from the grant tables directly (not per-organisation policies) so a project list
    spanning many organisations stays one query; the semantics are those of `can_view`.
    """
    if isinstance(principal, OrganisationAPIKey):
        if not principal.is_usable:
            return Q(pk__in=[])
        if principal.is_admin:
            return Q(organisation_id=principal.organisation_id)
        grants = _held_grants(principal).filter(project__isnull=False)
        return Q(organisation_id=principal.organisation_id) & Q(pk__in=grants.values("project_id"))
    if not getattr(principal, "is_authenticated", False):
        return Q(pk__in=[])
    if is_superuser(principal):
        return Q()
    admin_orgs, member_orgs = _member_organisations(principal)
    held = _held_grants(principal).filter(project__isnull=False)
    return Q(organisation_id__in=admin_orgs) | (
        Q(organisation_id__in=member_orgs) & Q(pk__in=held.values("project_id"))
    )


def _held_grants(principal: Principal) -> QuerySet[Grant]:
    """The grants reaching the principal that hold something (a key or admin)."""
    return grants_reaching(principal).filter(_HOLDS_SOMETHING)


def _member_organisations(user: Any) -> tuple[QuerySet[Any], QuerySet[Any]]:
    """(the organisations `user` is an ADMIN of, those it is a member of), as subqueries."""
    memberships = OrganisationMembership.objects.filter(user_id=cast(int, user.pk))
    return (
        memberships.filter(role=MembershipRole.ADMIN).values("organisation_id"),
        memberships.values("organisation_id"),
    )


def viewable_environments_q(principal: Principal) -> Q:
    """Environments the principal may view: project admins see all of a project's, others
    those they hold anything on. One Q."""
    if isinstance(principal, OrganisationAPIKey):
        if not principal.is_usable:
            return Q(pk__in=[])
        if principal.is_admin:
            return Q(project__organisation_id=principal.organisation_id)
        return Q(project__organisation_id=principal.organisation_id) & _held_environments_q(
            principal
        )
    if not getattr(principal, "is_authenticated", False):
        return Q(pk__in=[])
    if is_superuser(principal):
        return Q()
    admin_orgs, member_orgs = _member_organisations(principal)
    return Q(project__organisation_id__in=admin_orgs) | (
        Q(project__organisation_id__in=member_orgs) & _held_environments_q(principal)
    )


def _held_environments_q(principal: Principal) -> Q:
    """Environments on which the principal holds something, or admin of their project."""
    grants = _held_grants(principal)
    return Q(pk__in=grants.filter(environment__isnull=False).values("environment_id")) | Q(
        project_id__in=grants.filter(
            project__isnull=False, environment__isnull=True, admin=True
        ).values("project_id")
    )
