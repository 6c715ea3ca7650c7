"""Reads for projects and tags."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet

from organisations.models import Role
from permissions import engine
from permissions.models import GrantEntryTag
from projects.models import Project, Tag


def projects_viewable(
    *, principal: engine.Principal, organisation_id: int | None = None
) -> QuerySet[Project]:
    """The projects `principal` may view (docs/PERMISSIONS.md, "Viewing"), in one query."""
    qs = Project.objects.filter(engine.viewable_projects_q(principal))
    if organisation_id is not None:
        qs = qs.filter(organisation_id=organisation_id)
    return qs.order_by("name", "id")


def _named_by_grant() -> Exists:
    return Exists(GrantEntryTag.objects.filter(tag_id=OuterRef("pk")))


def tags_of_project(*, project: Project) -> QuerySet[Tag]:
    """The project's tags, each annotated with `is_protected` (restricted, or named by a grant
    entry) without a query per tag."""
    return (
        Tag.objects.filter(project=project)
        .annotate(
            is_protected=ExpressionWrapper(
                Q(is_restricted=True) | _named_by_grant(), output_field=BooleanField()
            )
        )
        .order_by("label", "id")
    )


def tag_get(*, project: Project, tag_id: int) -> Tag | None:
    return tags_of_project(project=project).filter(pk=tag_id).first()


def tag_protected_ids(*, tags: Iterable[Tag]) -> set[int]:
    """Ids of the protected tags among `tags` (docs/API.md, "Tags and features"): one query at most."""
    tags = list(tags)
    protected = {t.pk for t in tags if t.is_restricted}
    rest = [t.pk for t in tags if t.pk not in protected]
    if rest:
        protected |= set(
            GrantEntryTag.objects.filter(tag_id__in=rest).values_list("tag_id", flat=True)
        )
    return protected


def tag_is_named_by_grant(*, tag: Tag) -> bool:
    return GrantEntryTag.objects.filter(tag=tag).exists()


def roles_naming_tag(*, tag: Tag) -> list[Role]:
    """The roles whose grant entries name `tag`, by name."""
    return list(
        Role.objects.filter(grants__entries__entry_tags__tag=tag).distinct().order_by("name", "id")
    )
