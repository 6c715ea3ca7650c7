"""factory-boy factories for every model. Build the domain through these in tests."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from audit.models import AuditLogEntry
from environments.models import Environment
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    Feature,
    FeatureState,
    Segment,
    SegmentOverride,
)
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions.models import Grant, GrantEntry, GrantEntryTag
from projects.models import Project, Tag

User = get_user_model()
PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"Organisation {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrganisationMembership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    role = MembershipRole.USER


class UserGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UserGroup
        skip_postgeneration_save = True

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"group-{n}")

    @factory.post_generation
    def users(obj, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            obj.users.set(extracted)


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"role-{n}")
    description = ""


class APIKeyFactory(factory.django.DjangoModelFactory):
    """Creates a key through the library's manager; the plain key is left on `obj.plain_key`."""

    class Meta:
        model = OrganisationAPIKey

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"key-{n}")
    is_admin = False

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> OrganisationAPIKey:
        obj, key = model_class.objects.create_key(**kwargs)
        obj.plain_key = key
        return obj


class RoleAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoleAssignment

    role = factory.SubFactory(RoleFactory)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    project = factory.SubFactory(ProjectFactory)
    label = factory.Sequence(lambda n: f"tag-{n}")
    is_restricted = False


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"env-{n}")
    minimum_change_request_approvals = None


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feature
        skip_postgeneration_save = True

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"feature_{n}")

    @factory.post_generation
    def tags(obj, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            obj.tags.set(extracted)


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"segment-{n}")
    rules = factory.LazyFunction(list)


class SegmentOverrideFactory(factory.django.DjangoModelFactory):
    """An override and its own feature state."""

    class Meta:
        model = SegmentOverride
        skip_postgeneration_save = True

    feature = factory.SubFactory(FeatureFactory)
    environment = factory.SubFactory(
        EnvironmentFactory, project=factory.SelfAttribute("..feature.project")
    )
    segment = factory.SubFactory(SegmentFactory, project=factory.SelfAttribute("..feature.project"))
    priority = 0

    @factory.post_generation
    def state(obj, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            FeatureState.objects.create(
                feature=obj.feature,
                environment=obj.environment,
                segment_override=obj,
                enabled=kwargs.get("enabled", False),
                value=kwargs.get("value"),
            )


class GrantFactory(factory.django.DjangoModelFactory):
    """A raw grant row (no validation): tests of the engine build grants with `grant()` below,
    tests of validation call the services."""

    class Meta:
        model = Grant

    organisation = factory.SubFactory(OrganisationFactory)
    admin = False


class ChangeRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChangeRequest

    environment = factory.SubFactory(EnvironmentFactory, minimum_change_request_approvals=1)
    title = factory.Sequence(lambda n: f"Change request {n}")
    author_user = factory.SubFactory(UserFactory)


class ChangeRequestChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChangeRequestChange

    change_request = factory.SubFactory(ChangeRequestFactory)
    enabled = True
    value = None
    recorded_version = 1


class ChangeRequestApprovalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChangeRequestApproval

    change_request = factory.SubFactory(ChangeRequestFactory)
    user = factory.SubFactory(UserFactory)


class AuditLogEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditLogEntry

    organisation = factory.SubFactory(OrganisationFactory)
    action = "created"
    object_type = "feature"
    object_id = "1"
    actor_user = None
    actor_api_key = None
    actor_type = factory.LazyAttribute(
        lambda o: "user" if o.actor_user else "api_key" if o.actor_api_key else ""
    )


def member(organisation: Organisation, *, admin: bool = False, **user_kwargs: Any) -> Any:
    """A new user who is a member (USER or ADMIN) of `organisation`."""
    user = UserFactory(**user_kwargs)
    MembershipFactory(
        user=user,
        organisation=organisation,
        role=MembershipRole.ADMIN if admin else MembershipRole.USER,
    )
    return user


def grant(
    principal: Any,
    scope: Organisation | Project | Environment,
    entries: dict[str, list[Tag]] | list[str] | None = None,
    *,
    admin: bool = False,
) -> Grant:
    """A grant row written directly (bypassing validation), for engine tests.

    `entries` maps keys to tags (`[]` = untagged), or is a plain list of untagged keys.
    """
    if isinstance(scope, Environment):
        scope_kwargs: dict[str, Any] = {
            "organisation_id": scope.project.organisation_id,
            "project_id": scope.project_id,
            "environment": scope,
        }
    elif isinstance(scope, Project):
        scope_kwargs = {"organisation_id": scope.organisation_id, "project": scope}
    else:
        scope_kwargs = {"organisation": scope}
    if isinstance(principal, Role):
        principal_kwargs: dict[str, Any] = {"role": principal}
    elif isinstance(principal, UserGroup):
        principal_kwargs = {"group": principal}
    else:
        principal_kwargs = {"user": principal}
    g = Grant.objects.create(admin=admin, **scope_kwargs, **principal_kwargs)
    if isinstance(entries, list):
        entries = {key: [] for key in entries}
    for key, tags in (entries or {}).items():
        entry = GrantEntry.objects.create(grant=g, key=key)
        GrantEntryTag.objects.bulk_create([GrantEntryTag(entry=entry, tag=t) for t in tags])
    return g
