"""A checkout project with the people of docs/ADMIN.md, for the admin's member tests.

Staging has change requests off, Production on (one approval). `payments` is restricted,
`growth` is not. The people:

- `org_admin`: an ADMIN member of the organisation;
- `project_admin`: a USER member holding `admin` on the project;
- `bob`: the payments engineer (a role tagged `payments` in both environments:
  UPDATE_FEATURE_STATE, CREATE_CHANGE_REQUEST, MANAGE_SEGMENT_OVERRIDES; DELETE_FEATURE
  on the project tagged `payments`);
- `carol`: the approver (APPROVE_CHANGE_REQUEST tagged `payments` and `growth` in
  Production);
- `viewer`: VIEW_ENVIRONMENT in Staging only;
- `outsider`: an active user who is a member of no organisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from features.models import FeatureState
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    DELETE_FEATURE,
    MANAGE_SEGMENT_OVERRIDES,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from tests import factories as f


@dataclass
class Checkout:
    organisation: Any
    project: Any
    staging: Any
    production: Any
    payments: Any
    growth: Any
    apple_pay: Any
    promo: Any
    segment: Any
    org_admin: Any
    project_admin: Any
    bob: Any
    carol: Any
    viewer: Any
    outsider: Any

    def state(self, feature: Any, environment: Any) -> FeatureState:
        return FeatureState.objects.get(
            feature=feature, environment=environment, segment_override__isnull=True
        )


def build_checkout(name: str = "Acme") -> Checkout:
    organisation = f.OrganisationFactory(name=name)
    project = f.ProjectFactory(organisation=organisation, name="Checkout")
    staging = f.EnvironmentFactory(project=project, name="Staging")
    production = f.EnvironmentFactory(
        project=project, name="Production", minimum_change_request_approvals=1
    )
    payments = f.TagFactory(project=project, label="payments", is_restricted=True)
    growth = f.TagFactory(project=project, label="growth")
    apple_pay = f.FeatureFactory(project=project, name="apple_pay", tags=[payments])
    promo = f.FeatureFactory(project=project, name="promo_code_field", tags=[growth])
    for feature in (apple_pay, promo):
        for environment in (staging, production):
            FeatureState.objects.get_or_create(
                feature=feature, environment=environment, segment_override=None
            )
    segment = f.SegmentFactory(project=project, name="beta users")
    org_admin = f.member(organisation, admin=True, username=f"{name.lower()}-admin")
    project_admin = f.member(organisation, username=f"{name.lower()}-padmin")
    f.grant(project_admin, project, admin=True)
    bob = f.member(organisation, username=f"{name.lower()}-bob")
    engineer = f.RoleFactory(organisation=organisation, name="Payments engineer")
    f.RoleAssignmentFactory(role=engineer, user=bob)
    for environment in (staging, production):
        f.grant(
            engineer,
            environment,
            {
                VIEW_ENVIRONMENT: [],
                UPDATE_FEATURE_STATE: [payments],
                CREATE_CHANGE_REQUEST: [payments],
                MANAGE_SEGMENT_OVERRIDES: [payments],
            },
        )
    f.grant(engineer, project, {VIEW_PROJECT: [], DELETE_FEATURE: [payments]})
    carol = f.member(organisation, username=f"{name.lower()}-carol")
    approver = f.RoleFactory(organisation=organisation, name="Release approver")
    f.RoleAssignmentFactory(role=approver, user=carol)
    f.grant(
        approver,
        production,
        {VIEW_ENVIRONMENT: [], APPROVE_CHANGE_REQUEST: [payments, growth]},
    )
    viewer = f.member(organisation, username=f"{name.lower()}-viewer")
    f.grant(viewer, staging, [VIEW_ENVIRONMENT])
    outsider = f.UserFactory(username=f"{name.lower()}-outsider")
    return Checkout(
        organisation=organisation,
        project=project,
        staging=staging,
        production=production,
        payments=payments,
        growth=growth,
        apple_pay=apple_pay,
        promo=promo,
        segment=segment,
        org_admin=org_admin,
        project_admin=project_admin,
        bob=bob,
        carol=carol,
        viewer=viewer,
        outsider=outsider,
    )
