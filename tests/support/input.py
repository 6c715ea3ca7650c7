"""Values the databases cannot store as sent (docs/API.md, Conventions), and a way to send them:
DRF's test client encodes bodies itself and cannot encode a lone surrogate, so bodies go out
as the JSON text a client would send (`json.dumps` escapes them as `\\ud800`)."""

from __future__ import annotations

import json
from typing import Any

HUGE = 2**63  # one past the largest 64-bit signed integer
NUL = "a\u0000b"
SURROGATE = "\ud800"
#: unstorable values as a JSON `value`, anywhere inside it (keys included)
UNSTORABLE_VALUES = {
    "nul": NUL,
    "surrogate": SURROGATE,
    "nested_nul": {"a": [1, {"b": NUL}]},
    "key_surrogate": {SURROGATE: 1},
    "key_nul": {"k\u0000": 1},
    "huge_integer": HUGE,
    "huge_negative_integer": -(2**63) - 1,
}
#: a JSON string whose encoding (quotes included) is exactly 64 KiB: the largest allowed
AT_64_KIB = "x" * (64 * 1024 - 2)
#: one byte more
OVER_64_KIB = AT_64_KIB + "x"


def send_json(client: Any, method: str, url: str, body: Any) -> Any:
    """`client.<method>(url)` with `body` sent as JSON text (ASCII-escaped, as most clients)."""
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")
