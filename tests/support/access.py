"""Access checks of the security suite (never widen, isolation, concurrency).

Access checks here never trust a principal object that has already decided something: the
engine memoises policies on the principal (and `force_authenticate` reuses one object across
requests), so every "is the access gone?" question is asked of a principal reloaded from the
database, and HTTP checks authenticate for real (a token, or the API key header), the way a
production request does.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from environments.models import Environment
from features.models import Feature
from organisations.models import OrganisationAPIKey
from permissions import engine
from tests.support.clients import token_client
from tests.support.feature_states import default_state, state_url

User = get_user_model()


def fresh(principal: Any) -> Any:
    """The principal reloaded from the database: no memoised policy, current flags."""
    if isinstance(principal, OrganisationAPIKey):
        return OrganisationAPIKey.objects.get(pk=principal.pk)
    return User.objects.get(pk=principal.pk)


def fresh_feature(feature: Feature) -> Feature:
    return Feature.objects.prefetch_related("tags").get(pk=feature.pk)


def allowed(principal: Any, key: str, scope: Any, feature: Feature | None = None) -> bool:
    """The engine's decision for a freshly loaded principal (and feature)."""
    return engine.allowed(
        fresh(principal), key, scope, feature=fresh_feature(feature) if feature else None
    )


def toggle(principal: Any, feature: Feature, environment: Environment) -> int:
    """PATCH the feature's default state through HTTP (real authentication); the status."""
    state = default_state(feature, environment)
    response = token_client(principal).patch(
        state_url(environment, state), {"enabled": not state.enabled}, format="json"
    )
    return response.status_code
