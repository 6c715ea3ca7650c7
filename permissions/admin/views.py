"""Custom admin views: an environment's permission matrix, and "explain a decision".

Both only present what the engine decides: the matrix asks each member's `Policy` (loaded by
the engine) through `Policy.decide` for every cell, and the explain page shows
`reports.explain` with names and links.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from environments.models import Environment
from features.models import Feature
from organisations.models import OrganisationMembership, Role, UserGroup
from permissions import engine, reports
from permissions.admin.forms import ExplainForm, environment_label
from permissions.catalogue import CATALOGUE, KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.engine import ScopeRights
from permissions.models import Grant
from projects.models import Project, Tag
from tagwarden.admin.base import scoped_queryset

User = get_user_model()

# The matrix shows the tag-supported environment keys: the ones that differ per feature.
MATRIX_KEYS: tuple[str, ...] = tuple(
    k for k in KEYS_BY_LEVEL[Level.ENVIRONMENT] if k in TAG_SUPPORTED_KEYS
)
MEMBERS_PER_PAGE = 250


def abbreviations(keys: Sequence[str]) -> dict[str, str]:
    """One letter per key when the first letters differ, else the initials of its words."""
    firsts = [k[0] for k in keys]
    if len(set(firsts)) == len(firsts):
        return dict(zip(keys, firsts, strict=True))
    return {k: "".join(w[0] for w in k.split("_")) for k in keys}


# --------------------------------------------------------------------------------------
# Policies of many members
# --------------------------------------------------------------------------------------


def member_policies(organisation_id: int, users: Sequence[Any]) -> dict[int, engine.Policy]:
    """{user id: Policy} for members of one organisation, loaded by the engine in a constant
    number of queries (`engine.policies_for_members`), whatever the number of members."""
    return engine.policies_for_members(organisation_id, [u.pk for u in users])


# --------------------------------------------------------------------------------------
# The matrix
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixRow:
    user: Any
    organisation_admin: bool
    environment_admin: bool
    # one bit per MATRIX_KEYS entry, per feature (in the order of the columns)
    masks: list[int]


def matrix_rows(
    environment: Environment,
    memberships: Sequence[OrganisationMembership],
    features: Sequence[Feature],
    policies: dict[int, engine.Policy],
    keys: Sequence[str] = MATRIX_KEYS,
) -> list[MatrixRow]:
    """Each member's keys on each feature, decided by the engine (`Policy.decide`).

    A decision depends only on the policy, the key, the scope and the feature's tags, so it
    is asked once per member and distinct tag set, and shared by the features that carry
    that tag set.
    """
    project_id, environment_id = environment.project_id, environment.pk
    feature_tags = [engine.feature_tags(f) for f in features]
    distinct = set(feature_tags)
    rows = []
    for membership in memberships:
        policy = policies[membership.user_id]
        table = {}
        for tags in distinct:
            mask = 0
            for bit, key in enumerate(keys):
                if policy.decide(
                    key, project_id=project_id, environment_id=environment_id, feature_tags=tags
                ):
                    mask |= 1 << bit
            table[tags] = mask
        rows.append(
            MatrixRow(
                user=membership.user,
                organisation_admin=policy.is_organisation_admin,
                environment_admin=policy.is_environment_admin(project_id, environment_id),
                masks=[table[t] for t in feature_tags],
            )
        )
    return rows


def mask_colour(mask: int, n_keys: int) -> str:
    """The CSS background of a set of held keys: grey for none, green for all, amber shades
    in between (the matrix and the feature-state changelist share it)."""
    full = (1 << n_keys) - 1
    if mask == 0:
        return "#eeeeee;color:#aaa"
    if mask == full:
        return "#a5d6a7"
    lightness = 88 - int(20 * bin(mask).count("1") / n_keys)
    return f"hsl(40,95%,{lightness}%)"


def keys_mask(held: Sequence[str], keys: Sequence[str] = MATRIX_KEYS) -> int:
    return sum(1 << bit for bit, key in enumerate(keys) if key in held)


def keys_cell(held: Sequence[str], keys: Sequence[str] = MATRIX_KEYS) -> SafeString:
    """One matrix cell for the keys `held`: letters on the matrix's colour, the held keys
    in its tooltip."""
    mask = keys_mask(held, keys)
    text = "".join(
        letter if mask & (1 << bit) else "·"
        for bit, letter in enumerate(abbreviations(keys).values())
    )
    title = ", ".join(k for k in keys if k in held) or "no key on this feature"
    return mark_safe(
        f'<span class="tw-keys" title="{escape(title)}" style="font-family:monospace;'
        f'padding:1px 4px;background:{mask_colour(mask, len(keys))}">{text}</span>'
    )


def _mask_styles(n_keys: int) -> str:
    """CSS per mask (`mask_colour`)."""
    return "\n".join(
        f"#pm td.m{mask}{{background:{mask_colour(mask, n_keys)}}}" for mask in range(1 << n_keys)
    )


def _render_body(rows: Sequence[MatrixRow], keys: Sequence[str]) -> SafeString:
    """The table body, built in Python: 100 000 cells through the template engine would be
    far too slow. Each cell is its mask's class and letters; the page's script turns a
    click into the cell's explanation and a hover into a tooltip."""
    letters = list(abbreviations(keys).values())
    cells = []
    for mask in range(1 << len(keys)):
        text = "".join(letter if mask & (1 << bit) else "·" for bit, letter in enumerate(letters))
        cells.append(f"<td class=m{mask}>{text}</td>")
    out = []
    for row in rows:
        badge = ""
        if row.organisation_admin:
            badge = ' <span class="pm-badge">org admin</span>'
        elif row.environment_admin:
            badge = ' <span class="pm-badge">env admin</span>'
        name = escape(row.user.get_username())
        out.append(
            f'<tr data-u="{row.user.pk}"><th scope="row" title="{escape(row.user.email)}">'
            f"{name}{badge}</th>"
        )
        out.append("".join([cells[m] for m in row.masks]))
        out.append("</tr>\n")
    return mark_safe("".join(out))


