"""The admin site for every member (docs/ADMIN.md).

Django's own admin lets in only `is_staff` users. Tagwarden's admin is where members work:
any active user who is a member of at least one organisation signs in (superusers too);
what each of them then sees and changes is decided by the engine, model admin by model
admin (`tagwarden.admin.base`). The site adds the **My permissions** page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path, reverse

from organisations.models import OrganisationMembership

_MEMBER_ATTR = "_tagwarden_is_member"


def is_member(user: Any) -> bool:
    """Whether `user` belongs to at least one organisation (one query, memoised on the user
    object, which lives as long as the request)."""
    cached = getattr(user, _MEMBER_ATTR, None)
    if cached is None:
        cached = bool(user.pk) and OrganisationMembership.objects.filter(user_id=user.pk).exists()
        setattr(user, _MEMBER_ATTR, cached)
    return bool(cached)


def may_sign_in(user: Any) -> bool:
    """Active superusers, and active members of an organisation: no `is_staff` needed."""
    if not (user.is_active and user.is_authenticated):
        return False
    return bool(user.is_superuser) or is_member(user)


class MemberAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, letting in members rather than staff."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter the correct %(username)s and password of a member of an "
            "organisation. Note that both fields may be case-sensitive."
        ),
    }

    def confirm_login_allowed(self, user: Any) -> None:
        if not may_sign_in(user):
            raise forms.ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class TagwardenAdminSite(admin.AdminSite):
    site_header = "Tagwarden"
    site_title = "Tagwarden admin"
    index_title = "Your organisations"
    login_form = MemberAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        return may_sign_in(request.user)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        """The apps the member reaches, and first, for every member, "You: My permissions"
        (in the index and the sidebar)."""
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        url = reverse(f"{self.name}:my_permissions")
        mine = {
            "name": "You",
            "app_label": "you",
            "app_url": url,
            "has_module_perms": True,
            "models": [
                {
                    "name": "My permissions",
                    "object_name": "MyPermissions",
                    "perms": {"view": True},
                    "admin_url": url,
                    "add_url": None,
                    "view_only": True,
                }
            ],
        }
        return [mine, *apps]

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [
            path(
                "my-permissions/",
                self.admin_view(self.my_permissions_view),
                name="my_permissions",
            ),
            *super().get_urls(),
        ]

    def my_permissions_view(self, request: HttpRequest) -> HttpResponse:
        from permissions.admin.views import my_permissions_view

        return my_permissions_view(request, site=self)
