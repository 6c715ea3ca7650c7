"""The tags of a feature, as decisions read them: 1 query cold, 0 when prefetched."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import (
    Aggregate,
    Case,
    CharField,
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
    result = _feature_tags_of(pairs)
    setattr(feature, _FEATURE_TAGS_ATTR, result)
    return result


def feature_tags_load(features: Iterable[Feature]) -> None:
    """Memoise the tags of many features (a page) in one query, without Tag objects: what
    `feature_tags` then reads. Features with one tag set share one FeatureTags.

    Plain SQL: for a page of a hundred features the ORM's handling of the id list and of
    the rows costs several times the query itself (docs/PERFORMANCE.md, list pages)."""
    by_feature = {feature.pk: feature for feature in features}
    pairs: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    if by_feature:
        through, tag = Feature.tags.through._meta, Tag._meta
        quote = connection.ops.quote_name
        feature_column = quote(through.get_field("feature").column)
        tag_column = quote(through.get_field("tag").column)
        placeholders = ", ".join(["%s"] * len(by_feature))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT ft.{feature_column}, ft.{tag_column}, t.{quote('is_restricted')} "
                f"FROM {quote(through.db_table)} ft JOIN {quote(tag.db_table)} t "
                f"ON t.{quote(tag.pk.column)} = ft.{tag_column} "
                f"WHERE ft.{feature_column} IN ({placeholders})",
                list(by_feature),
            )
            for feature_id, tag_id, restricted in cursor.fetchall():
                pairs[feature_id].append((tag_id, bool(restricted)))
    shared: dict[FeatureTags, FeatureTags] = {}
    for feature_id, feature in by_feature.items():
        tags = _feature_tags_of(pairs.get(feature_id, ()))
        setattr(feature, _FEATURE_TAGS_ATTR, shared.setdefault(tags, tags))


def _feature_tags_of(pairs: Iterable[tuple[int, bool]]) -> FeatureTags:
    """FeatureTags from (tag id, restricted) pairs."""
    pairs = list(pairs)
    return FeatureTags(
        tags=frozenset(t for t, _ in pairs), restricted=frozenset(t for t, r in pairs if r)
    )


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


def feature_tags_subquery(feature_ref: str) -> Subquery:
    """An annotation carrying the tags of the feature at `feature_ref` (e.g. "feature_id"), so
    a row fetched for a write brings its feature's tags in the same query; hand its value to
    `feature_tags_remember`."""
    code = Case(
        When(tag__is_restricted=True, then=-F("tag_id")),
        default=F("tag_id"),
        output_field=IntegerField(),
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
    ids = [int(code) for code in (codes or "").split(",") if code]
    result = FeatureTags(
        tags=frozenset(abs(code) for code in ids),
        restricted=frozenset(-code for code in ids if code < 0),
    )
    setattr(feature, _FEATURE_TAGS_ATTR, result)
    return result
