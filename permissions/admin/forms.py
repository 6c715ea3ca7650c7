"""Admin forms for grants, roles and the explain page.

A grant's entries are edited as one checkbox and one tag list per catalogue key (the
catalogue is the single source of truth for the keys, their level and descriptions). A key
is granted when its box is ticked or tags are chosen; with tags, only on features carrying
one of them. Every key offers a tag list, so that a tagged entry on a key that does not
support tags can be written, and is refused by the same validation as the API's
(`permissions.services.grant_entries_validate`), with an error naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from django import forms
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from environments.models import Environment
from features.models import Feature, FeatureState
from organisations.models import OrganisationAPIKey, Role, RoleAssignment, UserGroup
from permissions.catalogue import CATALOGUE, KEYS_BY_LEVEL, Level
from permissions.models import Grant
from permissions.services import EntryInput, grant_entries_validate
from projects.models import Project, Tag
from tagwarden.admin.base import ServiceModelForm

User = get_user_model()
ENVIRONMENT_KEYS = KEYS_BY_LEVEL[Level.ENVIRONMENT]


def key_field(key: str) -> str:
    return f"key__{key}"


def tags_field(key: str) -> str:
    return f"tags__{key}"


def entry_lines(keys: Sequence[str]) -> list[tuple[str, str]]:
    """Fieldset lines: each key's checkbox beside its tag list."""
    return [(key_field(k), tags_field(k)) for k in keys]


def tag_label(tag: Tag) -> str:
    return f"{tag.project.name}: {tag.label}" + (" (restricted)" if tag.is_restricted else "")


def environment_label(environment: Environment) -> str:
    return f"{environment.project.name} / {environment.name}"


class TagsField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return tag_label(obj)


class EnvironmentField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return environment_label(obj)


def entry_fields(keys: Sequence[str]) -> dict[str, forms.Field]:
    fields: dict[str, forms.Field] = {}
    for key in keys:
        spec = CATALOGUE[key]
        fields[key_field(key)] = forms.BooleanField(
            required=False, label=key, help_text=spec.description
        )
        fields[tags_field(key)] = TagsField(
            queryset=Tag.objects.none(),
            required=False,
            label=f"{key} tags",
            help_text=(
                "Optional: only on features carrying one of these tags."
                if spec.supports_tag
                else "This key does not support tags."
            ),
            widget=forms.SelectMultiple(
                attrs={"size": 3, "data-key": key, "style": "min-height:0;height:auto"}
            ),
        )
    return fields


def _set_choices(field: forms.Field, choices: list[tuple[Any, str]]) -> None:
    """Static choices for rendering (computed once per formset); validation still goes
    through the field's queryset."""
    widget: Any = field.widget
    getattr(widget, "widget", widget).choices = choices


class GrantEntriesFormMixin(forms.BaseForm):
    """Entry fields (declared on the class by `entries_form`) and their validation."""

    entry_keys: ClassVar[tuple[str, ...]] = ()

    def init_entries(self, *, grant: Grant | None, tag_choices: list[tuple[Any, str]]) -> None:
        for key in self.entry_keys:
            _set_choices(self.fields[tags_field(key)], tag_choices)
        if grant is None or grant.pk is None:
            return
        for entry in grant.entries.all():
            if entry.key in self.entry_keys:
                self.initial[key_field(entry.key)] = True
                self.initial[tags_field(entry.key)] = [et.tag_id for et in entry.entry_tags.all()]

    def set_tag_queryset(self, tags: QuerySet[Tag]) -> None:
        for key in self.entry_keys:
            field: Any = self.fields[tags_field(key)]
            field.queryset = tags

    def entries(self) -> list[EntryInput]:
        out = []
        for key in self.entry_keys:
            tags = self.cleaned_data.get(tags_field(key)) or []
            if self.cleaned_data.get(key_field(key)) or tags:
                out.append(EntryInput(key=key, tags=tuple(sorted(t.pk for t in tags))))
        return out

    def validate_entries(
        self, *, level: Level, project: Project | None, tags_allowed: bool
    ) -> None:
        """The service's validation (docs/PERMISSIONS.md); errors go on the fields of the keys
        they name."""
        if tags_allowed and project is not None:
            for key in self.entry_keys:
                tags = self.cleaned_data.get(tags_field(key)) or []
                foreign = sorted(t.label for t in tags if t.project_id != project.pk)
                if foreign:
                    self.add_error(
                        tags_field(key),
                        f"{key}: tags of another project than {project.name!r}: "
                        + ", ".join(foreign)
                        + ".",
                    )
        try:
            grant_entries_validate(
                level=level, project=project, entries=self.entries(), tags_allowed=tags_allowed
            )
        except ValidationError as exc:
            self.attach_entry_errors(exc)

    def attach_entry_errors(self, exc: ValidationError) -> None:
        for field, messages in exc.message_dict.items():
            for message in messages:
                named = [k for k in self.entry_keys if re.search(rf"\b{k}\b", message)]
                if not named:
                    self.add_error(
                        None, message if field == "permissions" else f"{field}: {message}"
                    )
                    continue
                target = tags_field if "tag" in message else key_field
                for key in named:
                    self.add_error(target(key), message)


