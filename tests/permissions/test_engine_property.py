"""The per-object check, the queryset filters, the my-permissions payload (read with the
client rule of docs/PERMISSIONS.md) and explain all agree with a plain-Python reference of
the rules (docs/PERMISSIONS.md, "How it is fast": one decision, every view of it).

The generated organisations and the reference live in `tests/support/reference.py`: the
reference is written from the rules alone (no engine, no catalogue: the catalogue table is
spelled out there and checked against the catalogue below), and it decides from the
generated entries themselves, never from the engine's union of tags per key.

Examples: `HYPOTHESIS_EXAMPLES` in all (default 100; CI runs 500 in a step of its own), split
among `SHARDS` instances of the test so that the suite's workers share them. Each example builds
its own organisation inside a savepoint that is rolled back at the end.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from hypothesis import HealthCheck, given, settings

from environments.models import Environment
from features.models import Feature
from features.workflow.selectors import FEATURE_TAG_CODES, StatesPage, default_states_for_list
from organisations.models import OrganisationAPIKey
from permissions import catalogue, engine, reports
from projects.models import Project
from tests.support.reference import (
    ENV,
    ENV_KEYS,
    ORG,
    ORG_KEYS,
    PROJECT,
    PROJECT_KEYS,
    TABLE,
    TAG_KEYS,
    Rows,
    World,
    build,
    ref_allowed,
    ref_blocked,
    ref_can_view,
    ref_is_env_admin,
    ref_is_org_admin,
    ref_is_project_admin,
    worlds,
)

User = get_user_model()

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "100"))
SHARDS = 4


def test_reference__key_table__is_the_catalogue() -> None:
    assert {k: (str(s.level), s.supports_tag) for k, s in catalogue.CATALOGUE.items()} == TABLE


# ---------------------------------------------------------------------------------------
# The client rule of docs/API.md ("Permissions in responses") for the my-permissions payload
# ---------------------------------------------------------------------------------------


def client_decides(payload: dict[str, Any], key: str, feature_tags: set[int] | None) -> bool:
    if payload["admin"]:
        return True
    if feature_tags is None or key not in TAG_KEYS:
        # No feature (or a key without tags): only untagged holdings count.
        return key in payload["permissions"]
    restricted = feature_tags & set(payload["restricted_tags"])
    held = set()
    for item in payload["tag_based_permissions"]:
        if key in item["permissions"]:
            held |= set(item["tags"])
    if not restricted and key in payload["permissions"]:
        return True
    # S contains every tag of R (when R is not empty), or S meets T (when R is empty).
    return restricted <= held if restricted else bool(held & feature_tags)


def check_payload_shape(payload: dict[str, Any]) -> None:
    assert payload["permissions"] == sorted(set(payload["permissions"]))
    seen_keys: set[str] = set()
    seen_sets: set[tuple[int, ...]] = set()
    for item in payload["tag_based_permissions"]:
        assert item["permissions"] == sorted(set(item["permissions"]))
        assert item["tags"] == sorted(set(item["tags"])) and item["tags"]
        assert not seen_keys & set(item["permissions"]), "a key in two tag sets"
        assert tuple(item["tags"]) not in seen_sets, "two entries with one tag set"
        seen_keys |= set(item["permissions"])
        seen_sets.add(tuple(item["tags"]))


# ---------------------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------------------


def check_principal(w: World, rows: Rows, p: tuple[str, int], principal: Any) -> None:
    org, project = rows.org, rows.project
    envs = [Environment.objects.select_related("project").get(pk=e.pk) for e in rows.envs]
    features = rows.features
    tag_index = {t.pk: i for i, t in enumerate(rows.tags)}
    feature_tag_ids = [{rows.tags[t].pk for t in ft} for ft in w.features]
    restricted_ids = sorted(t.pk for t, r in zip(rows.tags, w.tags, strict=True) if r)
    ctx = f"principal {p}"
    # the bulk loader (admin matrix, impact previews) must decide exactly as the per-user one
    bulk = (
        engine.policies_for_members(org.pk, [principal.pk])[principal.pk]
        if p[0] == "user"
        else None
    )

    # organisation
    org_payload = reports.my_permissions(principal, org)
    check_payload_shape(org_payload)
    assert org_payload["admin"] is ref_is_org_admin(w, p), ctx
    assert org_payload["restricted_tags"] == []
    for key in ORG_KEYS:
        expected = ref_allowed(w, p, key, (ORG, 0), None)
        assert engine.allowed(principal, key, org) is expected, (ctx, key)
        assert bulk is None or bulk.decide(key) is expected, (ctx, key, "bulk")
        assert client_decides(org_payload, key, None) is expected, (ctx, key)

    # viewing, and the list filters for projects and environments
    assert engine.can_view(principal, org) is ref_can_view(w, p, (ORG, 0)), ctx
    assert engine.can_view(principal, project) is ref_can_view(w, p, (PROJECT, 0)), ctx
    listed = set(Project.objects.filter(engine.viewable_projects_q(principal)).values_list("pk"))
    assert listed == ({(project.pk,)} if ref_can_view(w, p, (PROJECT, 0)) else set()), ctx
    listed_envs = {
        pk
        for (pk,) in Environment.objects.filter(
            engine.viewable_environments_q(principal)
        ).values_list("pk")
    }
    expected_envs = set()
    for e, env in enumerate(envs):
        view = ref_can_view(w, p, (ENV, e))
        assert engine.can_view(principal, env) is view, (ctx, e)
        if view:
            expected_envs.add(env.pk)
    assert listed_envs == expected_envs, ctx

    scopes: list[tuple[tuple[str, int], Any, list[str]]] = [((PROJECT, 0), project, PROJECT_KEYS)]
    scopes += [((ENV, e), env, ENV_KEYS) for e, env in enumerate(envs)]
    for ref_scope, scope, keys in scopes:
        sctx = (ctx, ref_scope)
        admin = (
            ref_is_project_admin(w, p)
            if ref_scope[0] == PROJECT
            else ref_is_env_admin(w, p, ref_scope[1])
        )
        assert engine.is_admin(principal, scope) is admin, sctx
        payload = reports.my_permissions(principal, scope)
        check_payload_shape(payload)
        assert payload["admin"] is admin, sctx
        assert payload["restricted_tags"] == restricted_ids, sctx
        for item in payload["tag_based_permissions"]:
            assert set(item["tags"]) <= set(tag_index), sctx
        on_feature = [engine.keys_on_feature(principal, scope, ft) for ft in features]
        on_page = _list_page_keys(principal, scope) if ref_scope[0] == ENV else None
        for key in keys:
            kctx = (sctx, key)
            expected = ref_allowed(w, p, key, ref_scope, None)
            assert engine.allowed(principal, key, scope) is expected, kctx
            assert client_decides(payload, key, None) is expected, kctx
            listed_features = set(
                engine.features_allowed(principal, key, scope).values_list("pk", flat=True)
            )
            if ref_scope[0] == ENV:
                listed_states = set(
                    engine.feature_states_allowed(principal, key, scope).values_list(
                        "feature_id", flat=True
                    )
                )
            for i, feature in enumerate(features):
                fctx = (kctx, f"feature {i} tags {sorted(w.features[i])}")
                expected = ref_allowed(w, p, key, ref_scope, i)
                assert engine.allowed(principal, key, scope, feature) is expected, fctx
                if bulk is not None:
                    bulk_decision = bulk.decide(
                        key,
                        project_id=project.pk,
                        environment_id=scope.pk if ref_scope[0] == ENV else None,
                        feature_tags=engine.feature_tags(feature),
                    )
                    assert bulk_decision is expected, (fctx, "bulk")
                assert (feature.pk in listed_features) is expected, fctx
                if ref_scope[0] == ENV:
                    assert (feature.pk in listed_states) is expected, fctx
                assert client_decides(payload, key, feature_tag_ids[i]) is expected, fctx
                assert (key in on_feature[i]) is expected, fctx
                if on_page is not None:  # the list page's way: tags read as tags_needed says
                    assert (key in on_page[feature.pk]) is expected, (fctx, "list page")
                if ref_scope == (ENV, 0):  # explain costs queries: one environment is enough
                    explained = reports.explain(principal, key, scope, feature)
                    assert explained["allowed"] is expected, (fctx, explained)
                    assert bool(explained["granted_by"]) is expected, (fctx, explained)
                    assert explained["reason"], fctx
                    blocked = {
                        (frozenset(tag_index[t] for t in b["tags"]), b["why"])
                        for b in explained["blocked_by"]
                    }
                    assert blocked == ref_blocked(w, p, key, ref_scope[1], i), (fctx, explained)


@pytest.mark.django_db
@pytest.mark.parametrize("shard", range(SHARDS))
@settings(
    max_examples=max(1, -(-EXAMPLES // SHARDS)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(w=worlds())
def test_engine__random_organisations__agrees_with_reference(shard: int, w: World) -> None:
    with transaction.atomic():
        rows = build(w)
        features = list(
            Feature.objects.filter(pk__in=[ft.pk for ft in rows.features])
            .prefetch_related("tags")
            .order_by("pk")
        )
        assert [ft.pk for ft in features] == [ft.pk for ft in rows.features]
        rows.features = features
        for i, user in enumerate(rows.users):
            check_principal(w, rows, ("user", i), User.objects.get(pk=user.pk))
        for i, key in enumerate(rows.keys):
            check_principal(w, rows, ("key", i), OrganisationAPIKey.objects.get(pk=key.pk))
        transaction.set_rollback(True)


def _list_page_keys(principal: Any, environment: Environment) -> dict[int, list[str]]:
    """feature id -> my_permissions as the feature-state list computes them: the page reads
    of its features' tags what `engine.tags_needed` says, decided by `keys_on_tag_codes`."""
    page = StatesPage(
        default_states_for_list(environment=environment),
        environment=environment,
        filtered=False,
        tags=engine.tags_needed(principal, environment),
    )[0:1000]
    codes = {state.feature_id: getattr(state, FEATURE_TAG_CODES, None) for state in page}
    held = engine.keys_on_tag_codes(principal, environment, codes.values())
    return {feature_id: held[text] for feature_id, text in codes.items()}
