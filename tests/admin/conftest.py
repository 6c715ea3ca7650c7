"""Fixtures for the admin tests: two organisations with everything in them, a superuser, and
a staff user who administers the first organisation only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests import factories as f
from tests.support.admin import World, make_world


@pytest.fixture
def world(db: Any) -> World:
    return make_world("Acme")


@pytest.fixture
def other_world(db: Any) -> World:
    return make_world("Other")


@pytest.fixture
def superuser(db: Any) -> Any:
    return f.UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def superuser_client(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def org_admin_staff(world: World) -> Any:
    """A staff user (not a superuser) who is an ADMIN member of `world` only."""
    return f.member(world.organisation, admin=True, username="acme-admin", is_staff=True)


@pytest.fixture
def staff_client(org_admin_staff: Any) -> Client:
    client = Client()
    client.force_login(org_admin_staff)
    return client
