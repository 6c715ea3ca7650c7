"""Path converters of the API's routes.

`<id:pk>` is Django's `<int:pk>` bounded to the 64-bit signed range of the databases' ids: a
larger number in a path matches no route and answers 404 (docs/API.md, Conventions), where
`<int:...>` would hand it to a lookup that the database driver refuses with a 500. Every
integer in an API path is an `<id:...>`; a url module using it imports this module, which
registers the converter.
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


register_converter(IdConverter, "id")
