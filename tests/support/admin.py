"""The admin tests' world (one organisation's worth of objects, one of each model) and the
helpers that read an admin page the way a browser posts it back: its form data, an inline's
prefix and blank row, and the error messages shown."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from django.forms import CheckboxInput

from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_FEATURE,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from tests import factories as f

# Verbose names of the role page's inlines.
ENV_GRANTS = "environment grants"
PROJECT_GRANTS = "project grants"
ASSIGNMENTS = "assignments (to users, groups or API keys of the organisation)"


@dataclass
class World:
    """One organisation's worth of objects, one of each model."""

    organisation: Any
    project: Any
    environment: Any
    tag: Any
    restricted_tag: Any
    feature: Any
    tagged_feature: Any
    segment: Any
    override: Any
    member: Any
    group: Any
    role: Any
    assignment: Any
    api_key: Any
    role_grant: Any
    user_grant: Any
    change_request: Any
    audit_entry: Any

    def objects(self) -> dict[str, Any]:
        """One object per admin model (`app_label.model_name`)."""
        return {
            "organisations.organisation": self.organisation,
            "organisations.organisationmembership": self.member.organisation_memberships.get(),
            "organisations.usergroup": self.group,
            "organisations.role": self.role,
            "organisations.roleassignment": self.assignment,
            "organisations.organisationapikey": self.api_key,
            "projects.project": self.project,
            "projects.tag": self.tag,
            "environments.environment": self.environment,
            "features.feature": self.feature,
            "features.featurestate": self.feature.states.get(
                environment=self.environment, segment_override__isnull=True
            ),
            "features.segment": self.segment,
            "features.segmentoverride": self.override,
            "features.changerequest": self.change_request,
            "permissions.grant": self.role_grant,
            "permissions.grantentry": self.role_grant.entries.get(key="UPDATE_FEATURE_STATE"),
            "audit.auditlogentry": self.audit_entry,
            "auth.user": self.member,
        }


def make_world(name: str) -> World:
    organisation = f.OrganisationFactory(name=name)
    project = f.ProjectFactory(organisation=organisation, name=f"{name} app")
    environment = f.EnvironmentFactory(project=project, name="production")
    tag = f.TagFactory(project=project, label=f"{name.lower()}-beta")
    restricted_tag = f.TagFactory(project=project, label=f"{name.lower()}-pay", is_restricted=True)
    feature = f.FeatureFactory(project=project, name=f"{name.lower()}_plain")
    tagged_feature = f.FeatureFactory(project=project, name=f"{name.lower()}_tagged", tags=[tag])
    segment = f.SegmentFactory(project=project, name=f"{name.lower()}-segment")
    override = f.SegmentOverrideFactory(feature=feature, environment=environment, segment=segment)
    member = f.member(organisation, username=f"{name.lower()}-member")
    group = f.UserGroupFactory(organisation=organisation, name=f"{name} group", users=[member])
    role = f.RoleFactory(organisation=organisation, name=f"{name} role")
    assignment = f.RoleAssignmentFactory(role=role, group=group)
    api_key = f.APIKeyFactory(organisation=organisation, name=f"{name} key")
    role_grant = f.grant(role, environment, {VIEW_ENVIRONMENT: [], UPDATE_FEATURE_STATE: [tag]})
    user_grant = f.grant(member, project, [VIEW_PROJECT, CREATE_FEATURE])
    change_request = f.ChangeRequestFactory(environment=environment, author_user=member)
    f.ChangeRequestChangeFactory(change_request=change_request, feature=feature)
    audit_entry = f.AuditLogEntryFactory(
        organisation=organisation, object_type="role", actor_name=f"{name.lower()}-bot"
    )
    f.grant(role, project, [VIEW_PROJECT])
    f.grant(group, environment, [APPROVE_CHANGE_REQUEST])
    return World(
        organisation=organisation,
        project=project,
        environment=environment,
        tag=tag,
        restricted_tag=restricted_tag,
        feature=feature,
        tagged_feature=tagged_feature,
        segment=segment,
        override=override,
        member=member,
        group=group,
        role=role,
        assignment=assignment,
        api_key=api_key,
        role_grant=role_grant,
        user_grant=user_grant,
        change_request=change_request,
        audit_entry=audit_entry,
    )


def form_data(response: Any) -> dict[str, Any]:
    """The POST data a browser would send for an admin add/change page as rendered: the main
    form, every inline formset's management form and rows (initial values)."""
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for name, field in form.fields.items():
            if field.disabled:
                continue
            bound = form[name]
            value = field.prepare_value(bound.value())
            if isinstance(field.widget, CheckboxInput):
                if value:
                    data[bound.html_name] = "on"
            elif value is None:
                continue
            elif isinstance(value, list | tuple):
                data[bound.html_name] = [str(v) for v in value]
            else:
                data[bound.html_name] = str(value)

    context = response.context
    add(context["adminform"].form)
    for inline in context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management[name].html_name] = management[name].value()
        for form in formset.forms:
            add(form)
    return data


def inline_prefix(response: Any, verbose_name_plural: str) -> str:
    """The formset prefix of the inline with this verbose name (two inlines on one model
    get numbered prefixes)."""
    for inline in response.context["inline_admin_formsets"]:
        if str(inline.opts.verbose_name_plural) == verbose_name_plural:
            return inline.formset.prefix
    raise KeyError(verbose_name_plural)


def errors(response) -> list[str]:
    """Every error message on the page (field and non-field)."""
    page = response.content.decode()
    return [
        html.unescape(re.sub(r"<[^>]+>", "", li).strip())
        for ul in re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S)
        for li in re.findall(r"<li>(.*?)</li>", ul, re.S)
    ]


def new_row(data: dict, prefix: str) -> int:
    """Index of the blank extra row of an inline (there is one: extra = 1)."""
    return int(data[f"{prefix}-TOTAL_FORMS"]) - 1
