"""Database constraints of projects.models: a tag label is unique per project,
case-insensitively."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction

from projects.models import DEFAULT_TAG_COLOR, Tag
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_tag__same_label_in_two_projects__accepted(project: Any) -> None:
    other = f.ProjectFactory(organisation=project.organisation)
    Tag.objects.create(project=project, label="payments")
    Tag.objects.create(project=other, label="payments")
    assert Tag.objects.filter(label="payments").count() == 2


def test_tag__different_labels_in_one_project__accepted(project: Any) -> None:
    Tag.objects.create(project=project, label="payments")
    Tag.objects.create(project=project, label="payments-v2")
    assert project.tags.count() == 2


@pytest.mark.parametrize("label", ["payments", "Payments", "PAYMENTS"])
def test_tag__same_label_ignoring_case_in_one_project__rejected_by_db(
    project: Any, label: str
) -> None:
    Tag.objects.create(project=project, label="payments")
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(project=project, label=label)
    assert list(project.tags.values_list("label", flat=True)) == ["payments"]


def test_tag__defaults__unrestricted_with_default_colour(project: Any) -> None:
    tag = Tag.objects.create(project=project, label="ui")
    assert (tag.is_restricted, tag.color, tag.description) == (False, DEFAULT_TAG_COLOR, "")
