"""A snapshot's policies (each holder's rows aggregated once, a principal's policy the union of
its holders') equal the engine's `policy_from_rows` on the same rows, and the feature counts
of `impact.feature_counts` equal the engine's decisions feature by feature."""

from __future__ import annotations

import random
from typing import Any

import pytest

from impact.feature_counts import FeatureCounts
from impact.snapshots import Holder, Snapshot
from permissions.catalogue import KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.engine import FeatureTags, KeyState, policy_from_rows

PROJECTS = (1, 2)
ENVIRONMENTS = {10: 1, 11: 1, 20: 2}
TAGS = (100, 101, 102, 103)
KEYS = (*KEYS_BY_LEVEL[Level.PROJECT][:3], *KEYS_BY_LEVEL[Level.ENVIRONMENT][:4])


def _random_rows(rng: random.Random, holder: Holder, first_grant: int) -> list[tuple[Any, ...]]:
    """Grant rows of one holder as the engine reads them: one row per entry tag."""
    kind, holder_id = holder
    who = (
        holder_id if kind == "user" else None,
        holder_id if kind == "group" else None,
        holder_id if kind == "role" else None,
    )
    rows: list[tuple[Any, ...]] = []
    for grant_id in range(first_grant, first_grant + rng.randint(0, 3)):
        level = rng.choice(("organisation", "project", "environment"))
        environment = rng.choice(list(ENVIRONMENTS)) if level == "environment" else None
        project = (
            ENVIRONMENTS[environment]
            if environment is not None
            else (rng.choice(PROJECTS) if level == "project" else None)
        )
        admin = rng.random() < 0.15
        keys = rng.sample(KEYS, rng.randint(0, 3))
        if not keys:
            rows.append((grant_id, project, environment, admin, None, None, *who))
        for key in keys:
            tags = rng.sample(TAGS, rng.randint(0, 2))
            for tag in tags or [None]:
                rows.append((grant_id, project, environment, admin, key, tag, *who))
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_snapshot_policy__random_rows__equals_the_engines_policy(seed: int) -> None:
    rng = random.Random(seed)
    holders: list[Holder] = [("user", 1), ("group", 1), ("group", 2), ("role", 1), ("role", 2)]
    rows_of = {
        holder: frozenset(_random_rows(rng, holder, 100 * i)) for i, holder in enumerate(holders)
    }
    snapshot = Snapshot(
        organisation_id=1,
        member_roles={1: "USER"},
        api_keys={},
        groups_of={1: frozenset({1, 2})},
        roles_of={("group", 1): frozenset({1}), ("user", 1): frozenset({2})},
        rows_of=rows_of,
        projects=frozenset(PROJECTS),
        environments=ENVIRONMENTS,
        features={},
    )
    for projects in ({None}, {1}, {2, None}, {1, 2, None}):
        for is_admin in (False, True):
            inputs = (True, is_admin, frozenset(rng.sample(holders, rng.randint(0, 5))))
            rows = [row for h in inputs[2] for row in rows_of[h] if row[1] in projects]
            expected = policy_from_rows(
                1, is_member=True, is_admin=is_admin, rows=rows, keep_entries=False
            )
            assert snapshot.policy(inputs, projects) == expected


def _features(rng: random.Random, restricted: frozenset[int]) -> dict[int, FeatureTags]:
    features = {}
    for feature_id in range(30):
        tags = frozenset(rng.sample(TAGS, rng.randint(0, 3)))
        features[feature_id] = FeatureTags(tags=tags, restricted=tags & restricted)
    return features


@pytest.mark.parametrize("seed", range(20))
def test_feature_counts__random_features_and_states__equal_decisions_feature_by_feature(
    seed: int,
) -> None:
    rng = random.Random(seed)
    old_features = _features(rng, frozenset({100}))
    new_features = {
        feature_id: FeatureTags(tags=tags.tags, restricted=tags.tags & {100, 101})
        for feature_id, tags in old_features.items()
        if rng.random() < 0.9  # a few features removed
    }
    new_features[99] = FeatureTags(tags=frozenset({101}), restricted=frozenset({101}))
    snapshots = [
        Snapshot(
            organisation_id=1,
            member_roles={},
            api_keys={},
            groups_of={},
            roles_of={},
            rows_of={},
            projects=frozenset({1}),
            environments={},
            features={1: features},
        )
        for features in (old_features, new_features)
    ]
    counts = FeatureCounts(*snapshots)
    key = sorted(TAG_SUPPORTED_KEYS)[0]
    for _ in range(20):
        old = KeyState(
            admin=rng.random() < 0.1,
            untagged=rng.random() < 0.3,
            tags=frozenset(rng.sample(TAGS, rng.randint(0, 3))),
        )
        new = old if rng.random() < 0.5 else KeyState(False, True, frozenset({101}))
        ids = old_features.keys() | new_features.keys()
        had = {f for f in ids if f in old_features and old.decides(key, old_features[f])}
        has = {f for f in ids if f in new_features and new.decides(key, new_features[f])}
        assert counts.count(1, old, new) == (len(has - had), len(had - has))
