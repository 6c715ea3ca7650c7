"""OpenAPI of `?dry_run=true` on the permission writes (docs/PERMISSIONS.md, "Seeing a change before making it"), beside
`tagwarden.api.base`'s `DRY_RUN_PARAMETER` and `IMPACT_RESPONSE`. The behaviour is
`tagwarden.api.base.write_with_impact`; this module only says it in the schema.

- creates (201) and deletes (204) document a 200 `{"impact"}` beside their usual answer;
- writes whose usual answer is already a 200 document it as oneOf(the object, `{"impact"}`)
  (`or_impact`): the object's required fields and `impact` keep the two apart;
- deletes document a 400 as well: a `dry_run` that is neither true nor false is one.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer
from rest_framework.serializers import BaseSerializer

from impact.api.serializers import ImpactResponseSerializer
from tagwarden.api.base import BAD_REQUEST, DELETE_ERRORS

#: The errors of a delete that takes `?dry_run=`: a junk value is a 400 naming `dry_run`.
DRY_RUN_DELETE_ERRORS = {400: BAD_REQUEST, **DELETE_ERRORS}


def or_impact(serializer: type[BaseSerializer], description: str = "") -> OpenApiResponse:
    """The 200 of a write whose usual answer is a 200 with `serializer`: that object, or with
    `?dry_run=true` the impact (nothing saved)."""
    name = serializer.__name__.removesuffix("Serializer")
    choices: list[Any] = [serializer, ImpactResponseSerializer]
    proxy: Any = PolymorphicProxySerializer(
        component_name=f"{name}OrImpact",
        serializers=choices,
        resource_type_field_name=None,
    )
    return OpenApiResponse(
        proxy,
        description=(description + " " if description else "")
        + 'With ?dry_run=true: {"impact": {"gained", "lost"}}; nothing was saved.',
    )
