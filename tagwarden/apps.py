"""The admin app with Tagwarden's site (`tagwarden.admin.site`): members sign in, not only
staff (docs/ADMIN.md)."""

from django.contrib.admin.apps import AdminConfig


class TagwardenAdminConfig(AdminConfig):
    """Replaces `django.contrib.admin` in INSTALLED_APPS: same app, our site. Kept apart from
    the site's module, which imports models (not allowed while apps load)."""

    default_site = "tagwarden.admin.site.TagwardenAdminSite"
