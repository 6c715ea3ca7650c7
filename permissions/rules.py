"""rules predicates: `user.has_perm("<app>.<action>", obj)` answers through the engine.

Installed with `rules.permissions.ObjectPermissionBackend` (settings.AUTHENTICATION_BACKENDS)
and autodiscovered by `rules.apps.AutodiscoverRulesConfig`. Object-level only: without an
object every predicate here is false (fail closed); superusers are answered by Django's
ModelBackend before these run.
"""

from __future__ import annotations

from typing import Any

import rules

from environments.models import Environment
from features.models import ChangeRequest, Feature, FeatureState, SegmentOverride
from organisations.models import Organisation
from permissions import catalogue as keys
from permissions import engine
from projects.models import Project


def _environment_key(key: str) -> Any:
    @rules.predicate(name=f"holds_{key.lower()}")
    def predicate(user: Any, obj: Any) -> bool:
        if isinstance(obj, FeatureState | SegmentOverride):
            return engine.allowed(user, key, obj.environment, obj.feature)
        if isinstance(obj, ChangeRequest):
            features = Feature.objects.filter(
                pk__in=obj.changes.values("feature_id")
            ).prefetch_related("tags")
            return all(engine.allowed(user, key, obj.environment, f) for f in features)
        return False

    return predicate


@rules.predicate
def can_delete_feature(user: Any, obj: Any) -> bool:
    return isinstance(obj, Feature) and engine.allowed(user, keys.DELETE_FEATURE, obj.project, obj)


@rules.predicate
def can_edit_feature(user: Any, obj: Any) -> bool:
    return isinstance(obj, Feature) and engine.allowed(user, keys.CREATE_FEATURE, obj.project)


@rules.predicate
def can_view_scope(user: Any, obj: Any) -> bool:
    return isinstance(obj, Organisation | Project | Environment) and engine.can_view(user, obj)


@rules.predicate
def is_scope_admin(user: Any, obj: Any) -> bool:
    return isinstance(obj, Organisation | Project | Environment) and engine.is_admin(user, obj)


can_update_state = _environment_key(keys.UPDATE_FEATURE_STATE)
can_manage_overrides = _environment_key(keys.MANAGE_SEGMENT_OVERRIDES)
can_create_change_request = _environment_key(keys.CREATE_CHANGE_REQUEST)
can_approve_change_request = _environment_key(keys.APPROVE_CHANGE_REQUEST)

RULES = {
    "organisations.view_organisation": can_view_scope,
    "organisations.change_organisation": is_scope_admin,
    "organisations.delete_organisation": is_scope_admin,
    "projects.view_project": can_view_scope,
    "projects.change_project": is_scope_admin,
    "projects.delete_project": is_scope_admin,
    "environments.view_environment": can_view_scope,
    "environments.change_environment": is_scope_admin,
    "environments.delete_environment": is_scope_admin,
    "features.change_feature": can_edit_feature,
    "features.delete_feature": can_delete_feature,
    "features.change_featurestate": can_update_state,
    "features.add_segmentoverride": can_manage_overrides,
    "features.change_segmentoverride": can_manage_overrides,
    "features.delete_segmentoverride": can_manage_overrides,
    "features.add_changerequest": can_create_change_request,
    "features.approve_changerequest": can_approve_change_request,
}

for _name, _predicate in RULES.items():
    rules.add_perm(_name, _predicate)
