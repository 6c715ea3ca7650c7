"""A feature with restricted tags R is reached, for a tag-supported key, only when the tags of
the principal's tagged entries for that key on that scope, taken together, contain every tag
of R (docs/PERMISSIONS.md, "Restricted tags"). Every view of the decision agrees: the check
(engine and HTTP), the list filters, my-permissions read with the client rule, explain, the
impact preview.

The feature `vault` is tagged payments and security, both restricted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from environments.models import Environment
from features.models import Feature, FeatureState
from permissions import engine
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from projects.models import Tag
from tests import factories as f
from tests.support.access import fresh
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
API = "/api/v1"


@dataclass
class World:
    organisation: Any
    project: Any
    environment: Environment
    payments: Tag
    security: Tag
    vault: Feature  # payments + security, both restricted
    card: Feature  # payments only
    plain: Feature  # untagged

    def role(self, *tag_sets: list[Tag]) -> Any:
        """A role holding UPDATE_FEATURE_STATE tagged `tag_sets[0]` (and VIEW_ENVIRONMENT) on
        the environment; each further tag set is another role assigned to the same user."""
        user = f.member(self.organisation)
        for tags in tag_sets:
            role = f.RoleFactory(organisation=self.organisation)
            f.grant(role, self.environment, {UPDATE_FEATURE_STATE: tags, VIEW_ENVIRONMENT: []})
            f.RoleAssignmentFactory(role=role, user=user)
        return user


@pytest.fixture
def w(organisation: Any, project: Any, environment: Any) -> World:
    payments = f.TagFactory(project=project, label="payments", is_restricted=True)
    security = f.TagFactory(project=project, label="security", is_restricted=True)
    return World(
        organisation=organisation,
        project=project,
        environment=Environment.objects.select_related("project").get(pk=environment.pk),
        payments=payments,
        security=security,
        vault=f.FeatureFactory(project=project, name="vault", tags=[payments, security]),
        card=f.FeatureFactory(project=project, name="card", tags=[payments]),
        plain=f.FeatureFactory(project=project, name="plain"),
    )


def fresh_feature(feature: Feature) -> Feature:
    return Feature.objects.get(pk=feature.pk)


def patch_state(user: Any, w: World, feature: Feature) -> int:
    state = FeatureState.objects.get(
        feature=feature, environment=w.environment, segment_override__isnull=True
    )
    url = f"{API}/environments/{w.environment.api_key}/featurestates/{state.pk}/"
    return client_for(user).patch(url, {"enabled": not state.enabled}, format="json").status_code


def listed_features(user: Any, w: World) -> set[int]:
    return set(
        engine.features_allowed(fresh(user), UPDATE_FEATURE_STATE, w.environment).values_list(
            "pk", flat=True
        )
    )


def listed_states(user: Any, w: World) -> set[int]:
    return set(
        engine.feature_states_allowed(fresh(user), UPDATE_FEATURE_STATE, w.environment).values_list(
            "feature_id", flat=True
        )
    )


def client_rule(payload: dict[str, Any], key: str, feature_tags: set[int]) -> bool:
    """docs/PERMISSIONS.md: admin, or (R empty and K in permissions), or K's tag set S
    contains every tag of R (R not empty), or S meets T (R empty)."""
    if payload["admin"]:
        return True
    restricted = feature_tags & set(payload["restricted_tags"])
    if not restricted and key in payload["permissions"]:
        return True
    held: set[int] = set()
    for item in payload["tag_based_permissions"]:
        if key in item["permissions"]:
            held |= set(item["tags"])
    return restricted <= held if restricted else bool(held & feature_tags)


def my_permissions(user: Any, w: World) -> dict[str, Any]:
    response = client_for(user).get(f"{API}/environments/{w.environment.api_key}/my-permissions/")
    assert response.status_code == 200
    return dict(response.data)


def explain(user: Any, w: World, feature: Feature) -> dict[str, Any]:
    response = client_for(user).get(
        f"{API}/environments/{w.environment.api_key}/features/{feature.pk}/explain/",
        {"user": user.pk, "permission": UPDATE_FEATURE_STATE},
    )
    assert response.status_code == 200
    return dict(response.data)


def vault_tags(w: World) -> set[int]:
    return {w.payments.pk, w.security.pk}


# ---------------------------------------------------------------------------------------
# One restricted tag named: denied on every view
# ---------------------------------------------------------------------------------------


def test_check__role_tagged_payments_only__denied_on_vault(w: World) -> None:
    user = w.role([w.payments])
    assert not engine.allowed(fresh(user), UPDATE_FEATURE_STATE, w.environment, w.vault)
    assert patch_state(user, w, w.vault) == 403
    # the same role still reaches the feature carrying only payments
    assert engine.allowed(fresh(user), UPDATE_FEATURE_STATE, w.environment, w.card)
    assert patch_state(user, w, w.card) == 200


def test_list_filter__role_tagged_payments_only__vault_left_out(w: World) -> None:
    user = w.role([w.payments])
    assert listed_features(user, w) == {w.card.pk}
    assert listed_states(user, w) == {w.card.pk}


def test_list_annotation__role_tagged_payments_only__no_key_on_vault(w: World) -> None:
    user = w.role([w.payments])
    response = client_for(user).get(f"{API}/environments/{w.environment.api_key}/featurestates/")
    assert response.status_code == 200
    keys = {item["feature"]: item["my_permissions"] for item in response.data["results"]}
    assert UPDATE_FEATURE_STATE not in keys[w.vault.pk]
    assert UPDATE_FEATURE_STATE in keys[w.card.pk]


def test_my_permissions__role_tagged_payments_only__client_rule_denies_vault(w: World) -> None:
    payload = my_permissions(w.role([w.payments]), w)
    assert payload["restricted_tags"] == sorted(vault_tags(w))
    assert client_rule(payload, UPDATE_FEATURE_STATE, vault_tags(w)) is False
    assert client_rule(payload, UPDATE_FEATURE_STATE, {w.payments.pk}) is True


def test_explain__role_tagged_payments_only__blocked_by_restricted_tag(w: World) -> None:
    user = w.role([w.payments])
    result = explain(user, w, w.vault)
    assert result["allowed"] is False
    assert result["granted_by"] == []
    assert [(b["via"], b["tags"], b["why"]) for b in result["blocked_by"]] == [
        ("role", [w.payments.pk], "restricted_tag")
    ]
    assert "restricted tags" in result["reason"] and "taken together" in result["reason"]


def test_explain__untagged_entry_on_vault__blocked_and_denied(w: World) -> None:
    user = f.member(w.organisation)
    f.grant(user, w.environment, [UPDATE_FEATURE_STATE])
    result = explain(user, w, w.vault)
    assert result["allowed"] is False
    assert result["granted_by"] == []
    # the entry names no tag of the feature (docs/PERMISSIONS.md: `restricted_tag` only for
    # entries naming one)
    assert [(b["via"], b["tags"], b["why"]) for b in result["blocked_by"]] == [
        ("user", [], "tag_mismatch")
    ]
    assert "restricted tags" in result["reason"]
    assert patch_state(user, w, w.vault) == 403


def test_impact__restricting_security__payments_role_loses_vault(w: World) -> None:
    """Restricting the second tag narrows: the preview lists the loss and no gain."""
    Tag.objects.filter(pk=w.security.pk).update(is_restricted=False)
    user = w.role([w.payments])
    assert engine.allowed(fresh(user), UPDATE_FEATURE_STATE, w.environment, fresh_feature(w.vault))
    admin = f.member(w.organisation, admin=True)
    response = client_for(admin).patch(
        f"{API}/projects/{w.project.pk}/tags/{w.security.pk}/?dry_run=true",
        {"is_restricted": True},
        format="json",
    )
    assert response.status_code == 200
    impact = response.data["impact"]
    assert impact["gained"] == []
    lost = [(i["user"], i["permission"], i["environment"], i["features"]) for i in impact["lost"]]
    assert lost == [(user.pk, UPDATE_FEATURE_STATE, w.environment.pk, 1)]
    assert Tag.objects.get(pk=w.security.pk).is_restricted is False  # nothing saved


# ---------------------------------------------------------------------------------------
# Every restricted tag named, together: allowed on every view
# ---------------------------------------------------------------------------------------

COVERING = {
    "two_roles": lambda w: w.role([w.payments], [w.security]),
    "one_entry_two_tags": lambda w: w.role([w.payments, w.security]),
}


@pytest.mark.parametrize("how", sorted(COVERING))
def test_check__roles_naming_payments_and_security__allowed_on_vault(w: World, how: str) -> None:
    user = COVERING[how](w)
    assert engine.allowed(fresh(user), UPDATE_FEATURE_STATE, w.environment, w.vault)
    assert patch_state(user, w, w.vault) == 200
    assert listed_features(user, w) == {w.vault.pk, w.card.pk}
    assert listed_states(user, w) == {w.vault.pk, w.card.pk}
    assert client_rule(my_permissions(user, w), UPDATE_FEATURE_STATE, vault_tags(w)) is True


def test_explain__two_roles_cover_vault__granted_by_both(w: World) -> None:
    user = w.role([w.payments], [w.security])
    result = explain(user, w, w.vault)
    assert result["allowed"] is True
    assert sorted(g["tags_matched"] for g in result["granted_by"]) == sorted(
        [[w.payments.pk], [w.security.pk]]
    )
    assert all(g["via"] == "role" for g in result["granted_by"])
    assert result["blocked_by"] == []


def test_explain__covered_with_an_extra_untagged_entry__untagged_one_is_blocked(
    w: World,
) -> None:
    user = w.role([w.payments], [w.security])
    f.grant(user, w.environment, [UPDATE_FEATURE_STATE])
    result = explain(user, w, w.vault)
    assert result["allowed"] is True
    assert len(result["granted_by"]) == 2
    assert [(b["via"], b["why"]) for b in result["blocked_by"]] == [("user", "tag_mismatch")]


def test_check__environment_admin__allowed_on_vault_without_tags(w: World) -> None:
    admin = f.member(w.organisation)
    f.grant(admin, w.environment, [], admin=True)
    assert engine.allowed(fresh(admin), UPDATE_FEATURE_STATE, w.environment, w.vault)
    assert patch_state(admin, w, w.vault) == 200


def test_check__key_without_tags__unaffected_by_restricted_tags(w: World) -> None:
    user = w.role([w.payments])
    assert engine.allowed(fresh(user), VIEW_ENVIRONMENT, w.environment)


def test_check__entries_on_another_environment__do_not_cover(w: World) -> None:
    """The union is per scope: security named on another environment does not help."""
    other = f.EnvironmentFactory(project=w.project)
    user = w.role([w.payments])
    role = f.RoleFactory(organisation=w.organisation)
    f.grant(role, other, {UPDATE_FEATURE_STATE: [w.security]})
    f.RoleAssignmentFactory(role=role, user=user)
    assert not engine.allowed(fresh(user), UPDATE_FEATURE_STATE, w.environment, w.vault)
    assert patch_state(user, w, w.vault) == 403
