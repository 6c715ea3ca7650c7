"""`manage.py seed_demo [--reset]`: build the demo organisation "Acme Inc".

Everything is written through the services (so grants are validated and every change is
audited), in one transaction. Only the users themselves, which have no service, are written
with the ORM.

Running it again leaves an existing demo organisation alone and prints its users again;
`--reset` deletes the organisation (with everything in it) and builds it afresh. The demo
users are kept across resets (their flags and passwords are set again); the organisation API
key is new on every build and printed only then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from environments.models import Environment
from environments.services import environment_create
from features.services import feature_create, segment_create
from features.workflow.services import segment_override_create
from organisations.models import MembershipRole, Organisation, OrganisationMembership, Role
from organisations.services import (
    api_key_create,
    group_create,
    membership_create,
    organisation_create,
    organisation_delete,
    role_assignment_create,
    role_create,
)
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    DELETE_FEATURE,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.services import EntryInput, grant_create
from projects.models import Project, Tag
from projects.services import project_create, tag_create

DEMO_ORGANISATION = "Acme Inc"


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    membership: str
    superuser: bool = False

    @property
    def password(self) -> str:
        return f"demo-{self.username}-2026"

    @property
    def email(self) -> str:
        return f"{self.username}@acme.example"


USERS = (
    DemoUser("admin", "Admin", MembershipRole.ADMIN, superuser=True),
    DemoUser("alice", "Alice", MembershipRole.ADMIN),
    DemoUser("bob", "Bob", MembershipRole.USER),
    DemoUser("carol", "Carol", MembershipRole.USER),
    DemoUser("dave", "Dave", MembershipRole.USER),
    DemoUser("erin", "Erin", MembershipRole.USER),
)

# (label, colour, description, restricted)
CHECKOUT_TAGS = (
    (
        "payments",
        "#d64545",
        "Card, wallet and fraud flows. Restricted: only entries naming this tag reach them.",
        True,
    ),
    ("growth", "#2e9e5b", "Conversion and retention work of the growth team.", False),
    ("experiments", "#8a5cd6", "A/B tests; expected to be removed after the experiment.", False),
    ("ui", "#3d7ed6", "Purely visual changes.", False),
)

# (name, description, tags)
CHECKOUT_FEATURES = (
    ("apple_pay", "Offer Apple Pay at checkout.", ("payments",)),
    ("google_pay", "Offer Google Pay at checkout.", ("payments",)),
    (
        "card_3ds2_challenge",
        "Use the 3-D Secure 2 challenge flow for card payments.",
        ("payments",),
    ),
    (
        "retry_declined_cards",
        "Retry soft-declined card payments once with a fresh authorisation.",
        ("payments", "experiments"),
    ),
    ("one_click_reorder", "Reorder a past basket with the stored card.", ("payments", "growth")),
    ("upsell_banner", "Show related products above the order summary.", ("growth", "ui")),
    (
        "free_shipping_threshold",
        "Free shipping above a basket value (the value is the threshold in EUR).",
        ("growth", "experiments"),
    ),
    ("promo_code_field", "Show the promo code field expanded.", ("growth",)),
    ("checkout_redesign_2026", "The new single-page checkout.", ("ui", "experiments")),
    ("address_autocomplete", "Autocomplete postal addresses while typing.", ("ui",)),
    ("order_summary_sidebar", "Keep the order summary visible while scrolling.", ()),
    ("maintenance_mode", "Show the maintenance page instead of the checkout.", ()),
)

MOBILE_TAGS = (
    ("ios", "#555555", "iOS app only.", False),
    ("android", "#3ddc84", "Android app only.", False),
    ("onboarding", "#f2a93b", "First-run experience.", False),
)

MOBILE_FEATURES = (
    ("biometric_login", "Log in with Face ID / Touch ID.", ("ios",)),
    ("material_you_theme", "Follow the Android dynamic colour theme.", ("android",)),
    ("onboarding_carousel_v2", "The three-screen onboarding carousel.", ("onboarding",)),
    (
        "push_prompt_after_first_order",
        "Ask for push permission after the first order.",
        ("onboarding", "ios", "android"),
    ),
    ("offline_mode", "Browse the catalogue without a connection.", ()),
)

BETA_USERS_RULES = [
    {
        "type": "ALL",
        "rules": [],
        "conditions": [{"property": "beta_tester", "operator": "EQUAL", "value": "true"}],
    }
]


class Command(BaseCommand):
    help = (
        f'Create the demo organisation "{DEMO_ORGANISATION}" with users, groups, roles, '
        "grants, projects, tags and features. Safe to run twice; --reset rebuilds it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help=f'Delete the demo organisation "{DEMO_ORGANISATION}" and build it again.',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        existing = Organisation.objects.filter(name=DEMO_ORGANISATION).order_by("pk")
        if existing.exists() and not options["reset"]:
            organisation = existing.first()
            assert organisation is not None
            self.stdout.write(
                f'Demo organisation "{DEMO_ORGANISATION}" already exists (id {organisation.pk}); '
                "nothing changed. Run with --reset to delete and rebuild it."
            )
            self._print_users(organisation)
            self._print_environment_keys(organisation)
            self.stdout.write(
                'The API key "ci-pipeline" was printed when it was created; it is stored only '
                "hashed. Run with --reset for a new one."
            )
            return
        with transaction.atomic():
            if options["reset"]:
                for organisation in existing:
                    deleted_id = organisation.pk
                    organisation_delete(organisation=organisation, actor=None)
                    self.stdout.write(
                        f'Deleted demo organisation "{DEMO_ORGANISATION}" (id {deleted_id}).'
                    )
            organisation, plain_key = self._build()
        self.stdout.write(
            self.style.SUCCESS(
                f'Created demo organisation "{DEMO_ORGANISATION}" (id {organisation.pk}).'
            )
        )
        self._print_summary(organisation)
        self._print_users(organisation)
        self._print_environment_keys(organisation)
        self.stdout.write("")
        self.stdout.write(
            'Organisation API key "ci-pipeline" (role Growth marketer), shown this once:'
        )
        self.stdout.write(f"  {plain_key}")
        self.stdout.write("  Use it as: Authorization: Api-Key <key>")

    # -------------------------------------------------------------------------------------

    def _user(self, spec: DemoUser) -> Any:
        User = get_user_model()
        user, _ = User.objects.get_or_create(username=spec.username)
        user.first_name = spec.first_name
        user.email = spec.email
        user.is_active = True
        user.is_staff = spec.superuser
        user.is_superuser = spec.superuser
        user.set_password(spec.password)
        user.save()
        return user

    def _build(self) -> tuple[Organisation, str]:
        users = {spec.username: self._user(spec) for spec in USERS}
        admin = users["admin"]
        organisation = organisation_create(name=DEMO_ORGANISATION, creator=admin)
        for spec in USERS:
            if spec.username != "admin":
                membership_create(
                    organisation=organisation,
                    user=users[spec.username],
                    role=spec.membership,
                    actor=admin,
                )

        payments_team = group_create(
            organisation=organisation,
            name="Payments team",
            users=[users["bob"], users["carol"]],
            actor=admin,
        )
        growth_team = group_create(
            organisation=organisation, name="Growth", users=[users["dave"]], actor=admin
        )
        qa = group_create(organisation=organisation, name="QA", users=[users["erin"]], actor=admin)

        # Checkout: made by admin. Mobile app: made by alice (who becomes its project admin).
        checkout = project_create(organisation=organisation, name="Checkout", actor=admin)
        development = environment_create(project=checkout, name="Development", actor=admin)
        staging = environment_create(project=checkout, name="Staging", actor=admin)
        production = environment_create(
            project=checkout, name="Production", minimum_change_request_approvals=1, actor=admin
        )
        checkout_tags = self._tags(checkout, CHECKOUT_TAGS, admin)
        checkout_features = self._features(checkout, CHECKOUT_FEATURES, checkout_tags, admin)

        beta_users = segment_create(
            project=checkout, name="beta users", rules=BETA_USERS_RULES, actor=admin
        )
        segment_override_create(
            environment=staging,
            feature=checkout_features["checkout_redesign_2026"],
            segment_id=beta_users.pk,
            enabled=True,
            actor=admin,
        )

        mobile = project_create(organisation=organisation, name="Mobile app", actor=users["alice"])
        environment_create(project=mobile, name="Development", actor=users["alice"])
        environment_create(project=mobile, name="Production", actor=users["alice"])
        mobile_tags = self._tags(mobile, MOBILE_TAGS, users["alice"])
        self._features(mobile, MOBILE_FEATURES, mobile_tags, users["alice"])

        payments = checkout_tags["payments"].pk
        growth = checkout_tags["growth"].pk
        experiments = checkout_tags["experiments"].pk
        E = EntryInput

        payments_changes = [
            E(UPDATE_FEATURE_STATE, (payments,)),
            E(CREATE_CHANGE_REQUEST, (payments,)),
            E(VIEW_ENVIRONMENT),
        ]
        payments_engineer = self._role(
            organisation,
            "Payments engineer",
            "Changes payments flags in Staging and Production (through change requests in "
            "Production).",
            [
                (production, payments_changes),
                (staging, payments_changes),
                (checkout, [E(VIEW_PROJECT), E(DELETE_FEATURE, (payments,))]),
            ],
            admin,
        )
        role_assignment_create(role=payments_engineer, group=payments_team, actor=admin)

        release_approver = self._role(
            organisation,
            "Release approver",
            "Approves change requests in Production. Untagged, so it does not reach features "
            "with the restricted tag payments (Payments approver does).",
            [(production, [E(APPROVE_CHANGE_REQUEST)])],
            admin,
        )
        role_assignment_create(role=release_approver, user=users["carol"], actor=admin)

        # A second role, because one grant holds a key once: the untagged entry above keeps
        # the unrestricted features, this tagged one reaches the restricted payments features
        # (docs/PERMISSIONS.md, restricted tags).
        payments_approver = self._role(
            organisation,
            "Payments approver",
            "Approves change requests on payments flags in Production.",
            [(production, [E(APPROVE_CHANGE_REQUEST, (payments,))])],
            admin,
        )
        role_assignment_create(role=payments_approver, user=users["carol"], actor=admin)

        growth_toggles = [E(UPDATE_FEATURE_STATE, (growth, experiments)), E(VIEW_ENVIRONMENT)]
        growth_marketer = self._role(
            organisation,
            "Growth marketer",
            "Toggles growth and experiment flags in Development and Staging, and proposes "
            "them for Production.",
            [
                (development, growth_toggles),
                (staging, growth_toggles),
                (
                    production,
                    [E(CREATE_CHANGE_REQUEST, (growth, experiments)), E(VIEW_ENVIRONMENT)],
                ),
            ],
            admin,
        )
        role_assignment_create(role=growth_marketer, group=growth_team, actor=admin)

        grant_create(
            principal=users["erin"], scope=checkout, entries=[E(VIEW_PROJECT)], actor=admin
        )
        grant_create(principal=qa, scope=staging, entries=[E(VIEW_ENVIRONMENT)], actor=admin)

        api_key, plain_key = api_key_create(
            organisation=organisation, name="ci-pipeline", actor=admin
        )
        role_assignment_create(role=growth_marketer, api_key=api_key, actor=admin)
        return organisation, plain_key

    def _role(
        self,
        organisation: Organisation,
        name: str,
        description: str,
        grants: list[tuple[Any, list[EntryInput]]],
        actor: Any,
    ) -> Role:
        """A role with its grants, each on a scope, in the order given."""
        role = role_create(
            organisation=organisation, name=name, description=description, actor=actor
        )
        for scope, entries in grants:
            grant_create(principal=role, scope=scope, entries=entries, actor=actor)
        return role

    def _tags(
        self, project: Project, specs: tuple[tuple[str, str, str, bool], ...], actor: Any
    ) -> dict[str, Tag]:
        return {
            label: tag_create(
                project=project,
                label=label,
                color=color,
                description=description,
                is_restricted=restricted,
                actor=actor,
            )
            for label, color, description, restricted in specs
        }

    def _features(
        self,
        project: Project,
        specs: tuple[tuple[str, str, tuple[str, ...]], ...],
        tags: dict[str, Tag],
        actor: Any,
    ) -> dict[str, Any]:
        return {
            name: feature_create(
                project=project,
                name=name,
                description=description,
                tags=[tags[label] for label in labels],
                actor=actor,
            )
            for name, description, labels in specs
        }

    # -------------------------------------------------------------------------------------

    def _print_summary(self, organisation: Organisation) -> None:
        self.stdout.write("")
        for project in Project.objects.filter(organisation=organisation).order_by("pk"):
            environments = ", ".join(
                e.name
                + (
                    f" (change requests: {e.minimum_change_request_approvals} approval(s))"
                    if e.change_requests_enabled
                    else ""
                )
                for e in project.environments.order_by("pk")
            )
            tags = ", ".join(
                t.label + (" (restricted)" if t.is_restricted else "")
                for t in project.tags.order_by("label")
            )
            self.stdout.write(
                f"Project {project.name!r} (id {project.pk}): {project.features.count()} features"
            )
            self.stdout.write(f"  environments: {environments}")
            self.stdout.write(f"  tags: {tags}")

    def _print_environment_keys(self, organisation: Organisation) -> None:
        """The environment keys applications read flags with (Flagsmith SDKs: README,
        "Flags for applications"). They are client-side keys, not secrets."""
        self.stdout.write("")
        self.stdout.write("Environment keys for the Flagsmith SDKs (X-Environment-Key):")
        for environment in (
            Environment.objects.filter(project__organisation=organisation)
            .select_related("project")
            .order_by("project_id", "pk")
        ):
            self.stdout.write(
                f"  {environment.project.name} / {environment.name}: {environment.api_key}"
            )

    def _print_users(self, organisation: Organisation) -> None:
        memberships = {
            m.user.username: m
            for m in OrganisationMembership.objects.filter(organisation=organisation)
            .select_related("user")
            .prefetch_related(
                "user__user_groups__role_assignments__role", "user__role_assignments__role"
            )
        }
        rows = [("username", "password", "membership", "groups", "roles")]
        for spec in USERS:
            membership = memberships.get(spec.username)
            if membership is None:
                continue
            user = membership.user
            groups = [g for g in user.user_groups.all() if g.organisation_id == organisation.pk]
            roles = sorted(
                {
                    a.role.name
                    for a in user.role_assignments.all()
                    if a.role.organisation_id == organisation.pk
                }
                | {
                    f"{a.role.name} (via {g.name})"
                    for g in groups
                    for a in g.role_assignments.all()
                }
            )
            rows.append(
                (
                    spec.username + (" (superuser)" if user.is_superuser else ""),
                    spec.password,
                    membership.role,
                    ", ".join(sorted(g.name for g in groups)) or "-",
                    ", ".join(roles) or "-",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        self.stdout.write("")
        self.stdout.write(f'Users of "{organisation.name}" (demo passwords as set by seed_demo):')
        for index, row in enumerate(rows):
            self.stdout.write(
                "  "
                + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
            if index == 0:
                self.stdout.write("  " + "  ".join("-" * w for w in widths))
