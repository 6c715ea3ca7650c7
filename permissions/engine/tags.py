"""The tags of a feature, as decisions read them: 1 query cold, 0 when prefetched."""

from __future__ import annotations

import enum
import functools

from django.db import connection
from django.db.models import CharField, ForeignKey, Model
from django.db.models.expressions import RawSQL

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


class TagsNeeded(enum.Enum):
    """What a principal's keys on a scope read of a feature's tags (`tags_needed`)."""

    NONE = "none"  # nothing: no key's answer depends on a feature's tags
    RESTRICTED = "restricted"  # whether it carries a restricted tag (no tagged entry)
    ALL = "all"


def feature_tags_subquery(
    model: type[Model], feature_field: str = "feature", *, needed: TagsNeeded = TagsNeeded.ALL
) -> RawSQL:
    """An annotation carrying the tags of the feature of each `model` row (its `feature_field`
    foreign key), so a row fetched for a write or a list page brings its feature's tags in
    the same query; hand its value to `feature_tags_remember`. The value is one string: `id`
    for a tag, `-id` for a restricted one. With `needed=RESTRICTED`, only one restricted tag
    of the feature, if it has any: enough for the keys of a principal without tagged entries
    (`tags_needed`), and cheaper to read.

    Raw SQL, composed once per model and database vendor: a `Subquery` was resolved and
    compiled again for every query, about 0.7 ms of a list page (docs/PERFORMANCE.md, "List
    page"). It names the model's table, so annotate a query on that table itself (the
    sub-queries Django aliases are not its place)."""
    return RawSQL(
        _feature_tags_sql(connection.vendor, model, feature_field, needed),
        (),
        output_field=CharField(),
    )


@functools.cache
def _feature_tags_sql(
    vendor: str, model: type[Model], feature_field: str, needed: TagsNeeded
) -> str:
    quote = connection.ops.quote_name
    field = model._meta.get_field(feature_field)
    assert isinstance(field, ForeignKey), f"{model.__name__}.{feature_field} is no foreign key"
    table, column = model._meta.db_table, field.column
    # Whether the tag is restricted, by its primary key: a join to the tags let PostgreSQL
    # scan every tag of the organisation for each feature of a page (8 ms a page).
    restricted = (
        f"EXISTS (SELECT 1 FROM {quote(Tag._meta.db_table)} t "
        "WHERE t.id = ft.tag_id AND t.is_restricted)"
    )
    code = f"CASE WHEN {restricted} THEN -ft.tag_id ELSE ft.tag_id END"
    codes = (
        f"STRING_AGG(CAST({code} AS TEXT), ',')"
        if vendor == "postgresql"
        else f"GROUP_CONCAT({code})"
    )
    feature_tags = quote(Feature.tags.through._meta.db_table)
    if needed is TagsNeeded.RESTRICTED:
        # One restricted tag's code, as an aggregate over the feature's tags like the full
        # list: PostgreSQL then reads the restricted tags once (a hashed sub-plan), where a
        # filter with `LIMIT 1` had it scan the tags again for every feature of the page.
        return (
            f"(SELECT CAST(MIN(CASE WHEN {restricted} THEN -ft.tag_id END) AS TEXT) "
            f"FROM {feature_tags} ft WHERE ft.feature_id = {quote(table)}.{quote(column)})"
        )
    return (
        f"(SELECT {codes} FROM {feature_tags} ft "
        f"WHERE ft.feature_id = {quote(table)}.{quote(column)})"
    )


def feature_tags_remember(feature: Feature, codes: str | None) -> FeatureTags:
    """Memoise on `feature` the tags read with `feature_tags_subquery` (no query)."""
    result = tags_from_codes(codes)
    setattr(feature, _FEATURE_TAGS_ATTR, result)
    return result


@functools.lru_cache(maxsize=4096)
def tags_from_codes(codes: str | None) -> FeatureTags:
    """A feature's tags from the string `feature_tags_subquery` read (parsed once per
    distinct string: the features of a list page share a few tag sets)."""
    ids = [int(code) for code in (codes or "").split(",") if code]
    return FeatureTags(
        tags=frozenset(abs(code) for code in ids),
        restricted=frozenset(-code for code in ids if code < 0),
    )
