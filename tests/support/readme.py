"""The README's production environment block (README, Deploying), for the production tests."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_production_variables() -> dict[str, str]:
    """The `NAME=value` lines of the block after `<!-- production-env -->`."""
    match = re.search(
        r"<!-- production-env -->\s*```[a-z]*\n(.*?)```", README.read_text(), re.DOTALL
    )
    assert match, "README.md has no <!-- production-env --> block"
    variables = {}
    for line in match.group(1).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            variables[name] = value
    return variables
