"""Path converters of the API's routes.

`<id:pk>` is Django's `<int:pk>` bounded to the 64-bit signed range of the databases' ids: a
larger number in a path matches no route and answers 404 (docs/API.md, Conventions), where
`<int:...>` would hand it to a lookup that the database driver refuses with a 500.
`<env_key:api_key>` is an environment's api_key: URL-safe base64 characters only
(`secrets.token_urlsafe`), so `%00` and other strings the databases cannot compare match no
route either. Every integer in an API path is an `<id:...>` and every api_key an
`<env_key:...>`; a url module using them imports this module, which registers them.
"""

from __future__ import annotations

from django.urls import register_converter

from tagwarden.storable import INT64_MAX


class IdConverter:
    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > INT64_MAX:
            raise ValueError(value)  # no match: a 404
        return number

    def to_url(self, value: int) -> str:
        return str(value)


class EnvironmentKeyConverter:
    regex = "[A-Za-z0-9_-]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(IdConverter, "id")
register_converter(EnvironmentKeyConverter, "env_key")