def entries_form(base: type[forms.BaseForm], keys: Sequence[str], name: str) -> type[Any]:
    """`base` with the entry fields of `keys` declared (the admin renders declared fields)."""
    attrs: dict[str, Any] = {"entry_keys": tuple(keys), **entry_fields(keys)}
    if issubclass(base, forms.ModelForm):
        attrs["Meta"] = type("Meta", (base.Meta,), {})  # type: ignore[attr-defined]
    return type(name, (base,), attrs)


# --------------------------------------------------------------------------------------
# Role inlines: project and environment grants, assignments
# --------------------------------------------------------------------------------------


class GrantEditForm(GrantEntriesFormMixin, ServiceModelForm):
    """A grant whose principal and scope are given: the form edits `admin` and entries."""

    class Meta:
        model = Grant
        fields = ["admin"]


class RoleGrantFormBase(GrantEditForm):
    """One project or environment grant of a role (an inline row)."""

    level: ClassVar[Level]
    scope_field: ClassVar[str]
    # Set per request by the inline: the role's organisation and a per-formset choice cache.
    organisation_id: ClassVar[int] = 0
    choice_cache: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        org = self.organisation_id
        cache = self.choice_cache
        scope: Any = self.fields[self.scope_field]
        scope.queryset = self.scope_queryset()
        if "scope" not in cache:
            cache["scope"] = [("", "---------")] + [
                (o.pk, scope.label_from_instance(o)) for o in scope.queryset
            ]
        if "tags" not in cache:
            cache["tags"] = [
                (t.pk, tag_label(t), t.project_id)
                for t in Tag.objects.filter(project__organisation_id=org).select_related("project")
            ]
        _set_choices(scope, cache["scope"])
        project_id = self.instance.project_id if self.instance.pk else None
        tag_choices = [(pk, label) for pk, label, pid in cache["tags"] if project_id in (None, pid)]
        self.set_tag_queryset(Tag.objects.filter(project__organisation_id=org))
        if self.instance.pk:
            scope.disabled = True
        self.init_entries(grant=self.instance, tag_choices=tag_choices)

    def scope_queryset(self) -> QuerySet[Any]:
        raise NotImplementedError

    def scope(self) -> Project | Environment | None:
        value = self.cleaned_data.get(self.scope_field)
        if value is None and self.instance.pk:
            value = getattr(self.instance, self.scope_field)
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        scope = self.scope()
        if scope is not None:
            project = scope if isinstance(scope, Project) else scope.project
            self.validate_entries(level=self.level, project=project, tags_allowed=True)
        return data


class RoleProjectGrantFormBase(RoleGrantFormBase):
    level = Level.PROJECT
    scope_field = "project"
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=True)

    def scope_queryset(self) -> QuerySet[Any]:
        return Project.objects.filter(organisation_id=self.organisation_id)


