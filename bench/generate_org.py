"""`generate_org()`: a large organisation, reproducibly, for benchmarks (`bench/run.py`).

Everything random is drawn from one `random.Random(seed)` in terms of indices (never database
ids), so the same seed and sizes give the same names, memberships, tag assignments and grants
on any database. Rows are written with `bulk_create` in one transaction; feature states, which
`features.signals` makes on `post_save` (bypassed by bulk inserts), are created here: one
default state per feature and environment of its project.

Shape (defaults in brackets; the model of docs/PERMISSIONS.md):
- M members [5,000], including three benchmark users (below); one shared password `bench`.
- G groups [500]; every other member is in about 5 of them.
- R roles [300], each assigned to about 10 groups and 10 users, each with environment grants in
  about 10 environments (VIEW_ENVIRONMENT plus 1–4 tag-supported keys) and a project grant on
  each project it reaches; about a third of all entries carry 1–4 tags of the grant's project
  (only tag-supported keys are tagged); about 1% of environment grants are `admin`.
- T tags [200]: half in the large project, the rest spread over the other projects; about 2%
  (at least one, all in the large project) are restricted.
- P projects [20] of E environments [5]; project "large" has F features [10,000] carrying 0–4
  tags each; every other project has 10 features with 0–2 tags.
- Benchmark users:
  - `bench-admin`: an organisation ADMIN, in no group;
  - `bench-untagged`: untagged user grants on the large project and each of its environments,
    and untagged group grants through `bench-untagged-group` (which holds no role); no role;
  - `bench-tagged`: 30 roles (`min(30, R)`), all through 5 groups `bench-tagged-group-N` and
    none directly, each with tagged entries on the large project and all its environments
    (UPDATE_FEATURE_STATE always among them; every tag-supported key there is tagged, so it
    holds no untagged tag-supported entry in the large project); no user or group grant.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import CommandError
from django.db import connection, models, transaction

from environments.models import Environment
from features.models import Feature, FeatureState
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions import catalogue as keys
from permissions.catalogue import KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.models import Grant, GrantEntry, GrantEntryTag
from projects.models import Project, Tag

BENCH_ADMIN = "bench-admin"
BENCH_UNTAGGED = "bench-untagged"
BENCH_TAGGED = "bench-tagged"
BENCH_USERS = (BENCH_ADMIN, BENCH_UNTAGGED, BENCH_TAGGED)
BENCH_PASSWORD = "bench"
LARGE_PROJECT = "large"
UNTAGGED_GROUP = "bench-untagged-group"
TAGGED_GROUP_PREFIX = "bench-tagged-group-"

DEFAULTS = {
    "members": 5000,
    "groups": 500,
    "roles": 300,
    "tags": 200,
    "projects": 20,
    "environments_per_project": 5,
    "features": 10_000,
}
GROUPS_PER_MEMBER = 5
GROUPS_PER_ROLE = 10
USERS_PER_ROLE = 10
ENVIRONMENTS_PER_ROLE = 10
TAGGED_USER_ROLES = 30
TAGGED_USER_GROUPS = 5
SMALL_PROJECT_FEATURES = 10
MAX_TAGS = 4
# An environment grant holds VIEW_ENVIRONMENT and on average 2.5 tag-supported keys: tagging a
# tag-supported entry with this probability tags about a third of all entries.
TAG_PROBABILITY = 0.5
ADMIN_GRANT_PROBABILITY = 0.01
RESTRICTED_SHARE = 0.02
BATCH = 5000

ENVIRONMENT_KEYS = KEYS_BY_LEVEL[Level.ENVIRONMENT]
TAGGABLE_ENVIRONMENT_KEYS = tuple(k for k in ENVIRONMENT_KEYS if k in TAG_SUPPORTED_KEYS)


# --------------------------------------------------------------------------------------
# Progress bar (stderr; no dependency)
# --------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar: redrawn in place on a terminal, every 10% otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool = True, width: int = 30) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1

    def advance(self, n: int, label: str) -> None:
        self.done = min(self.total, self.done + n)
        if not self.enabled:
            return
        fraction = self.done / self.total
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw < 0.1 and self.done < self.total:
                return
            self._last_draw = now
            filled = int(self.width * fraction)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(
                f"\r[{bar}] {fraction:4.0%} {now - self.started:5.1f}s {label:<24.24}"
            )
        else:
            decile = int(fraction * 10)
            if decile == self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(f"generate_org: {fraction:4.0%} {now - self.started:5.1f}s {label}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------------------
# The plan: every row, by index, drawn from the seed
# --------------------------------------------------------------------------------------


@dataclass
class GrantPlan:
    kind: str  # "user" | "group" | "role"
    principal: int  # index in users / groups / roles
    project: int  # project index
    environment: int | None  # global environment index, None for a project grant
    admin: bool
    entries: list[tuple[str, list[int]]]  # (key, global tag indices)


@dataclass
class Plan:
    usernames: list[str]
    group_names: list[str]
    group_members: list[tuple[int, int]]  # (group, user)
    role_names: list[str]
    role_groups: list[tuple[int, int]]  # (role, group)
    role_users: list[tuple[int, int]]  # (role, user)
    project_names: list[str]
    environments: list[tuple[int, str]]  # (project, name)
    tags: list[tuple[int, str, bool]]  # (project, label, is_restricted)
    features: list[tuple[int, str, list[int]]]  # (project, name, tag indices)
    grants: list[GrantPlan] = field(default_factory=list)

    def environments_of(self, project: int) -> list[int]:
        return [i for i, (p, _) in enumerate(self.environments) if p == project]

    @property
    def state_count(self) -> int:
        per_project = [0] * len(self.project_names)
        for p, _ in self.environments:
            per_project[p] += 1
        return sum(per_project[p] for p, _, _ in self.features)


def _around(rng: random.Random, mean: int, limit: int, spread: int = 2) -> int:
    """An integer drawn uniformly from mean ± spread, within [min(1, limit), limit]."""
    return max(min(1, limit), min(limit, rng.randint(mean - spread, mean + spread)))


def make_plan(
    *,
    seed: int,
    members: int,
    groups: int,
    roles: int,
    tags: int,
    projects: int,
    environments_per_project: int,
    features: int,
) -> Plan:
    rng = random.Random(seed)

    usernames = [
        *BENCH_USERS,
        *(f"member-{i:05d}" for i in range(1, members - len(BENCH_USERS) + 1)),
    ]
    untagged_u, tagged_u = 1, 2  # 0 is bench-admin
    random_users = list(range(len(BENCH_USERS), members))

    # Groups: 0 is bench-untagged's, 1..n_tagged_groups are bench-tagged's.
    n_tagged_groups = min(TAGGED_USER_GROUPS, groups - 1)
    group_names = [UNTAGGED_GROUP]
    group_names += [f"{TAGGED_GROUP_PREFIX}{i}" for i in range(1, n_tagged_groups + 1)]
    group_names += [f"group-{i:04d}" for i in range(len(group_names), groups)]
    tagged_groups = list(range(1, n_tagged_groups + 1))
    random_groups = list(range(1 + n_tagged_groups, groups))

    group_members: list[tuple[int, int]] = [(0, untagged_u)]
    group_members += [(g, tagged_u) for g in tagged_groups]
    for user in random_users:
        for g in rng.sample(range(groups), _around(rng, GROUPS_PER_MEMBER, groups)):
            group_members.append((g, user))

    # Roles: the first n_tagged_roles reach bench-tagged through its groups, and only them.
    n_tagged_roles = min(TAGGED_USER_ROLES, roles)
    role_names = [f"role-{i:04d}" for i in range(1, roles + 1)]
    role_groups: set[tuple[int, int]] = set()
    role_users: set[tuple[int, int]] = set()
    for role in range(roles):
        if role < n_tagged_roles and tagged_groups:
            role_groups.add((role, tagged_groups[role % len(tagged_groups)]))
        if random_groups:
            for g in rng.sample(random_groups, _around(rng, GROUPS_PER_ROLE, len(random_groups))):
                role_groups.add((role, g))
        if random_users:
            for u in rng.sample(random_users, _around(rng, USERS_PER_ROLE, len(random_users))):
                role_users.add((role, u))

    # Projects, environments, tags.
    project_names = [LARGE_PROJECT, *(f"project-{i:02d}" for i in range(2, projects + 1))]
    environments = [
        (p, f"env-{e}") for p in range(projects) for e in range(1, environments_per_project + 1)
    ]
    large_tags = tags if projects == 1 else math.ceil(tags / 2)
    tag_projects = [0] * large_tags + [1 + i % (projects - 1) for i in range(tags - large_tags)]
    n_restricted = min(max(1, round(tags * RESTRICTED_SHARE)), max(0, large_tags - 1))
    restricted = set(rng.sample(range(large_tags), n_restricted))
    tag_rows = [(p, f"tag-{i:03d}", i in restricted) for i, p in enumerate(tag_projects)]
    tags_of: list[list[int]] = [[] for _ in range(projects)]
    for i, p in enumerate(tag_projects):
        tags_of[p].append(i)

    def some_tags(project: int, most: int) -> list[int]:
        pool = tags_of[project]
        if not pool or most <= 0:
            return []
        return sorted(rng.sample(pool, min(len(pool), most)))

    feature_rows: list[tuple[int, str, list[int]]] = []
    for i in range(1, features + 1):
        feature_rows.append((0, f"feature-{i:05d}", some_tags(0, rng.randint(0, MAX_TAGS))))
    for p in range(1, projects):
        for i in range(1, SMALL_PROJECT_FEATURES + 1):
            feature_rows.append((p, f"feature-{i:05d}", some_tags(p, rng.randint(0, 2))))

    plan = Plan(
        usernames=usernames,
        group_names=group_names,
        group_members=group_members,
        role_names=role_names,
        role_groups=sorted(role_groups),
        role_users=sorted(role_users),
        project_names=project_names,
        environments=environments,
        tags=tag_rows,
        features=feature_rows,
    )

    # Grants. Role grants: ~10 environments each, a project grant on every project reached.
    large_envs = plan.environments_of(0)
    other_envs = [i for i, (p, _) in enumerate(environments) if p != 0]

    def entry_tags(project: int, force: bool) -> list[int]:
        if not tags_of[project]:
            return []
        if force or rng.random() < TAG_PROBABILITY:
            return some_tags(project, rng.randint(1, MAX_TAGS))
        return []

    for role in range(roles):
        designated = role < n_tagged_roles
        k = _around(rng, ENVIRONMENTS_PER_ROLE, len(environments))
        if designated:
            chosen = list(large_envs)
            extra = max(0, k - len(chosen))
            chosen += rng.sample(other_envs, min(extra, len(other_envs)))
        else:
            chosen = rng.sample(range(len(environments)), k)
        for env in sorted(chosen):
            project = environments[env][0]
            forced = designated and project == 0
            picked = rng.sample(
                TAGGABLE_ENVIRONMENT_KEYS, rng.randint(1, len(TAGGABLE_ENVIRONMENT_KEYS))
            )
            if forced and keys.UPDATE_FEATURE_STATE not in picked:
                picked[0] = keys.UPDATE_FEATURE_STATE
            entries: list[tuple[str, list[int]]] = [(keys.VIEW_ENVIRONMENT, [])]
            for key in sorted(picked):
                entries.append((key, entry_tags(project, forced)))
            admin = not forced and rng.random() < ADMIN_GRANT_PROBABILITY
            plan.grants.append(GrantPlan("role", role, project, env, admin, entries))
        for project in sorted({environments[e][0] for e in chosen}):
            forced = designated and project == 0
            entries = [(keys.VIEW_PROJECT, [])]
            if forced or rng.random() < 0.5:
                entries.append((keys.DELETE_FEATURE, entry_tags(project, forced)))
            plan.grants.append(GrantPlan("role", role, project, None, False, entries))

    # bench-untagged: its own grants and its group's, all untagged, on the large project.
    plan.grants.append(
        GrantPlan(
            "user", untagged_u, 0, None, False, [(keys.VIEW_PROJECT, []), (keys.CREATE_FEATURE, [])]
        )
    )
    plan.grants.append(GrantPlan("group", 0, 0, None, False, [(keys.VIEW_PROJECT, [])]))
    for env in large_envs:
        plan.grants.append(
            GrantPlan("user", untagged_u, 0, env, False, [(k, []) for k in ENVIRONMENT_KEYS])
        )
        plan.grants.append(
            GrantPlan(
                "group",
                0,
                0,
                env,
                False,
                [
                    (keys.VIEW_ENVIRONMENT, []),
                    (keys.CREATE_CHANGE_REQUEST, []),
                    (keys.APPROVE_CHANGE_REQUEST, []),
                ],
            )
        )
    return plan


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _chunks(items: Sequence[Any] | Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def _sqlite_speedups() -> Iterator[None]:
    """Relax durability for the bulk load on SQLite (this connection only), then restore."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        (synchronous,) = cursor.fetchone()
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.execute("PRAGMA cache_size = -200000")  # ~200 MB of page cache
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA synchronous = {int(synchronous)}")


