"""Request ids and the request log (docs/OPERATIONS.md, Logs)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from pythonjsonlogger.json import JsonFormatter

from organisations.api import views as organisation_views
from tagwarden.middleware import RequestIdFilter
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db

ORGANISATIONS = "/api/v1/organisations/"


def _request_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tagwarden.request"]


def test_request_log__user_on_an_organisation_url__one_record_with_every_field(
    organisation: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = f.member(organisation)
    with caplog.at_level(logging.INFO, logger="tagwarden.request"):
        response = client_for(user).get(f"/api/v1/organisations/{organisation.pk}/users/")
    assert response.status_code == 200
    [record] = _request_records(caplog)
    assert record.method == "GET"
    assert record.path == f"/api/v1/organisations/{organisation.pk}/users/"
    assert record.status == 200
    assert record.duration_ms >= 0
    assert (record.principal_type, record.principal_id) == ("user", user.pk)
    assert record.organisation == organisation.pk
    assert record.request_id == response["X-Request-ID"]


def test_request_log__api_key__its_organisation(
    organisation: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api_key = f.APIKeyFactory(organisation=organisation)
    with caplog.at_level(logging.INFO, logger="tagwarden.request"):
        client_for(api_key).get(ORGANISATIONS)
    [record] = _request_records(caplog)
    assert (record.principal_type, record.principal_id) == ("api_key", api_key.pk)
    assert record.organisation == organisation.pk


def test_request_log__no_credentials__anonymous_401(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tagwarden.request"):
        Client().get(ORGANISATIONS)
    [record] = _request_records(caplog)
    assert (record.principal_type, record.principal_id, record.status) == ("anonymous", None, 401)


def test_request_log__json_format__one_json_object_a_line(
    organisation: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = f.member(organisation)
    with caplog.at_level(logging.INFO, logger="tagwarden.request"):
        client_for(user).get(ORGANISATIONS)
    [record] = _request_records(caplog)
    config = dict(settings.LOGGING["formatters"]["json"])
    assert config.pop("()") == "pythonjsonlogger.json.JsonFormatter"
    line = JsonFormatter(**config).format(record)
    assert "\n" not in line
    logged = json.loads(line)
    assert logged["logger"] == "tagwarden.request"
    assert {
        k: logged[k] for k in ("method", "path", "status", "principal_type", "principal_id")
    } == {
        "method": "GET",
        "path": ORGANISATIONS,
        "status": 200,
        "principal_type": "user",
        "principal_id": user.pk,
    }
    assert set(logged) >= {"duration_ms", "organisation", "request_id", "time", "level"}


def test_request_id__caller_sends_a_safe_one__kept() -> None:
    response = Client().get("/health/live", HTTP_X_REQUEST_ID="lb-1234.abc")
    assert response["X-Request-ID"] == "lb-1234.abc"


@pytest.mark.parametrize("incoming", ["", "has space", "x" * 129, "new\nline"])
def test_request_id__caller_sends_an_unsafe_one__replaced(incoming: str) -> None:
    response = Client().get("/health/live", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


@pytest.fixture
def failing_list(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(**kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(organisation_views.selectors, "organisations_of", explode)


@pytest.mark.usefixtures("failing_list")
def test_server_error__api__json_500_with_the_request_id_logged_with_the_traceback(
    org_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(org_user)
    client.raise_request_exception = False
    with caplog.at_level(logging.INFO):
        response = client.get(ORGANISATIONS, HTTP_X_REQUEST_ID="req-500")
    assert response.status_code == 500
    assert response["X-Request-ID"] == "req-500"
    body = response.json()
    assert body["request_id"] == "req-500"
    assert body["code"] == "server_error"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert errors
    id_filter = RequestIdFilter()
    for record in errors:
        id_filter.filter(record)
        assert record.request_id == "req-500"
    [request_record] = _request_records(caplog)
    assert (request_record.status, request_record.request_id) == (500, "req-500")


def test_server_error__outside_the_api__html_page_with_the_request_id_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.contrib.admin import sites

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(sites.AdminSite, "each_context", explode)
    client = Client(raise_request_exception=False)
    response = client.get("/admin/login/", HTTP_X_REQUEST_ID="req-html")
    assert response.status_code == 500
    assert response["X-Request-ID"] == "req-html"
    assert response["Content-Type"].startswith("text/html")
