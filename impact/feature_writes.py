"""The impact of a change that writes only some tags and features of one project (a tag
restricted or deleted, a feature's tags edited): cost that follows the features whose tags
change and the principals holding tag-supported keys on the project, not the organisation
(docs/PERFORMANCE.md, "How the costs follow the work").

Nobody's policy changes: grants, membership, groups and roles are as they were. Only
tag-supported keys on the project's scopes can decide differently, and only on the features
whose tags (or whose tags' restriction) changed: those carrying the written tags, before or
after, and the written features. So every principal holding anything on those (scope, key)
pairs gets its key states once (the engine's `holdings_key_states`), and each distinct state
is counted once over those features, before and after (`FeatureIndex`). The result is the
one `impact_between` finds from two whole snapshots (tests/permissions/test_impact_property.py
holds them to each other).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import Q

from audit.models import AuditLogEntry
from environments.models import Environment
from features.models import Feature
from impact.changes import Impact, RawChange, cycle_collection_paused, impact_of
from impact.reach import Pair, Reach
from impact.snapshots import features_of
from permissions.catalogue import KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.engine import FeatureIndex, FeatureTags, KeyState, holdings_scope_key_states


@dataclass(frozen=True)
class FeatureWrite:
    """The caller's word that a change writes only these tags and features of one project,
    creating and deleting no feature (checked against the audit entries it wrote)."""

    project_id: int
    tag_ids: Collection[int] = ()
    feature_ids: Collection[int] = ()


class FeaturesOnly:
    """Runs around a change that writes only the tags and features of a `FeatureWrite`: the
    features it can touch are read before, and after; `impact` checks that the change wrote
    nothing else."""

    def __init__(self, organisation_id: int, write: FeatureWrite) -> None:
        self.organisation_id, self.write = organisation_id, write
        self.before = _touched(write)

    def impact(self, entries: list[int]) -> Impact:
        write = self.write
        allowed = {("tag", str(t)) for t in write.tag_ids}
        allowed |= {("feature", str(f)) for f in write.feature_ids}
        written = AuditLogEntry.objects.filter(pk__in=entries).values_list(
            "object_type", "object_id"
        )
        stray = [entry for entry in written if entry not in allowed]
        if stray:  # the caller's word was wrong: never record a partial impact
            raise RuntimeError(f"The change wrote more than {write}: {stray}")
        after = _touched(write, also=self.before.keys())
        if after.keys() != self.before.keys():
            raise RuntimeError(f"The change created or deleted features: {write}")
        with cycle_collection_paused():
            return feature_tags_impact(self.organisation_id, write.project_id, self.before, after)


def _touched(write: FeatureWrite, also: Collection[int] = ()) -> dict[int, FeatureTags]:
    """The tags of the project's features carrying one of the write's tags, or written, or
    in `also` (1 query)."""
    carrying = Feature.objects.filter(tags__in=list(write.tag_ids)).values("id")
    where = Q(id__in=carrying) | Q(id__in=[*write.feature_ids, *also])
    return features_of(Q(project_id=write.project_id) & where).get(write.project_id, {})


def feature_tags_impact(
    organisation_id: int,
    project_id: int,
    before: dict[int, FeatureTags],
    after: dict[int, FeatureTags],
) -> Impact:
    """Who gains and who loses what when the project's features go from the tags of
    `before` to those of `after` (features missing from one exist only in the other),
    everything else unchanged."""
    changed = sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))
    if not changed:
        return Impact()
    # One index over the changed features as they were (bits 0..n-1) and as they are (bits
    # n..2n-1): a state's reach before and after in one pass.
    n = len(changed)
    index = FeatureIndex(
        range(2 * n),
        {
            **{at: before[f] for at, f in enumerate(changed) if f in before},
            **{n + at: after[f] for at, f in enumerate(changed) if f in after},
        },
    )
    old_mask = (1 << n) - 1
    environments = sorted(
        Environment.objects.filter(project_id=project_id).values_list("id", flat=True)
    )
    scopes: list[tuple[int | None, tuple[str, ...]]] = [
        (None, _tag_supported(Level.PROJECT)),
        *((environment, _tag_supported(Level.ENVIRONMENT)) for environment in environments),
    ]
    pairs: list[Pair] = [(project_id, e, key) for e, keys in scopes for key in keys]
    reach = Reach(organisation_id, pairs)
    counted: dict[KeyState, tuple[int, int]] = {}
    gained: list[RawChange] = []
    lost: list[RawChange] = []
    for principal, holders in reach.principals():
        by_scope = holdings_scope_key_states(
            project_id, scopes, holdings=[reach.holdings[h] for h in holders]
        )
        for (environment_id, keys), states in zip(scopes, by_scope, strict=True):
            for key, state in zip(keys, states, strict=True):
                found = counted.get(state)
                if found is None:
                    reached = index.reached(state)
                    old_reach, new_reach = reached & old_mask, reached >> n
                    found = counted[state] = (
                        (new_reach & ~old_reach).bit_count(),
                        (old_reach & ~new_reach).bit_count(),
                    )
                newly, no_longer = found
                if newly:
                    gained.append((principal, key, project_id, environment_id, newly))
                if no_longer:
                    lost.append((principal, key, project_id, environment_id, no_longer))
    # Principals come in order (users, then API keys, by id), each with its pairs in order.
    return impact_of(
        gained, lost, reach.api_key_names, user_emails=reach.user_emails, in_order=True
    )


def _tag_supported(level: Level) -> tuple[str, ...]:
    return tuple(sorted(k for k in KEYS_BY_LEVEL[level] if k in TAG_SUPPORTED_KEYS))