class RoleEnvironmentGrantFormBase(RoleGrantFormBase):
    level = Level.ENVIRONMENT
    scope_field = "environment"
    environment = EnvironmentField(queryset=Environment.objects.none(), required=True)

    def scope_queryset(self) -> QuerySet[Any]:
        return (
            Environment.objects.filter(project__organisation_id=self.organisation_id)
            .select_related("project")
            .order_by("project__name", "name", "id")
        )


RoleProjectGrantForm = entries_form(
    RoleProjectGrantFormBase, KEYS_BY_LEVEL[Level.PROJECT], "RoleProjectGrantForm"
)
RoleEnvironmentGrantForm = entries_form(
    RoleEnvironmentGrantFormBase, KEYS_BY_LEVEL[Level.ENVIRONMENT], "RoleEnvironmentGrantForm"
)


class MemberField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.get_username()} <{obj.email}>" if obj.email else obj.get_username()


class RoleAssignmentForm(ServiceModelForm):
    """A new assignment names exactly one user, group or API key of the role's organisation;
    existing ones are shown, and can only be deleted."""

    organisation_id: ClassVar[int] = 0
    choice_cache: ClassVar[dict[str, Any]] = {}

    user = MemberField(queryset=User.objects.none(), required=False)
    group = forms.ModelChoiceField(queryset=UserGroup.objects.none(), required=False)
    api_key = forms.ModelChoiceField(
        queryset=OrganisationAPIKey.objects.none(), required=False, label="API key"
    )

    class Meta:
        model = RoleAssignment
        fields = ["user", "group", "api_key"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        org = self.organisation_id
        querysets: dict[str, QuerySet[Any]] = {
            "user": User.objects.filter(organisation_memberships__organisation_id=org).order_by(
                "username"
            ),
            "group": UserGroup.objects.filter(organisation_id=org),
            "api_key": OrganisationAPIKey.objects.filter(organisation_id=org, revoked=False),
        }
        for name, qs in querysets.items():
            field: Any = self.fields[name]
            field.queryset = qs
            if name not in self.choice_cache:
                self.choice_cache[name] = [("", "---------")] + [
                    (o.pk, field.label_from_instance(o)) for o in qs
                ]
            if self.instance.pk:
                field.disabled = True
                current = getattr(self.instance, name)
                _set_choices(
                    field, [(current.pk, field.label_from_instance(current))] if current else []
                )
            else:
                _set_choices(field, self.choice_cache[name])

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if not self.instance.pk:
            given = [n for n in ("user", "group", "api_key") if data.get(n) is not None]
            if len(given) != 1:
                raise ValidationError("Choose exactly one of user, group, API key.")
        return data


class RoleForm(ServiceModelForm):
    """A role, with its organisation-level keys (a role grant on the organisation)."""

    organisation_permissions = forms.MultipleChoiceField(
        choices=[(k, k) for k in KEYS_BY_LEVEL[Level.ORGANISATION]],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Organisation-level keys held by everyone with this role.",
    )

    class Meta:
        model = Role
        fields = ["organisation", "name", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            grant = (
                Grant.objects.filter(role=self.instance, project__isnull=True)
                .prefetch_related("entries")
                .first()
            )
            self.initial["organisation_permissions"] = (
                [e.key for e in grant.entries.all()] if grant else []
            )


# --------------------------------------------------------------------------------------
# The grant admin (any principal, any scope)
# --------------------------------------------------------------------------------------


class GrantAddFormBase(GrantEntriesFormMixin, ServiceModelForm):
    """A new grant: one principal (user, group or role), a scope (the organisation, or one
    of its projects or environments), `admin` and entries of the scope's level."""

    tag_queryset: ClassVar[QuerySet[Tag] | None] = None

    class Meta:
        model = Grant
        fields = ["organisation", "project", "environment", "user", "group", "role", "admin"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organisation"].required = True
        tags = self.tag_queryset if self.tag_queryset is not None else Tag.objects.all()
        tags = tags.select_related("project")
        self.set_tag_queryset(tags)
        self.init_entries(grant=None, tag_choices=[(t.pk, tag_label(t)) for t in tags])

    def principal(self) -> Any:
        return next(
            (
                self.cleaned_data[n]
                for n in ("user", "group", "role")
                if self.cleaned_data.get(n) is not None
            ),
            None,
        )

    def scope(self) -> Any:
        data = self.cleaned_data
        return data.get("environment") or data.get("project") or data.get("organisation")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        given = [n for n in ("user", "group", "role") if data.get(n) is not None]
        if len(given) != 1:
            raise ValidationError("Choose exactly one principal: a user, a group or a role.")
        organisation = data.get("organisation")
        project, environment = data.get("project"), data.get("environment")
        if organisation is None:
            return data
        if environment is not None:
            if project is not None and environment.project_id != project.pk:
                self.add_error("environment", "This environment is not in the chosen project.")
                return data
            project = environment.project
        if project is not None and project.organisation_id != organisation.pk:
            self.add_error("project", "This project is not in the chosen organisation.")
            return data
        for name in ("group", "role"):
            principal = data.get(name)
            if principal is not None and principal.organisation_id != organisation.pk:
                self.add_error(name, f"This {name} is not in the chosen organisation.")
                return data
        level = (
            Level.ENVIRONMENT
            if environment is not None
            else Level.PROJECT
            if project is not None
            else Level.ORGANISATION
        )
        if data.get("admin") and level == Level.ORGANISATION:
            self.add_error(
                "admin",
                "Organisation grants cannot hold admin; make the user an ADMIN member instead.",
            )
        self.validate_entries(level=level, project=project, tags_allowed=given == ["role"])
        return data


class GrantChangeFormBase(GrantEditForm):
    """An existing grant: its principal and scope are fixed; `admin` and entries change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        grant = self.instance
        tags = Tag.objects.filter(project_id=grant.project_id).select_related("project")
        self.set_tag_queryset(tags)
        self.init_entries(grant=grant, tag_choices=[(t.pk, tag_label(t)) for t in tags])
        if grant.level == Level.ORGANISATION:
            self.fields["admin"].disabled = True
            self.fields["admin"].help_text = "Organisation grants never hold admin."

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        grant = self.instance
        self.validate_entries(
            level=grant.level,
            project=grant.project,
            tags_allowed=grant.principal_kind == "role",
        )
        return data


GrantAddForm = entries_form(GrantAddFormBase, list(CATALOGUE), "GrantAddForm")
GRANT_CHANGE_FORMS: dict[Level, type[Any]] = {
    level: entries_form(GrantChangeFormBase, KEYS_BY_LEVEL[level], f"Grant{level.title()}Form")
    for level in Level
}


# --------------------------------------------------------------------------------------
# Explain
# --------------------------------------------------------------------------------------


class ExplainForm(forms.Form):
    """Pick a user, an environment, a feature and (optionally) a key."""

    environment = EnvironmentField(queryset=Environment.objects.none())
    user = MemberField(queryset=User.objects.none())
    feature = forms.ModelChoiceField(queryset=Feature.objects.none())
    key = forms.ChoiceField(
        choices=[("", "Every environment key"), *((k, k) for k in ENVIRONMENT_KEYS)],
        required=False,
        label="Permission key",
    )

    def __init__(
        self,
        *args: Any,
        environments: QuerySet[Environment],
        users: QuerySet[Any],
        features: QuerySet[Feature],
        admin_site: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        sources = {
            "environment": (Grant._meta.get_field("environment"), environments),
            "user": (Grant._meta.get_field("user"), users),
            "feature": (FeatureState._meta.get_field("feature"), features),
        }
        for name, (source_field, qs) in sources.items():
            field: Any = self.fields[name]
            field.queryset = qs
            field.widget = AutocompleteSelect(source_field, admin_site)
            field.widget.choices = field.choices

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        environment, feature = data.get("environment"), data.get("feature")
        if (
            environment is not None
            and feature is not None
            and feature.project_id != environment.project_id
        ):
            self.add_error("feature", "This feature is not in the environment's project.")
        return data
