"""`{% impact_submit_row %}`: the admin's submit row with a "Preview impact" button beside
Save (`impact.admin_preview.ImpactAdmin`'s change form)."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.admin.templatetags.admin_modify import submit_row

register = template.Library()


@register.inclusion_tag("admin/impact/submit_line.html", takes_context=True)
def impact_submit_row(context: Any) -> Any:
    """The context of Django's `{% submit_row %}` (which buttons the user may press)."""
    return submit_row(context)
