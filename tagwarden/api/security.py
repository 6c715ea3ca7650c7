"""How the OpenAPI schema documents a credential sent in a request header (docs/API.md,
Authentication)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class HeaderKeyScheme(OpenApiAuthenticationExtension):
    """An `apiKey` security scheme: the credential is in `header`. A subclass names its
    authentication class (`target_class`), the scheme (`name`) and `description`."""

    header = "Authorization"
    description = ""

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": self.header,
            "description": self.description,
        }
