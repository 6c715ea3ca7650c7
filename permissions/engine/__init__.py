"""The permission engine: the one place that decides (docs/PERMISSIONS.md).

Exports (everything else in the project calls these; nothing else decides):

    EntryRecord              one applicable grant entry, for reports
    FeatureIndex             one key state decided on many features at once
    FeatureTags              a feature's tags and restricted tags
    Holdings                 what one holder's grant rows hold on one project
    KeyState                 what a decision reads for one key, feature aside
    OrganisationPaths        an organisation's memberships and role assignments, by principal
    Policy                   what one principal holds in one organisation
    Principal                a user, an OrganisationAPIKey or an anonymous user
    PrincipalPaths           how one principal reaches groups and roles in one organisation
    Scope                    an Organisation, a Project or an Environment
    ScopeRights              what a policy holds on one project or environment
    TagsNeeded               what a principal's keys read of a feature's tags
    allowed                  one decision: ≤ 2 queries cold, 0 warm
    can_view                 the Viewing rule (404 when false)
    entry_reaches            rule 3 and the restricted-tag rule for one key
    feature_states_allowed   default FeatureState queryset, same filter
    feature_tags             a feature's tags as decisions read them
    feature_tags_remember    memoise tags read with feature_tags_subquery
    feature_tags_subquery    an annotation bringing a feature's tags with its row
    features_allowed         Feature queryset filtered in SQL
    filter_by_feature        any rows, by their feature, same filter
    forget                   drop the memoised policies of a principal
    forget_feature_tags      drop a feature's memoised tags
    forget_shared_policies   drop the policies kept across requests (benchmarks, tests)
    grants_reaching          the grants reaching a principal in every organisation (a queryset)
    group_memberships        an organisation's groups of each user: 1 query
    holdings_from_rows       a holder's Holdings from its grant rows
    holdings_key_state       a member's KeyState for one key and scope from its Holdings
    holdings_key_states      the same for several keys of one level on one scope
    holdings_scope_key_states  the same on several scopes of one project, in one pass
    is_admin                 organisation, project or environment admin of a scope
    is_superuser             an active Django superuser (an ADMIN of every organisation)
    keys_on_feature          the keys of a scope's level held on one feature
    keys_on_features         the same for many features (a list page), each tag set once
    keys_on_tag_codes        the same by the tags read with feature_tags_subquery (no feature)
    load_policy              a fresh, unmemoised Policy, with its entries for reports
    organisation_grant_rows  every grant row of an organisation by holder: 1 query
    organisation_paths       an organisation's principal paths: 2 queries
    policies_for_members     fresh policies of many users: 4 queries
    policy_for               memoised Policy: 1 query cold, 0 warm
    policy_for_scope         policy_for, for a scope
    policy_from_holdings     a member's policy as the union of its holders' Holdings
    policy_from_rows         a policy from rows already read
    principal_paths          one principal's paths in one organisation: ≤ 2 queries
    roles_by_holder          an organisation's roles assigned to each holder: 1 query
    scope_ids                (level, organisation id, project id, environment id) of a scope
    tags_needed              TagsNeeded for a principal's keys on a scope (a list page's read)
    viewable_environments_q  the environments a principal may view, one Q
    viewable_projects_q      the projects a principal may view, one Q

Reports built on these (my-permissions, explain, detailed permissions) live in
permissions/reports.py; impact previews in impact/.

Modules: `policy` (Policy and the pure rules), `paths` (which grants reach a principal: the
one resolution of users, groups, roles and API keys, as SQL, a queryset and in Python),
`loader` (one SQL query per principal and organisation, memoised per request; the bulk
loader), `holdings` (policies of many principals from their holders' summarised rows),
`tags` (feature tags), `decisions`, `filters` (the same rules as one Q).

A decision on a tag-supported key for a concrete feature must pass that feature, loaded from
the database: without it, tagged entries never count (fail closed). For one key, the union of
its tagged entries' tags is what decides: any of them meeting an unrestricted feature's tags
is the union meeting them, and a restricted feature is reached only when the union contains
every restricted tag it carries; so the policy keeps only the union, and reports keep the
entries.
"""

from permissions.engine.decisions import (
    allowed,
    can_view,
    is_admin,
    keys_on_feature,
    keys_on_features,
    keys_on_tag_codes,
    tags_needed,
)
from permissions.engine.filters import (
    feature_states_allowed,
    features_allowed,
    filter_by_feature,
    viewable_environments_q,
    viewable_projects_q,
)
from permissions.engine.holdings import (
    Holdings,
    holdings_from_rows,
    holdings_key_state,
    holdings_key_states,
    holdings_scope_key_states,
    policy_from_holdings,
)
from permissions.engine.loader import (
    forget,
    load_policy,
    organisation_grant_rows,
    policies_for_members,
    policy_for,
    policy_for_scope,
    policy_from_rows,
    scope_ids,
)
from permissions.engine.paths import (
    OrganisationPaths,
    PrincipalPaths,
    grants_reaching,
    group_memberships,
    organisation_paths,
    principal_paths,
    roles_by_holder,
)
from permissions.engine.policy import (
    EntryRecord,
    FeatureIndex,
    FeatureTags,
    KeyState,
    Policy,
    Principal,
    Scope,
    ScopeRights,
    entry_reaches,
    is_superuser,
)
from permissions.engine.sharing import forget_shared_policies
from permissions.engine.tags import (
    TagsNeeded,
    feature_tags,
    feature_tags_remember,
    feature_tags_subquery,
    forget_feature_tags,
)

__all__ = [
    "EntryRecord",
    "FeatureIndex",
    "FeatureTags",
    "Holdings",
    "KeyState",
    "OrganisationPaths",
    "Policy",
    "Principal",
    "PrincipalPaths",
    "Scope",
    "ScopeRights",
    "TagsNeeded",
    "allowed",
    "can_view",
    "entry_reaches",
    "feature_states_allowed",
    "feature_tags",
    "feature_tags_remember",
    "feature_tags_subquery",
    "features_allowed",
    "filter_by_feature",
    "forget",
    "forget_feature_tags",
    "forget_shared_policies",
    "grants_reaching",
    "group_memberships",
    "holdings_from_rows",
    "holdings_key_state",
    "holdings_key_states",
    "holdings_scope_key_states",
    "is_admin",
    "is_superuser",
    "keys_on_feature",
    "keys_on_features",
    "keys_on_tag_codes",
    "load_policy",
    "organisation_grant_rows",
    "organisation_paths",
    "policies_for_members",
    "policy_for",
    "policy_for_scope",
    "policy_from_holdings",
    "policy_from_rows",
    "principal_paths",
    "roles_by_holder",
    "scope_ids",
    "tags_needed",
    "viewable_environments_q",
    "viewable_projects_q",
]
