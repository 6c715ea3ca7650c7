"""Reads for feature states, segment overrides and change requests.

Every queryset here loads what its serializer needs in a constant number of queries:
the feature with its tags (the engine reads them from the prefetch cache to compute
`my_permissions`), the environment with its project (the engine needs the organisation),
an override's own state, a change request's changes and approvals.
"""

from __future__ import annotations

from uuid import UUID

from django.db.models import Prefetch, QuerySet

from environments.models import Environment
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    Feature,
    FeatureState,
    SegmentOverride,
)
from permissions import engine

#: The order of an environment's default states: a feature's name is unique in its project,
#: and an environment has one default state per feature of its project, so the name alone is a
#: total order, which the database reads from the (project, name) index of the features
#: instead of sorting every state (docs/PERFORMANCE.md, "List page").
DEFAULT_STATES_ORDER = ("feature__name",)


def default_states_of_environment(*, environment: Environment) -> QuerySet[FeatureState]:
    """The environment's default states (one per feature; overrides have their own)."""
    return (
        FeatureState.objects.defaults_of(environment)
        .select_related("feature", "environment__project")
        .prefetch_related("feature__tags")
        .order_by(*DEFAULT_STATES_ORDER)
    )


#: The annotation of `default_states_for_write` carrying the feature's tags.
FEATURE_TAG_CODES = "feature_tag_codes"


def default_states_for_write(*, environment: Environment) -> QuerySet[FeatureState]:
    """The environment's default states, each with its feature's tags read in the same query
    (`engine.feature_tags_subquery`) instead of a prefetch: for a write on one state."""
    return (
        default_states_of_environment(environment=environment)
        .prefetch_related(None)
        .annotate(**{FEATURE_TAG_CODES: engine.feature_tags_subquery(FeatureState)})
    )


def default_states_for_list(*, environment: Environment) -> QuerySet[FeatureState]:
    """The environment's default states for a list page, to filter and count: paginate them
    through `StatesPage`, which reads a page with its features and their tags."""
    return FeatureState.objects.defaults_of(environment).order_by(*DEFAULT_STATES_ORDER)


#: (environment id, its project's `features_version`) -> the number of its default states.
_default_state_counts: dict[tuple[int, UUID], int] = {}
#: Counts a process keeps at most (then it forgets them all at once).
DEFAULT_STATE_COUNTS_KEPT = 1024


def default_state_count(*, environment: Environment) -> int:
    """The number of the environment's default states, kept by the process under the
    `features_version` its project was read with (the environment comes with its project).

    An environment has one default state per feature of its project: the number changes only
    when a feature is created or deleted, and each gives the project a new, never reused,
    version after its states are written, in the same transaction (features/signals.py). A
    count kept under the version read is therefore the count the query would give, and an
    unfiltered page costs the same in a project of 160,000 features as in one of 10,000
    (docs/PERFORMANCE.md, "List page")."""
    key = (environment.pk, environment.project.features_version)
    count = _default_state_counts.get(key)
    if count is None:
        count = FeatureState.objects.defaults_of(environment).count()
        if len(_default_state_counts) >= DEFAULT_STATE_COUNTS_KEPT:
            _default_state_counts.clear()
        _default_state_counts[key] = count
    return count


#: The orders of default states that are orders of the project's features by name.
_FEATURE_ORDERS: dict[tuple[str, ...], str] = {
    ("feature__name",): "name",
    ("-feature__name",): "-name",
}


class StatesPage:
    """Feature states (filtered and ordered) as a paginator reads them: counted as they are,
    and a page of them read in one query with their features and what `tags` says of the
    features' tags (`FEATURE_TAG_CODES`; absent with `TagsNeeded.NONE`).

    - A page in the features' name order, of a list no filter narrows, is the default states
      of a page of the project's features: the database walks the (project, name) index of
      the features and stops at the page, and reads each state by the (environment, feature)
      index of default states, instead of sorting every state of the environment. It relies
      on every feature of the project having its default state in every environment (made
      with the feature or the environment, in the same transaction: features/signals.py).
    - Any other page's ids are picked by a sub-query (filters, ordering, offset and limit),
      so the tags are computed for the page's rows alone: on SQLite, a column of a sorted,
      offset query is computed for every row the sort reads, offset included.

    An unfiltered list's count is `default_state_count`; a filtered one reads the
    environment's default states from their index (docs/PERFORMANCE.md, "List page").
    """

    def __init__(
        self,
        states: QuerySet[FeatureState],
        *,
        environment: Environment,
        filtered: bool,
        tags: engine.TagsNeeded = engine.TagsNeeded.ALL,
    ) -> None:
        self.states = states
        self.ordered = states.ordered
        self.environment = environment
        self.order = tuple(str(field) for field in states.query.order_by)
        self.feature_order = None if filtered else _FEATURE_ORDERS.get(self.order)
        self.tags = tags

    def count(self) -> int:
        if self.feature_order is not None:  # unfiltered: every default state
            return default_state_count(environment=self.environment)
        return self.states.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, page: slice) -> list[FeatureState]:
        if self.feature_order is not None:
            features = (
                Feature.objects.filter(project_id=self.environment.project_id)
                .order_by(self.feature_order)
                .values("pk")[page]
            )
            rows = FeatureState.objects.defaults_of(self.environment).filter(
                feature_id__in=features
            )
        else:
            rows = FeatureState.objects.filter(pk__in=self.states.values("pk")[page])
        rows = rows.select_related("feature").order_by(*self.order)
        if self.tags is not engine.TagsNeeded.NONE:
            rows = rows.annotate(
                **{FEATURE_TAG_CODES: engine.feature_tags_subquery(FeatureState, needed=self.tags)}
            )
        return list(rows)


def feature_of_environment_get(*, environment: Environment, feature_id: int) -> Feature | None:
    """A feature of the environment's project, with its tags; another project's is None."""
    return (
        Feature.objects.filter(project_id=environment.project_id, pk=feature_id)
        .select_related("project")
        .prefetch_related("tags")
        .first()
    )


def overrides_of_feature(
    *, environment: Environment, feature: Feature
) -> QuerySet[SegmentOverride]:
    return (
        SegmentOverride.objects.filter(environment=environment, feature=feature)
        .select_related("feature_state", "environment__project", "feature")
        .prefetch_related("feature__tags")
        .order_by("priority", "id")
    )


def change_requests_of_environment(*, environment: Environment) -> QuerySet[ChangeRequest]:
    return (
        ChangeRequest.objects.filter(environment=environment)
        .select_related("environment__project")
        .prefetch_related(
            Prefetch("changes", queryset=ChangeRequestChange.objects.order_by("id")),
            Prefetch(
                "approvals", queryset=ChangeRequestApproval.objects.order_by("approved_at", "id")
            ),
        )
        .order_by("-created_at", "-id")
    )


def change_request_get(*, environment: Environment, change_request_id: int) -> ChangeRequest | None:
    return (
        change_requests_of_environment(environment=environment).filter(pk=change_request_id).first()
    )