@dataclass
class Result:
    organisation: Organisation
    counts: dict[str, int]


class Writer:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def bulk(self, model: type[models.Model], objs: Iterable[Any], label: str) -> list[Any]:
        created: list[Any] = []
        for chunk in _chunks(objs, BATCH):
            created.extend(model._default_manager.bulk_create(chunk))
            self.progress.advance(len(chunk), label)
        return created


def write_plan(plan: Plan, organisation_name: str, progress: Progress) -> Result:
    User = get_user_model()
    w = Writer(progress)
    organisation = Organisation.objects.create(name=organisation_name)
    org_id = organisation.pk
    password = make_password(BENCH_PASSWORD)

    users = w.bulk(
        User,
        (User(username=u, email=f"{u}@bench.example", password=password) for u in plan.usernames),
        "users",
    )
    user_ids = [u.pk for u in users]
    w.bulk(
        OrganisationMembership,
        (
            OrganisationMembership(
                user_id=uid,
                organisation_id=org_id,
                role=MembershipRole.ADMIN
                if plan.usernames[i] == BENCH_ADMIN
                else MembershipRole.USER,
            )
            for i, uid in enumerate(user_ids)
        ),
        "memberships",
    )
    groups = w.bulk(
        UserGroup, (UserGroup(organisation_id=org_id, name=n) for n in plan.group_names), "groups"
    )
    group_ids = [g.pk for g in groups]
    through = UserGroup.users.through
    w.bulk(
        through,
        (through(usergroup_id=group_ids[g], user_id=user_ids[u]) for g, u in plan.group_members),
        "group members",
    )
    roles = w.bulk(Role, (Role(organisation_id=org_id, name=n) for n in plan.role_names), "roles")
    role_ids = [r.pk for r in roles]
    w.bulk(
        RoleAssignment,
        (
            *(
                RoleAssignment(role_id=role_ids[r], group_id=group_ids[g])
                for r, g in plan.role_groups
            ),
            *(RoleAssignment(role_id=role_ids[r], user_id=user_ids[u]) for r, u in plan.role_users),
        ),
        "role assignments",
    )
    projects = w.bulk(
        Project, (Project(organisation_id=org_id, name=n) for n in plan.project_names), "projects"
    )
    project_ids = [p.pk for p in projects]
    environments = w.bulk(
        Environment,
        (Environment(project_id=project_ids[p], name=n) for p, n in plan.environments),
        "environments",
    )
    env_ids = [e.pk for e in environments]
    tags = w.bulk(
        Tag,
        (Tag(project_id=project_ids[p], label=lbl, is_restricted=r) for p, lbl, r in plan.tags),
        "tags",
    )
    tag_ids = [t.pk for t in tags]
    features = w.bulk(
        Feature,
        (Feature(project_id=project_ids[p], name=n) for p, n, _ in plan.features),
        "features",
    )
    feature_ids = [f.pk for f in features]
    feature_tags = Feature.tags.through
    w.bulk(
        feature_tags,
        (
            feature_tags(feature_id=feature_ids[i], tag_id=tag_ids[t])
            for i, (_, _, ts) in enumerate(plan.features)
            for t in ts
        ),
        "feature tags",
    )
    envs_of_project: list[list[int]] = [[] for _ in plan.project_names]
    for i, (p, _) in enumerate(plan.environments):
        envs_of_project[p].append(env_ids[i])
    w.bulk(
        FeatureState,
        (
            FeatureState(feature_id=feature_ids[i], environment_id=env_id)
            for i, (p, _, _) in enumerate(plan.features)
            for env_id in envs_of_project[p]
        ),
        "feature states",
    )
    principal_ids = {"user": user_ids, "group": group_ids, "role": role_ids}
    grants = w.bulk(
        Grant,
        (
            Grant(
                organisation_id=org_id,
                project_id=project_ids[g.project],
                environment_id=env_ids[g.environment] if g.environment is not None else None,
                admin=g.admin,
                **{f"{g.kind}_id": principal_ids[g.kind][g.principal]},
            )
            for g in plan.grants
        ),
        "grants",
    )
    entry_plans = [
        (grant.pk, key, ts)
        for grant, g in zip(grants, plan.grants, strict=True)
        for key, ts in g.entries
    ]
    entries = w.bulk(
        GrantEntry, (GrantEntry(grant_id=gid, key=key) for gid, key, _ in entry_plans), "entries"
    )
    w.bulk(
        GrantEntryTag,
        (
            GrantEntryTag(entry_id=entry.pk, tag_id=tag_ids[t])
            for entry, (_, _, ts) in zip(entries, entry_plans, strict=True)
            for t in ts
        ),
        "entry tags",
    )
    counts = {
        "members": len(user_ids),
        "groups": len(group_ids),
        "group memberships": len(plan.group_members),
        "roles": len(role_ids),
        "role assignments": len(plan.role_groups) + len(plan.role_users),
        "projects": len(project_ids),
        "environments": len(env_ids),
        "tags": len(tag_ids),
        "restricted tags": sum(1 for _, _, r in plan.tags if r),
        "features": len(feature_ids),
        "feature tags": sum(len(ts) for _, _, ts in plan.features),
        "feature states": plan.state_count,
        "grants": len(grants),
        "entries": len(entries),
        "tagged entries": sum(1 for _, _, ts in entry_plans if ts),
        "entry tags": sum(len(ts) for _, _, ts in entry_plans),
    }
    return Result(organisation, counts)


