"""Builders of the small organisations several test modules start from."""

from __future__ import annotations

from typing import Any

from projects.models import Tag
from tests import factories as f


def tags_a_b_restricted(project: Any) -> dict[str, Tag]:
    """Two plain tags, `a` and `b`, and a restricted one (`payments`), keyed
    "a", "b", "restricted"."""
    return {
        "a": f.TagFactory(project=project, label="a"),
        "b": f.TagFactory(project=project, label="b"),
        "restricted": f.TagFactory(project=project, label="payments", is_restricted=True),
    }


class ScopeTree:
    """An organisation with two projects, and two environments in the first: a scope of each
    level, and another of the same level to grant on instead."""

    def __init__(self) -> None:
        self.organisation = f.OrganisationFactory()
        self.project = f.ProjectFactory(organisation=self.organisation, name="Checkout")
        self.other_project = f.ProjectFactory(organisation=self.organisation, name="Mobile")
        self.environment = f.EnvironmentFactory(project=self.project, name="Production")
        self.other_environment = f.EnvironmentFactory(project=self.project, name="Staging")

    def scope(self, level: str, *, other: bool = False) -> Any:
        """The organisation, a project or an environment; `other` picks the second one."""
        if level == "organisation":
            return self.organisation
        if level == "project":
            return self.other_project if other else self.project
        return self.other_environment if other else self.environment
