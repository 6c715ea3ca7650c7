"""Who a set of (scope, key) pairs concerns: the principals reached (through one holder, or
all of them), each with the holders that decide anything on those pairs (docs/PERFORMANCE.md,
"How the costs follow the work")."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Q
from django.utils import timezone

from impact.snapshots import Holder, PrincipalRef, members_of
from organisations.models import MembershipRole, OrganisationAPIKey, UserGroup
from permissions.engine import (
    Holdings,
    holdings_from_rows,
    organisation_grant_rows,
    roles_by_holder,
)

# A key on a scope: (project id or None, environment id or None, key).
Pair = tuple[int | None, int | None, str]


def _decides_on(held: Holdings, pairs: list[Pair]) -> bool:
    """Whether holdings can make a difference to a principal's state on one of `pairs`."""
    for project_id, environment_id, key in pairs:
        if project_id is None:
            if key in held.organisation_keys:
                return True
            continue
        if (False, project_id) in held.admin_scopes:
            return True
        scope = (True, environment_id) if environment_id is not None else (False, project_id)
        on_scope = held.by_scope.get(scope)
        if on_scope is not None and (on_scope[0] or key in on_scope[1] or key in on_scope[2]):
            return True
    return False


class Reach:
    """The principals a holder reaches (`holder=None`: every principal), each with its holders
    that decide anything on `pairs` (with their `Holdings` on the pairs' scopes), in 5
    queries or fewer: the grant rows on those scopes, the assignments of the roles among
    them, the memberships of the groups, the members, the API keys."""

    def __init__(
        self, organisation_id: int, pairs: list[Pair], holder: Holder | None = None
    ) -> None:
        self.organisation_id, self.holder = organisation_id, holder
        environments = {e for _, e, _ in pairs if e is not None}
        projects_all = {p for p, e, key in pairs if p is not None and e is None}
        projects_admin = {p for p, e, _ in pairs if p is not None and e is not None}
        on_scopes = Q(environment_id__in=environments) | Q(
            environment__isnull=True, project_id__in=projects_all
        )
        on_scopes |= Q(environment__isnull=True, admin=True, project_id__in=projects_admin)
        if any(p is None for p, _, _ in pairs):
            on_scopes |= Q(project__isnull=True)
        rows_of = organisation_grant_rows(organisation_id, where=on_scopes)
        # Only holders holding one of the pairs' keys there, or an admin of their scopes,
        # decide anything: principals alike in those find the same changes.
        self.holdings: dict[Holder, Holdings] = {
            h: held
            for h, rows in rows_of.items()
            if _decides_on(held := holdings_from_rows(rows), pairs)
        }
        # Role assignments of the roles that matter: those with rows there, and the holder.
        roles = {h[1] for h in self.holdings if h[0] == "role"}
        if holder is not None and holder[0] == "role":
            roles.add(holder[1])
        self.roles_of = roles_by_holder(organisation_id, Q(role_id__in=roles))
        # The groups through which users are reached, and the users and keys reached directly.
        groups = {h[1] for h in self.holdings if h[0] == "group"}
        groups |= {h[1] for h in self.roles_of if h[0] == "group"}
        users = {h[1] for h in self.holdings if h[0] == "user"}
        api_keys = {h[1] for h in self.roles_of if h[0] == "api_key"}
        reaching = groups
        if holder is not None:
            kind, holder_id = holder
            reaching = {holder_id} if kind == "group" else set()
            users = {holder_id} if kind == "user" else set()
            api_keys = set()
            if kind == "group":
                groups.add(holder_id)
            for (assignee_kind, assignee), assigned in self.roles_of.items():
                if kind == "role" and holder_id in assigned:
                    if assignee_kind == "user":
                        users.add(assignee)
                    elif assignee_kind == "group":
                        reaching.add(assignee)
                    else:
                        api_keys.add(assignee)
        else:
            users |= {h[1] for h in self.roles_of if h[0] == "user"}
        # The memberships of the users reached (directly or through those groups) in the
        # groups that matter (kept to those here, all of the organisation's, not in SQL: the
        # planner then walks the users reached, not every group).
        memberships = UserGroup.users.through.objects
        # The users reached, as SQL: a list of their ids costs Django more to send than the
        # database to find them again (hundreds of parameters, each prepared one by one).
        in_reaching_groups = memberships.filter(usergroup_id__in=reaching).values("user_id")
        if holder is None:  # every member of those groups
            reached = memberships.filter(usergroup_id__in=groups)
        else:
            reached = memberships.filter(Q(user_id__in=in_reaching_groups) | Q(user_id__in=users))
        self.groups_of: dict[int, set[int]] = defaultdict(set)
        for user_id, group_id in reached.values_list("user_id", "usergroup_id"):
            if group_id in groups:
                self.groups_of[user_id].add(group_id)
        # The members among the users reached (everyone reached: all of them): those reached
        # directly, and the members of the groups reaching.
        reached_users: Q | None = None
        if holder is not None:
            reached_users = Q(pk__in=set(users))
            if reaching:
                reached_users |= Q(pk__in=in_reaching_groups)
        users |= {user for user, of in self.groups_of.items() if of & reaching}
        self._reached_users, self._reached_api_keys = users, api_keys
        members = members_of(organisation_id, reached_users)
        self.member_roles = {user_id: role for user_id, (role, _) in members.items()}
        self.user_emails = {user_id: email for user_id, (_, email) in members.items()}
        now = timezone.now()
        self.api_keys: dict[int, tuple[bool, bool]] = {}
        self.api_key_names: dict[int, str] = {}
        reached_keys = OrganisationAPIKey.objects.filter(
            organisation_id=organisation_id, pk__in=self._reached_api_keys
        )
        for key_id, revoked, expires, is_admin, name in (
            reached_keys.values_list("id", "revoked", "expiry_date", "is_admin", "name")
            if self._reached_api_keys
            else ()
        ):
            self.api_keys[key_id] = (not revoked and (expires is None or expires >= now), is_admin)
            self.api_key_names[key_id] = name

    def principals(self) -> Iterable[tuple[PrincipalRef, frozenset[Holder]]]:
        """Each principal reached that is a member and no organisation admin (their states
        are the same before and after), with its holders among those that matter."""
        # Every role read matters (it holds rows there, or is the holder); users and groups
        # matter when they hold rows there, or are the holder.
        matters = self.holdings.keys() | {self.holder}
        no_roles: set[int] = set()
        for user_id in sorted(self._reached_users):
            role = self.member_roles.get(user_id)
            if role is None or role == MembershipRole.ADMIN:
                continue
            groups = self.groups_of.get(user_id, no_roles)
            roles = self.roles_of.get(("user", user_id), no_roles)
            for group in groups:
                roles = roles | self.roles_of.get(("group", group), no_roles)
            holders = {("role", role_id) for role_id in roles}
            holders.update(h for group in groups if (h := ("group", group)) in matters)
            if ("user", user_id) in matters:
                holders.add(("user", user_id))
            yield ("user", user_id), frozenset(holders)
        for key_id in sorted(self._reached_api_keys):
            usable, is_admin = self.api_keys.get(key_id, (False, False))
            if not usable or is_admin:
                continue
            roles = self.roles_of.get(("api_key", key_id), no_roles)
            yield ("api_key", key_id), frozenset(("role", role_id) for role_id in roles)
