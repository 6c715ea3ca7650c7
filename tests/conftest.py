from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests import factories as f


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def organisation(db: Any) -> Any:
    return f.OrganisationFactory()


@pytest.fixture
def project(organisation: Any) -> Any:
    return f.ProjectFactory(organisation=organisation)


@pytest.fixture
def environment(project: Any) -> Any:
    return f.EnvironmentFactory(project=project)


@pytest.fixture
def org_admin(organisation: Any) -> Any:
    return f.member(organisation, admin=True)


@pytest.fixture
def org_user(organisation: Any) -> Any:
    return f.member(organisation)
