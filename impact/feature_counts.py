"""How many features a change of a tag-supported key's state gains or loses, counted with the
engine's `FeatureIndex` (docs/PERMISSIONS.md, impact previews)."""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID

from features.models import Feature
from impact.snapshots import Snapshot
from permissions.engine import FeatureIndex, FeatureTags, KeyState
from projects.models import Project


def project_feature_index(project_id: int) -> FeatureIndex:
    """The `FeatureIndex` of every feature of a project: 1 query when this process has it for
    the project's current `features_version`, else 4 (the version, the feature ids, their
    tags, the version again). Kept for the last few (project, version) pairs: a version is
    never reused, so a kept index is never stale."""
    version = _features_version(project_id)
    if version is None:
        return FeatureIndex((), {})
    try:
        return _feature_index_at(project_id, version)
    except _VersionMoved:  # written meanwhile: use what was read, keep nothing
        return _feature_index_read(project_id)


class _VersionMoved(Exception):
    pass


def _features_version(project_id: int) -> UUID | None:
    return Project.objects.filter(pk=project_id).values_list("features_version", flat=True).first()


@lru_cache(maxsize=8)
def _feature_index_at(project_id: int, version: UUID) -> FeatureIndex:
    """The index read while the project's version was `version` (read before and after it,
    so it is the index of that version); raises `_VersionMoved` otherwise (not cached)."""
    index = _feature_index_read(project_id)
    if _features_version(project_id) != version:
        raise _VersionMoved
    return index


def _feature_index_read(project_id: int) -> FeatureIndex:
    """The index as the database has it now: 2 queries (the feature ids, then their tags),
    built without a `FeatureTags` per feature."""
    feature_ids = list(
        Feature.objects.filter(project_id=project_id).order_by("id").values_list("id", flat=True)
    )
    tag_rows = Feature.tags.through.objects.filter(feature__project_id=project_id).values_list(
        "feature_id", "tag_id", "tag__is_restricted"
    )
    return FeatureIndex.from_tag_rows(feature_ids, tag_rows)


class FeatureCounts:
    """Counts, per project, the features a key held as one state before and as another after
    newly reaches and no longer reaches, once per distinct pair of states.

    A key whose state did not change can only gain or lose features whose tags changed (the
    others decide as before), so it is counted on those features alone: a tag restricted on a
    large project costs a few operations per distinct state on the features carrying it."""

    def __init__(self, before: Snapshot, after: Snapshot) -> None:
        self.before, self.after = before, after
        self._whole: dict[int, tuple[FeatureIndex, FeatureIndex]] = {}
        self._changed: dict[int, tuple[FeatureIndex, FeatureIndex]] = {}
        self._counts: dict[tuple[int, KeyState, KeyState], tuple[int, int]] = {}

    def count(self, project_id: int, old: KeyState, new: KeyState) -> tuple[int, int]:
        """(newly reached, no longer reached) features of the project."""
        if old == new:
            old_index, new_index = self._changed_indexes(project_id)
            if not old_index.all and not new_index.all:
                return 0, 0
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

    def _changed_indexes(self, project_id: int) -> tuple[FeatureIndex, FeatureIndex]:
        """(before, after) indexes over the features whose tags changed (added and removed
        features included)."""
        pair = self._changed.get(project_id)
        if pair is None:
            old, new = self._features(project_id)
            ids = sorted(f for f in old.keys() | new.keys() if old.get(f) != new.get(f))
            pair = (FeatureIndex(ids, old), FeatureIndex(ids, new))
            self._changed[project_id] = pair
        return pair
