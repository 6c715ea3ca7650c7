"""The tags of a feature, as decisions read them: 1 query cold, 0 when prefetched."""

from __future__ import annotations

import functools
from typing import Any

from django.db.models import (
    Aggregate,
    Case,
    CharField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Subquery,
    When,
)

from features.models import Feature
from permissions.engine.policy import FeatureTags
from projects.models import Tag

_FEATURE_TAGS_ATTR = "_tagwarden_tags"

# --------------------------------------------------------------------------------------
# Feature tags: 1 query cold, 0 when prefetched or already loaded
# --------------------------------------------------------------------------------------


def feature_tags(feature: Feature) -> FeatureTags:
    cached = getattr(feature, _FEATURE_TAGS_ATTR, None)
    if cached is not None:
        return cached
    prefetched = getattr(feature, "_prefetched_objects_cache", {}).get("tags")
    if prefetched is not None:
        pairs = [(t.pk, t.is_restricted) for t in prefetched]
    else:
        pairs = list(feature.tags.values_list("id", "is_restricted"))
    result = FeatureTags(
        tags=frozenset(t for t, _ in pairs), restricted=frozenset(t for t, r in pairs if r)
    )
    setattr(feature, _FEATURE_TAGS_ATTR, result)
    return result


def forget_feature_tags(feature: Feature) -> None:
    """Drop the memoised tags of a feature whose tags were just changed."""
    if hasattr(feature, _FEATURE_TAGS_ATTR):
        delattr(feature, _FEATURE_TAGS_ATTR)


class _TagCodes(Aggregate):
    """The tags of a feature as one string: `id` for a tag, `-id` for a restricted one."""

    function = "GROUP_CONCAT"
    output_field = CharField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(
            compiler,
            connection,
            function="STRING_AGG",
            template="%(function)s((%(expressions)s)::text, ',')",
            **extra,
        )


@functools.cache
def feature_tags_subquery(feature_ref: str) -> Subquery:
    """An annotation carrying the tags of the feature at `feature_ref` (e.g. "feature_id"), so
    a row fetched for a write brings its feature's tags in the same query; hand its value to
    `feature_tags_remember`. Built once per `feature_ref` (an annotation is resolved on a copy,
    so one expression serves every query; building it costs a request about a millisecond)."""
    # Whether the tag is restricted, by its primary key: a join to the tags let PostgreSQL
    # scan every tag of the organisation for each feature of a page (8 ms a page).
    restricted = Exists(Tag.objects.filter(pk=OuterRef("tag_id"), is_restricted=True))
    code = Case(
        When(restricted, then=-F("tag_id")), default=F("tag_id"), output_field=IntegerField()
    )
    return Subquery(
        Feature.tags.through.objects.filter(feature_id=OuterRef(feature_ref))  # type: ignore[misc]
        .values("feature_id")
        .annotate(codes=_TagCodes(code))
        .values("codes")[:1],
        output_field=CharField(),
    )


def feature_tags_remember(feature: Feature, codes: str | None) -> FeatureTags:
    """Memoise on `feature` the tags read with `feature_tags_subquery` (no query)."""
    result = _tags_from_codes(codes)
    setattr(feature, _FEATURE_TAGS_ATTR, result)
    return result


@functools.lru_cache(maxsize=4096)
def _tags_from_codes(codes: str | None) -> FeatureTags:
    # Parsed once per distinct string: the features of a list page share a few tag sets.
    ids = [int(code) for code in (codes or "").split(",") if code]
    return FeatureTags(
        tags=frozenset(abs(code) for code in ids),
        restricted=frozenset(-code for code in ids if code < 0),
    )
