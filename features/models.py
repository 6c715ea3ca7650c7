"""Features, their per-environment states, segments, overrides and change requests."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from environments.models import Environment
from organisations.models import OrganisationAPIKey
from projects.models import Project, Tag
from tagwarden.models import NamedModel, exactly_one_set, optional_fk, unique_when_set
from tagwarden.sql import Likely


class Feature(NamedModel):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="features")
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True, default="")
    tags = models.ManyToManyField(Tag, blank=True, related_name="features")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(NamedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="feature_unique_name"),
        ]


class Segment(NamedModel):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=200)
    rules = models.JSONField(default=list, blank=True)

    class Meta(NamedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="segment_unique_name"),
        ]


class SegmentOverride(models.Model):
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="segment_overrides")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="segment_overrides"
    )
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="overrides")
    priority = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["feature", "environment", "segment"], name="override_unique_segment"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feature_id}/{self.environment_id}/{self.segment_id}"


class FeatureStateQuerySet(models.QuerySet["FeatureState"]):
    def defaults_of(self, environment: Environment | int) -> FeatureStateQuerySet:
        """The environment's default states (one per feature of its project), read from the
        (environment, feature) index of default states: the condition that a state is no
        override's is `Likely`, or SQLite would walk the override column's unique index, whose
        NULLs are every default state of every environment."""
        return self.filter(Likely(models.Q(segment_override__isnull=True)), environment=environment)


class FeatureState(models.Model):
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="feature_states"
    )
    segment_override = models.OneToOneField(
        SegmentOverride,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="feature_state",
    )
    enabled = models.BooleanField(default=False)
    value = models.JSONField(null=True, blank=True, default=None)
    # Optimistic concurrency: +1 on every write that changes the state.
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FeatureStateQuerySet.as_manager()

    class Meta:
        ordering = ["feature_id", "id"]
        constraints = [
            # (environment, feature): an environment's default states, counted and paged by
            # the list from this index (docs/PERFORMANCE.md, "List page").
            models.UniqueConstraint(
                fields=["environment", "feature"],
                condition=models.Q(segment_override__isnull=True),
                name="featurestate_one_default_per_environment",
            ),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="featurestate_version"),
        ]
        indexes = [models.Index(fields=["environment", "feature"], name="featurestate_env_feature")]

    def __str__(self) -> str:
        return f"state {self.feature_id}@{self.environment_id}"

    @property
    def is_default(self) -> bool:
        return self.segment_override_id is None


class ChangeRequestStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMMITTED = "committed", "Committed"


class ChangeRequest(models.Model):
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="change_requests"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    author_user = optional_fk(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, related_name="authored_change_requests"
    )
    author_api_key = optional_fk(
        OrganisationAPIKey, on_delete=models.SET_NULL, related_name="authored_change_requests"
    )
    status = models.CharField(
        max_length=16, choices=ChangeRequestStatus.choices, default=ChangeRequestStatus.OPEN
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    committed_by_user = optional_fk(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        related_name="committed_change_requests",
    )
    committed_by_api_key = optional_fk(
        OrganisationAPIKey, on_delete=models.SET_NULL, related_name="committed_change_requests"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(author_user__isnull=False, author_api_key__isnull=False),
                name="changerequest_one_author",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=ChangeRequestStatus.values),
                name="changerequest_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class ChangeRequestChange(models.Model):
    """One target state of a change request and the values to write into it."""

    change_request = models.ForeignKey(
        ChangeRequest, on_delete=models.CASCADE, related_name="changes"
    )
    # Deleting the feature keeps the change, with no feature and no target: the change
    # request can then never be committed in part (409 stale, docs/API.md).
    feature = models.ForeignKey(Feature, null=True, on_delete=models.SET_NULL, related_name="+")
    segment_override = models.ForeignKey(
        SegmentOverride, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The target. When it disappears (override deleted) the change can no longer be applied
    # and commit answers 409 stale instead of silently writing somewhere else.
    feature_state = models.ForeignKey(
        FeatureState, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    targets_override = models.BooleanField(default=False)
    enabled = models.BooleanField()
    value = models.JSONField(null=True, blank=True, default=None)
    recorded_version = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"change #{self.pk} of change request {self.change_request_id}"


class ChangeRequestApproval(models.Model):
    change_request = models.ForeignKey(
        ChangeRequest, on_delete=models.CASCADE, related_name="approvals"
    )
    user = optional_fk(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="change_request_approvals"
    )
    api_key = optional_fk(
        OrganisationAPIKey, on_delete=models.CASCADE, related_name="change_request_approvals"
    )
    approved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["approved_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=exactly_one_set("user", "api_key"), name="approval_exactly_one_principal"
            ),
            unique_when_set("change_request", "user", name="approval_unique_user"),
            unique_when_set("change_request", "api_key", name="approval_unique_api_key"),
        ]

    def __str__(self) -> str:
        return f"approval of change request {self.change_request_id}"
