"""Permissions as code: YAML load and dump."""

from __future__ import annotations

from typing import Any

import yaml

# --------------------------------------------------------------------------------------
# YAML (the API's `?format=yaml` and the commands' .yaml files)
# --------------------------------------------------------------------------------------


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a few aliases nested in each other expand to
    an exponentially large document ("billion laughs"); a permissions document needs none."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def yaml_load(text: str) -> Any:
    """Parse a YAML document (safe types only, no aliases); `yaml.YAMLError` when invalid."""
    return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader: safe types only


def yaml_dump(data: Any) -> str:
    """JSON-compatible data as block YAML, keys in the order given (documents come sorted).
    Long strings stay on one line, so that editing one word changes one line of a diff."""
    return yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1_000_000
    )