def planned_rows(plan: Plan) -> int:
    return (
        2 * len(plan.usernames)
        + len(plan.group_names)
        + len(plan.group_members)
        + len(plan.role_names)
        + len(plan.role_groups)
        + len(plan.role_users)
        + len(plan.project_names)
        + len(plan.environments)
        + len(plan.tags)
        + len(plan.features)
        + sum(len(ts) for _, _, ts in plan.features)
        + plan.state_count
        + len(plan.grants)
        + sum(len(g.entries) for g in plan.grants)
        + sum(len(ts) for g in plan.grants for _, ts in g.entries)
    )


def generate_org(
    *,
    seed: int = 0,
    name: str = "Bench organisation",
    verbosity: int = 1,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    **sizes: int,
) -> Organisation:
    """Generate the organisation `name` from `seed` at `sizes` (any of `DEFAULTS`; the rest
    take their default) into a database without the benchmark users; summary on `stdout`
    and a progress bar on `stderr` when `verbosity >= 1`. Sizes too small, a taken name or
    existing benchmark users are a `CommandError` naming the option."""
    out = stdout or sys.stdout
    unknown = set(sizes) - set(DEFAULTS)
    if unknown:
        raise CommandError(f"Unknown sizes: {', '.join(sorted(unknown))}")
    sizes = {**DEFAULTS, **sizes}
    minimum = {"members": len(BENCH_USERS), "groups": 2, "projects": 1}
    for size, value in sizes.items():
        if value < minimum.get(size, 0) or value < 0:
            raise CommandError(
                f"--{size.replace('_', '-')} must be at least {minimum.get(size, 0)}"
            )
    if sizes["environments_per_project"] < 1:
        raise CommandError("--environments-per-project must be at least 1")
    if Organisation.objects.filter(name=name).exists():
        raise CommandError(f"An organisation named {name!r} already exists; use --name.")
    User = get_user_model()
    taken = list(User.objects.filter(username__in=BENCH_USERS).values_list("username", flat=True))
    if taken:
        raise CommandError(
            f"Users {', '.join(sorted(taken))} already exist: generate into a fresh database."
        )

    started = time.monotonic()
    plan = make_plan(seed=seed, **sizes)
    progress = Progress(planned_rows(plan), stderr or sys.stderr, enabled=verbosity >= 1)
    with _sqlite_speedups(), transaction.atomic():
        result = write_plan(plan, name, progress)
    progress.finish()
    elapsed = time.monotonic() - started

    if verbosity >= 1:

        def say(line: str) -> None:
            out.write(line + "\n")

        say(
            f"Generated organisation {name!r} (id {result.organisation.pk}) "
            f"from seed {seed} in {elapsed:.1f}s on {connection.vendor}:"
        )
        for label, count in result.counts.items():
            say(f"  {label:>18}: {count:,}")
        entries = result.counts["entries"]
        share = result.counts["tagged entries"] / entries if entries else 0.0
        say(f"  {'tagged share':>18}: {share:.0%} of entries")
        say(f"Large project: {LARGE_PROJECT!r}. Benchmark users (password {BENCH_PASSWORD!r}):")
        say(f"  {BENCH_ADMIN}: organisation admin")
        say(f"  {BENCH_UNTAGGED}: untagged user and group grants on the large project")
        say(
            f"  {BENCH_TAGGED}: {min(TAGGED_USER_ROLES, sizes['roles'])} roles through groups, "
            "tagged entries on the large project"
        )
    return result.organisation
