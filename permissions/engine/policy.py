"""What one principal holds in one organisation: `Policy` and the pure decision rules it
applies (docs/PERMISSIONS.md, "How one decision is made")."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from environments.models import Environment
from organisations.models import Organisation, OrganisationAPIKey
from permissions.catalogue import CATALOGUE, KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from projects.models import Project

Principal = AbstractBaseUser | OrganisationAPIKey | AnonymousUser
Scope = Organisation | Project | Environment

NO_TAGS: frozenset[int] = frozenset()


# --------------------------------------------------------------------------------------
# Policy: what one principal holds in one organisation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """One applicable grant entry (or an entry-less grant, `key=None`) and where it came from."""

    grant_id: int
    project_id: int | None
    environment_id: int | None
    admin: bool
    key: str | None
    tags: frozenset[int]
    user_id: int | None
    group_id: int | None
    role_id: int | None

    @property
    def level(self) -> Level:
        return scope_level(self.project_id, self.environment_id)


def scope_level(project_id: int | None, environment_id: int | None) -> Level:
    """The level of a grant's scope, from its ids."""
    if environment_id is None:
        return Level.ORGANISATION if project_id is None else Level.PROJECT
    return Level.ENVIRONMENT


@dataclass(frozen=True, slots=True)
class ScopeRights:
    """What the principal holds on one project or environment."""

    admin: bool = False
    untagged: frozenset[str] = frozenset()
    # key -> union of the tags of the key's tagged entries
    tagged: Mapping[str, frozenset[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeatureTags:
    tags: frozenset[int]
    restricted: frozenset[int]


@dataclass(frozen=True)
class Policy:
    organisation_id: int
    is_member: bool
    is_organisation_admin: bool
    organisation_keys: frozenset[str]
    projects: Mapping[int, ScopeRights]
    environments: Mapping[int, ScopeRights]
    # environment id -> project id, for every environment the principal holds anything on
    environment_projects: Mapping[int, int]
    # (grant id, project id, environment id, admin, key, user id, group id, role id) → tags;
    # turned into EntryRecords only when a report (explain, details) asks for them.
    entry_rows: Mapping[tuple[Any, ...], frozenset[int]] = field(default_factory=dict)
    # Set when the policy was loaded for one project's scope: it holds the grants of that
    # project (and its environments) and of the organisation level only, so it decides on
    # that project and the organisation, never on another project.
    only_project: int | None = None
    # Set when the policy was loaded for one environment of `only_project`: the keys of the
    # project's other environments were not read (only whether anything is held there, for
    # Viewing), so it decides keys on that environment, the project and the organisation.
    only_environment: int | None = None
    # (level, project id, environment id) -> `key_states` there, memoised
    _key_states: dict[tuple[Any, ...], tuple[tuple[str, KeyState], ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @cached_property
    def entries(self) -> tuple[EntryRecord, ...]:
        """The applicable entries one by one, with where they came from (for reports)."""
        return tuple(
            EntryRecord(g, p, e, a, k, tags, u, gr, r)  # in field order
            for (g, p, e, a, k, u, gr, r), tags in self.entry_rows.items()
        )

    # -- admin ---------------------------------------------------------------------------
    def is_project_admin(self, project_id: int | None) -> bool:
        if not self.is_member:
            return False
        if self.is_organisation_admin:
            return True
        rights = self.projects.get(project_id) if project_id is not None else None
        return rights is not None and rights.admin

    def is_environment_admin(self, project_id: int | None, environment_id: int | None) -> bool:
        if self.is_project_admin(project_id):
            return True
        rights = self.environments.get(environment_id) if environment_id is not None else None
        return self.is_member and rights is not None and rights.admin

    # -- viewing ---------------------------------------------------------------------------
    def viewable_project_ids(self) -> frozenset[int]:
        if not self.is_member:
            return NO_TAGS
        return frozenset(self.projects) | frozenset(self.environment_projects.values())

    def can_view_project(self, project_id: int) -> bool:
        if not self.is_member:
            return False
        return self.is_organisation_admin or project_id in self.viewable_project_ids()

    def can_view_environment(self, project_id: int, environment_id: int) -> bool:
        if not self.is_member:
            return False
        return self.is_project_admin(project_id) or environment_id in self.environments

    # -- deciding --------------------------------------------------------------------------
    def rights_for(self, level: Level, scope_id: int | None) -> ScopeRights | None:
        if level == Level.PROJECT:
            return self.projects.get(scope_id) if scope_id is not None else None
        if level == Level.ENVIRONMENT:
            return self.environments.get(scope_id) if scope_id is not None else None
        return None

    def is_scope_admin(
        self, level: Level, project_id: int | None, environment_id: int | None
    ) -> bool:
        """Admin of a scope, by its level (docs/PERMISSIONS.md, rules 1–2): an organisation
        admin of the organisation, a project admin of a project, and of an environment also
        an admin of that environment."""
        if level == Level.ORGANISATION:
            return self.is_member and self.is_organisation_admin
        if level == Level.PROJECT:
            return self.is_project_admin(project_id)
        return self.is_environment_admin(project_id, environment_id)

    def scope_rights(
        self, level: Level, project_id: int | None, environment_id: int | None
    ) -> ScopeRights | None:
        """What the policy holds on a project or environment scope (None: nothing)."""
        return self.rights_for(level, project_id if level == Level.PROJECT else environment_id)

    def decide(
        self,
        key: str,
        *,
        project_id: int | None = None,
        environment_id: int | None = None,
        feature_tags: FeatureTags | None = None,
    ) -> bool:
        """docs/PERMISSIONS.md's rules for a key whose scope ids are given; pure, no queries."""
        state = self.key_state(key, project_id=project_id, environment_id=environment_id)
        return state.decides(key, feature_tags)

    def key_state(
        self, key: str, *, project_id: int | None = None, environment_id: int | None = None
    ) -> KeyState:
        """Everything `decide` reads for one key on one scope, feature aside.

        Two policies with equal key states decide identically on every feature of the scope;
        impact previews compare key states, and decide many features at once with
        `FeatureIndex.reached`.
        """
        if not self.is_member:
            return _NOTHING
        if self.is_organisation_admin:
            return _ADMIN
        level = CATALOGUE[key].level
        if level == Level.ORGANISATION:
            return _UNTAGGED if key in self.organisation_keys else _NOTHING
        if self.is_scope_admin(level, project_id, environment_id):
            return _ADMIN
        if level == Level.ENVIRONMENT and self.only_environment not in (None, environment_id):
            raise ValueError(f"This policy decides keys on environment {self.only_environment}")
        rights = self.scope_rights(level, project_id, environment_id)
        if rights is None:
            return _NOTHING
        return KeyState(
            admin=False, untagged=key in rights.untagged, tags=rights.tagged.get(key, NO_TAGS)
        )

    def key_states(
        self, level: Level, project_id: int | None, environment_id: int | None
    ) -> tuple[tuple[str, KeyState], ...]:
        """(key, `key_state`) for every key of `level` on one scope, in key order; memoised,
        so a list page reads them once and decides each feature from them."""
        scope = (level, project_id, environment_id)
        states = self._key_states.get(scope)
        if states is None:
            states = self._key_states[scope] = tuple(
                (key, self.key_state(key, project_id=project_id, environment_id=environment_id))
                for key in sorted(KEYS_BY_LEVEL[level])
            )
        return states


class KeyState(NamedTuple):
    """What a policy holds for one key on one scope (see `Policy.key_state`). A named tuple:
    impact previews make and compare a hundred thousand of them."""

    admin: bool
    untagged: bool
    tags: frozenset[int]

    def joined(self, other: KeyState) -> KeyState:
        """The state of holding both: a policy's state for a key is the join of what each
        of its holders gives it (an admin of the scope through any of them is one)."""
        if self.admin or other.admin:
            return _ADMIN
        if not other.untagged and not other.tags:
            return self
        if not self.untagged and not self.tags:
            return other
        return KeyState(
            admin=False, untagged=self.untagged or other.untagged, tags=self.tags | other.tags
        )

    def decides(self, key: str, feature_tags: FeatureTags | None = None) -> bool:
        """The same decision as `Policy.decide` for this key, scope and feature."""
        if self.admin:
            return True
        return entry_reaches(key, untagged=self.untagged, tags=self.tags, feature_tags=feature_tags)


_NOTHING = KeyState(admin=False, untagged=False, tags=NO_TAGS)
_ADMIN = KeyState(admin=True, untagged=False, tags=NO_TAGS)
_UNTAGGED = KeyState(admin=False, untagged=True, tags=NO_TAGS)


_REACHED_MEMO_SIZE = 4096


class FeatureIndex:
    """The features of one project as bit sets, to decide a tag-supported key on all of them
    at once: bit i stands for the i-th feature of `feature_ids`.

    `reached(state)` is `entry_reaches` (rule 3 and the restricted-tag rule) applied to every
    feature with a few integer operations per tag of the key state, instead of one decision
    per feature. Indexes built over the same `feature_ids` (before and after a change) line
    up bit for bit; a feature missing from one of them is reached by nobody in it.
    """

    __slots__ = ("_memo", "all", "by_restricted_tag", "by_tag", "restricted_any")

    def __init__(self, feature_ids: Iterable[int], tags_of: Mapping[int, FeatureTags]) -> None:
        self.all = 0
        self.restricted_any = 0  # features carrying at least one restricted tag
        self.by_tag: dict[int, int] = defaultdict(int)
        self.by_restricted_tag: dict[int, int] = defaultdict(int)
        self._memo: dict[KeyState, int] = {}
        for position, feature_id in enumerate(feature_ids):
            tags = tags_of.get(feature_id)
            if tags is None:
                continue
            bit = 1 << position
            self.all |= bit
            if tags.restricted:
                self.restricted_any |= bit
            for tag_id in tags.tags:
                self.by_tag[tag_id] |= bit
            for tag_id in tags.restricted:
                self.by_restricted_tag[tag_id] |= bit

    @classmethod
    def from_tag_rows(
        cls, feature_ids: Iterable[int], tag_rows: Iterable[tuple[int, int, bool]]
    ) -> FeatureIndex:
        """The same index as `FeatureIndex(feature_ids, tags_of)`, from (feature id, tag id,
        restricted) rows: built with one byte array per tag instead of a `FeatureTags` per
        feature (a project's whole index in a few milliseconds)."""
        position = {feature_id: at for at, feature_id in enumerate(feature_ids)}
        size = (len(position) + 7) // 8
        by_tag: dict[int, bytearray] = {}
        by_restricted_tag: dict[int, bytearray] = {}
        for feature_id, tag_id, restricted in tag_rows:
            at = position.get(feature_id)
            if at is None:
                continue
            for table in (by_tag, by_restricted_tag) if restricted else (by_tag,):
                bits = table.get(tag_id)
                if bits is None:
                    bits = table[tag_id] = bytearray(size)
                bits[at >> 3] |= 1 << (at & 7)
        index = cls((), {})
        index.all = (1 << len(position)) - 1
        for tag_id, bits in by_tag.items():
            index.by_tag[tag_id] = int.from_bytes(bits, "little")
        for tag_id, bits in by_restricted_tag.items():
            restricted_bits = int.from_bytes(bits, "little")
            index.by_restricted_tag[tag_id] = restricted_bits
            index.restricted_any |= restricted_bits
        return index

    def reached(self, state: KeyState) -> int:
        """The features (a bit set) on which a tag-supported key held as `state` is allowed."""
        cached = self._memo.get(state)
        if cached is not None:
            return cached
        if state.admin:
            result = self.all
        else:
            shares_tag = 0
            if not state.untagged:  # an untagged entry reaches every unrestricted feature
                by_tag = self.by_tag
                for tag_id in state.tags:
                    shares_tag |= by_tag.get(tag_id, 0)
            # A restricted feature is reached only when the key's tags cover every restricted
            # tag it carries: it is lost as soon as one of them is outside them.
            uncovered = 0
            for tag_id, features in self.by_restricted_tag.items():
                if tag_id not in state.tags:
                    uncovered |= features
            unrestricted = self.all & ~self.restricted_any
            # Without restricted tags a feature is reached by an untagged entry or a shared
            # tag; with restricted tags, only when the key's tags name all of them
            # (docs/PERMISSIONS.md, "Restricted tags").
            result = (unrestricted if state.untagged else unrestricted & shares_tag) | (
                self.restricted_any & ~uncovered
            )
        if len(self._memo) < _REACHED_MEMO_SIZE:  # an index may be kept for many requests
            self._memo[state] = result
        return result


def entry_reaches(
    key: str, *, untagged: bool, tags: frozenset[int], feature_tags: FeatureTags | None
) -> bool:
    """Rule 3 and the restricted-tag rule for a key on one scope: `untagged` when some entry
    holding it is untagged, `tags` the union of the tags of its tagged entries.

    A feature carrying restricted tags is reached only when `tags` contains every one of them
    (untagged entries never reach it); any other feature when an entry is untagged or `tags`
    meets its tags (docs/PERMISSIONS.md, "How one decision is made").
    """
    if key not in TAG_SUPPORTED_KEYS:
        return untagged
    if feature_tags is None:
        return untagged  # fail closed: tagged entries never count without a feature
    if feature_tags.restricted:
        return feature_tags.restricted <= tags
    return untagged or not tags.isdisjoint(feature_tags.tags)


def is_superuser(principal: Any) -> bool:
    """An active Django superuser: an ADMIN member of every organisation (docs/PERMISSIONS.md,
    "Superusers"). An inactive one is no superuser here, and counts only by its memberships."""
    return bool(
        getattr(principal, "is_superuser", False)
        and getattr(principal, "is_active", False)
        and getattr(principal, "is_authenticated", False)
    )


def non_member_policy(organisation_id: int) -> Policy:
    return Policy(organisation_id, False, False, frozenset(), {}, {}, {})
