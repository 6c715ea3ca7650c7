"""Admin for features, segments, feature states, segment overrides and change requests: the
pages members work in (docs/ADMIN.md).

Every page shows what the engine lets the signed-in member view (`MemberScopedMixin`: the
engine's SQL filters), and every write goes through the same services as the API
(`features.services`, `features.workflow.services`) with the member as the actor. Which object
a member may change is the engine's decision, asked per object with the feature's own tags:

- features: CREATE_FEATURE on the project to create and edit (protected tags: the service
  asks for project admin), DELETE_FEATURE on the feature to delete;
- feature states: UPDATE_FEATURE_STATE on the feature, or, where change requests are on,
  CREATE_CHANGE_REQUEST (the form then proposes a change request);
- segment overrides: MANAGE_SEGMENT_OVERRIDES on the feature;
- change requests: the rules of docs/ADMIN.md "Change requests", checked by the
  services in their order; approve and commit are POST buttons.
"""

from features.admin import change_requests, features, overrides, states  # noqa: F401  (registrations)
