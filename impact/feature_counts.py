"""How many features a change of a tag-supported key's state gains or loses, counted with the
engine's `FeatureIndex` (docs/PERMISSIONS.md, impact previews)."""

from __future__ import annotations

from impact.snapshots import Snapshot
from permissions.engine import FeatureIndex, FeatureTags, KeyState


class FeatureCounts:
    """Counts, per project, the features a key held as one state before and as another after
    newly reaches and no longer reaches, once per distinct pair of states.

    A key whose state did not change can only gain or lose features whose tags changed (the
    others decide as before), so it is counted on those features alone, with its tags cut to
    the tags they carry: a tag restricted on a large project costs a few operations per
    distinct state on the features carrying it, not a pass over the project's features per
    principal."""

    def __init__(self, before: Snapshot, after: Snapshot) -> None:
        self.before, self.after = before, after
        self._whole: dict[int, tuple[FeatureIndex, FeatureIndex]] = {}
        self._changed: dict[int, tuple[FeatureIndex, FeatureIndex, frozenset[int]]] = {}
        self._counts: dict[tuple[int, KeyState, KeyState], tuple[int, int]] = {}

    def count(self, project_id: int, old: KeyState, new: KeyState) -> tuple[int, int]:
        """(newly reached, no longer reached) features of the project."""
        if old == new:
            old_index, new_index, tags = self._changed_indexes(project_id)
            if not old_index.all and not new_index.all:
                return 0, 0
            old = new = KeyState(admin=old.admin, untagged=old.untagged, tags=old.tags & tags)
        else:
            old_index, new_index = self._whole_indexes(project_id)
        found = self._counts.get((project_id, old, new))
        if found is None:
            old_reach, new_reach = old_index.reached(old), new_index.reached(new)
            found = ((new_reach & ~old_reach).bit_count(), (old_reach & ~new_reach).bit_count())
            self._counts[(project_id, old, new)] = found
        return found

    def _features(self, project_id: int) -> tuple[dict[int, FeatureTags], dict[int, FeatureTags]]:
        return self.before.features.get(project_id, {}), self.after.features.get(project_id, {})

    def _whole_indexes(self, project_id: int) -> tuple[FeatureIndex, FeatureIndex]:
        """(before, after) indexes over the same features: every feature of the project."""
        pair = self._whole.get(project_id)
        if pair is None:
            old, new = self._features(project_id)
            ids = sorted(old.keys() | new.keys())
            old_index = FeatureIndex(ids, old)
            pair = (old_index, old_index if old == new else FeatureIndex(ids, new))
            self._whole[project_id] = pair
        return pair

    def _changed_indexes(
        self, project_id: int
    ) -> tuple[FeatureIndex, FeatureIndex, frozenset[int]]:
        """(before, after) indexes over the features whose tags changed (added and removed
        features included), and every tag those features carry before or after."""
        found = self._changed.get(project_id)
        if found is None:
            old, new = self._features(project_id)
            ids = sorted(f for f in old.keys() | new.keys() if old.get(f) != new.get(f))
            tags: set[int] = set()
            for feature_id in ids:
                for feature_tags in (old.get(feature_id), new.get(feature_id)):
                    if feature_tags is not None:
                        tags |= feature_tags.tags | feature_tags.restricted
            found = (FeatureIndex(ids, old), FeatureIndex(ids, new), frozenset(tags))
            self._changed[project_id] = found
        return found