def permission_matrix_view(
    request: HttpRequest, *, model_admin: Any, object_id: str
) -> HttpResponse:
    """Members × features of one environment: which tag-supported keys each member holds."""
    started = time.perf_counter()
    environment = (
        model_admin.get_queryset(request)
        .select_related("project__organisation")
        .filter(pk=object_id)
        .first()
        if str(object_id).isdigit()
        else None
    )
    if environment is None:
        raise Http404("No such environment.")
    # Everyone's rights: for the organisation's admins only (members see their own on the
    # My permissions page).
    if not model_admin.in_scope(request, environment):
        raise PermissionDenied
    project = environment.project
    organisation = project.organisation

    project_tags = list(Tag.objects.filter(project=project).order_by("label", "id"))
    tag_ids = {t.pk for t in project_tags}
    chosen_tags = sorted(
        {int(v) for v in request.GET.getlist("tag") if v.isdigit() and int(v) in tag_ids}
    )
    feature_query = request.GET.get("q", "").strip()
    member_query = request.GET.get("member", "").strip()

    features_qs: QuerySet[Feature] = Feature.objects.filter(project=project)
    if chosen_tags:
        features_qs = features_qs.filter(tags__in=chosen_tags).distinct()
    if feature_query:
        features_qs = features_qs.filter(name__icontains=feature_query)
    features = list(features_qs.order_by("name", "id").prefetch_related("tags"))

    memberships_qs = OrganisationMembership.objects.filter(organisation=organisation)
    if member_query:
        memberships_qs = memberships_qs.filter(
            Q(user__username__icontains=member_query) | Q(user__email__icontains=member_query)
        )
    memberships_qs = memberships_qs.select_related("user").order_by("user__username", "user_id")
    paginator = Paginator(memberships_qs, MEMBERS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    memberships = list(page.object_list)

    policies = member_policies(organisation.pk, [m.user for m in memberships])
    rows = matrix_rows(environment, memberships, features, policies)

    keys = MATRIX_KEYS
    letters = abbreviations(keys)
    tag_labels = {t.pk: t.label for t in project_tags}
    columns = [
        {
            "id": f.pk,
            "name": f.name,
            "tags": ", ".join(
                tag_labels.get(t.pk, "") + (" (restricted)" if t.is_restricted else "")
                for t in f.tags.all()
            ),
        }
        for f in features
    ]
    site = model_admin.admin_site
    base_query = {k: v for k, v in request.GET.lists() if k != "page"}
    context = {
        **site.each_context(request),
        "title": f"Permission matrix: {environment_label(environment)}",
        "opts": Environment._meta,
        "environment": environment,
        "organisation": organisation,
        "project_tags": project_tags,
        "chosen_tags": chosen_tags,
        "feature_query": feature_query,
        "member_query": member_query,
        "columns": columns,
        "body": _render_body(rows, keys),
        "legend": [
            {"letter": letters[k], "key": k, "description": CATALOGUE[k].description} for k in keys
        ],
        "mask_styles": mark_safe(_mask_styles(len(keys))),
        "keys_json": mark_safe(json.dumps(list(keys))),
        "page": page,
        "paginator": paginator,
        "page_query": urlencode(base_query, doseq=True),
        "member_count": paginator.count,
        "feature_count": len(features),
        "cell_count": len(rows) * len(features),
        "explain_url": reverse(
            f"{site.name}:environments_environment_matrix_explain", args=[environment.pk]
        ),
        "change_url": reverse(
            f"{site.name}:environments_environment_change", args=[environment.pk]
        ),
        "built_in_ms": 0,
    }
    context["built_in_ms"] = int((time.perf_counter() - started) * 1000)
    return TemplateResponse(request, "admin/permissions/permission_matrix.html", context)


def matrix_cell_explain_redirect(
    request: HttpRequest, *, model_admin: Any, object_id: str
) -> HttpResponseRedirect:
    """A matrix cell (`?u=<user id>&f=<feature id>`) → the explain page for it."""
    params = {
        "environment": object_id,
        "user": request.GET.get("u", ""),
        "feature": request.GET.get("f", ""),
    }
    key = request.GET.get("key")
    if key:
        params["key"] = key
    url = reverse(f"{model_admin.admin_site.name}:permissions_explain")
    return HttpResponseRedirect(f"{url}?{urlencode(params)}")


# --------------------------------------------------------------------------------------
# Explain
# --------------------------------------------------------------------------------------

_WHY = {
    "tag_mismatch": "the feature carries none of this entry's tags",
    "restricted_tag": (
        "the feature carries restricted tags that the user's entries for this key, taken "
        "together, do not all name"
    ),
}
_VIA = {
    "organisation_admin": "organisation admin (ADMIN member)",
    "project_admin": "project admin",
    "environment_admin": "environment admin",
    "user": "the user's own grant",
    "group": "a grant of the user's group",
    "role": "a grant of a role",
}


def _link(site_name: str, model: str, obj_id: int, label: str) -> dict[str, str]:
    return {"url": reverse(f"{site_name}:{model}_change", args=[obj_id]), "label": label}


def explain_view(request: HttpRequest, *, model_admin: Any) -> HttpResponse:
    """Pick a user, an environment, a feature and a key: the engine's decision and every path
    that allowed it or did not match."""
    site = model_admin.admin_site
    environments = scoped_queryset(site, Environment, request)
    users = scoped_queryset(site, User, request)
    features = scoped_queryset(site, Feature, request)
    own_only = not model_admin.has_view_permission(request)
    if own_only:
        # A member who administers nothing explains their own decisions only, on what they
        # may view (the My permissions page links here).
        users = User.objects.filter(pk=cast(int, request.user.pk))
    form = ExplainForm(
        request.GET or None,
        environments=(environments if environments is not None else Environment.objects.all())
        .select_related("project__organisation")
        .order_by("project__name", "name", "id"),
        users=users if users is not None else User.objects.all(),
        features=features if features is not None else Feature.objects.all(),
        admin_site=site,
    )
    if own_only:
        user_field: Any = form.fields["user"]
        user_field.widget = forms.Select(choices=user_field.choices)
    results: list[dict[str, Any]] = []
    subject: dict[str, Any] = {}
    if form.is_valid():
        environment: Environment = form.cleaned_data["environment"]
        user = form.cleaned_data["user"]
        feature: Feature = Feature.objects.prefetch_related("tags").get(
            pk=form.cleaned_data["feature"].pk
        )
        keys = (
            [form.cleaned_data["key"]]
            if form.cleaned_data["key"]
            else list(KEYS_BY_LEVEL[Level.ENVIRONMENT])
        )
        raw = [reports.explain(user, key, environment, feature) for key in keys]
        results = _present(site.name, raw, user=user, environment=environment, feature=feature)
        subject = {
            "user": user,
            "environment": environment,
            "environment_label": environment_label(environment),
            "feature": feature,
            "feature_tags": [
                {"label": t.label, "color": t.color, "restricted": t.is_restricted}
                for t in feature.tags.all()
            ],
            "matrix_url": reverse(
                f"{site.name}:environments_environment_matrix", args=[environment.pk]
            ),
        }
    context = {
        **site.each_context(request),
        "title": "Explain a decision",
        "opts": Grant._meta,
        "form": form,
        "media": model_admin.media + form.media,
        "results": results,
        "subject": subject,
    }
    return TemplateResponse(request, "admin/permissions/explain.html", context)


def _present(
    site_name: str,
    raw: list[dict[str, Any]],
    *,
    user: Any,
    environment: Environment,
    feature: Feature,
) -> list[dict[str, Any]]:
    """`reports.explain` results with names and links instead of ids (a constant number of
    queries whatever the number of paths)."""
    role_ids = {p["role"] for r in raw for p in (*r["granted_by"], *r["blocked_by"]) if p["role"]}
    group_ids = {
        p["group"] for r in raw for p in (*r["granted_by"], *r["blocked_by"]) if p["group"]
    }
    tag_ids = {t for r in raw for p in r["granted_by"] for t in p["tags_matched"]} | {
        t for r in raw for p in r["blocked_by"] for t in p["tags"]
    }
    roles = Role.objects.in_bulk(role_ids)
    groups = UserGroup.objects.in_bulk(group_ids)
    tags = Tag.objects.in_bulk(tag_ids)
    grants_url = reverse(f"{site_name}:permissions_grant_changelist")

    def principal(path: dict[str, Any]) -> dict[str, Any]:
        role, group = roles.get(path["role"]), groups.get(path["group"])
        out: dict[str, Any] = {
            "via": _VIA.get(path["via"], path["via"]),
            "role": _link(site_name, "organisations_role", role.pk, role.name) if role else None,
            "group": _link(site_name, "organisations_usergroup", group.pk, group.name)
            if group
            else None,
        }
        if path["via"] == "organisation_admin":
            out["grants_url"] = (
                reverse(f"{site_name}:organisations_organisationmembership_changelist")
                + "?"
                + urlencode({"organisation": environment.project.organisation_id, "user": user.pk})
            )
            return out
        if role is not None and path["via"] in ("role", "project_admin", "environment_admin"):
            who = {"role": role.pk}
        elif group is not None:
            who = {"group": group.pk}
        else:
            who = {"user": user.pk}
        if path["via"] == "project_admin":
            where = {"project": environment.project_id, "environment__isnull": "True"}
        else:
            where = {"environment": environment.pk}
        out["grants_url"] = f"{grants_url}?{urlencode({**who, **where})}"
        return out

    def tag_list(ids: list[int]) -> list[dict[str, Any]]:
        return [
            {"label": tags[i].label, "color": tags[i].color, "restricted": tags[i].is_restricted}
            for i in ids
            if i in tags
        ]

    presented = []
    for result in raw:
        presented.append(
            {
                "key": result["permission"],
                "description": CATALOGUE[result["permission"]].description,
                "supports_tag": result["permission"] in TAG_SUPPORTED_KEYS,
                "allowed": result["allowed"],
                "reason": result["reason"],
                "granted_by": [
                    {**principal(p), "scope": p["scope"], "tags": tag_list(p["tags_matched"])}
                    for p in result["granted_by"]
                ],
                "blocked_by": [
                    {
                        **principal(p),
                        "tags": tag_list(p["tags"]),
                        "why": _WHY.get(p["why"], p["why"]),
                    }
                    for p in result["blocked_by"]
                ],
            }
        )
    return presented


# --------------------------------------------------------------------------------------
# My permissions
# --------------------------------------------------------------------------------------


def _rights_rows(
    keys: Sequence[str], rights: ScopeRights | None, admin: bool, tag_labels: dict[int, Any]
) -> list[dict[str, Any]]:
    """One row per key of the level: held (untagged, or admin), narrowed by tags, or not."""
    rows = []
    for key in keys:
        if admin or (rights is not None and key in rights.untagged):
            how, tags = "held", []
        elif rights is not None and rights.tagged.get(key):
            how = "tags"
            tags = sorted(
                (tag_labels[t] for t in rights.tagged[key] if t in tag_labels),
                key=lambda t: t.label,
            )
        else:
            continue
        rows.append(
            {
                "key": key,
                "description": CATALOGUE[key].description,
                "how": how,
                "tags": tags,
                "supports_tag": key in TAG_SUPPORTED_KEYS,
            }
        )
    return rows


def my_permissions_view(request: HttpRequest, *, site: Any) -> HttpResponse:
    """Every member's own rights: per project and environment they may view, the keys they
    hold, which tags narrow each, and a link to the explanation of any decision. Built from
    the engine's policies (one query per organisation) and its SQL filters: a constant
    number of queries whatever the number of projects and environments."""
    user: Any = request.user
    memberships = list(
        OrganisationMembership.objects.filter(user_id=user.pk)
        .select_related("organisation")
        .order_by("organisation__name", "organisation_id")
    )
    projects = list(Project.objects.filter(engine.viewable_projects_q(user)).order_by("name", "id"))
    environments = list(
        Environment.objects.filter(engine.viewable_environments_q(user))
        .select_related("project")
        .order_by("project__name", "name", "id")
    )
    project_ids = {p.pk for p in projects} | {e.project_id for e in environments}
    tag_labels = {t.pk: t for t in Tag.objects.filter(project_id__in=sorted(project_ids))}
    explain_url = reverse(f"{site.name}:permissions_explain")
    organisations = []
    for membership in memberships:
        organisation = membership.organisation
        policy = engine.policy_for(user, organisation.pk)
        org_projects = [p for p in projects if p.organisation_id == organisation.pk]
        org_envs = [e for e in environments if e.project.organisation_id == organisation.pk]
        for env in org_envs:
            if env.project_id not in {p.pk for p in org_projects}:
                org_projects.append(env.project)
        project_rows = []
        for project in sorted(org_projects, key=lambda p: (p.name, p.pk)):
            project_admin = policy.is_project_admin(project.pk)
            env_rows = []
            for env in (e for e in org_envs if e.project_id == project.pk):
                env_admin = policy.is_environment_admin(project.pk, env.pk)
                env_rows.append(
                    {
                        "environment": env,
                        "admin": env_admin,
                        "keys": _rights_rows(
                            KEYS_BY_LEVEL[Level.ENVIRONMENT],
                            policy.rights_for(Level.ENVIRONMENT, env.pk),
                            env_admin,
                            tag_labels,
                        ),
                        "explain_url": f"{explain_url}?"
                        + urlencode({"environment": env.pk, "user": user.pk}),
                        "states_url": reverse(f"{site.name}:features_featurestate_changelist")
                        + f"?environment__id__exact={env.pk}",
                    }
                )
            project_rows.append(
                {
                    "project": project,
                    "admin": project_admin,
                    "keys": _rights_rows(
                        KEYS_BY_LEVEL[Level.PROJECT],
                        policy.rights_for(Level.PROJECT, project.pk),
                        project_admin,
                        tag_labels,
                    ),
                    "restricted": [
                        t
                        for t in tag_labels.values()
                        if t.project_id == project.pk and t.is_restricted
                    ],
                    "environments": env_rows,
                }
            )
        organisations.append(
            {
                "organisation": organisation,
                "role": membership.get_role_display(),
                "admin": policy.is_organisation_admin,
                "keys": sorted(policy.organisation_keys),
                "projects": project_rows,
            }
        )
    context = {
        **site.each_context(request),
        "title": "My permissions",
        "organisations": organisations,
        "superuser": bool(user.is_superuser),
    }
    return TemplateResponse(request, "admin/permissions/my_permissions.html", context)
