"""The role → capability table. Groups are created from it; every view checks it."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


class Cap(StrEnum):
    MANAGE_PERSONAS = "manage_persona"
    EXPORT = "export_persona"
    MERGE = "merge_persona"
    ADJUST_POINTS = "adjust_points"
    RUN_IMPORTS = "run_import"
    VIEW_FLOWS = "view_flows"
    EDIT_FLOWS = "edit_flows"
    ERASE = "erase_persona"
    SETTINGS = "manage_settings"
    MANAGE_TEAM = "manage_team"


_ALL = frozenset(Cap)
ROLES: dict[str, frozenset[Cap]] = {
    "Staff": frozenset({Cap.MANAGE_PERSONAS}),
    "Analyst": frozenset({Cap.MANAGE_PERSONAS, Cap.EXPORT, Cap.VIEW_FLOWS}),
    "Marketing Analyst": frozenset(
        {Cap.MANAGE_PERSONAS, Cap.EXPORT, Cap.VIEW_FLOWS, Cap.EDIT_FLOWS}
    ),
    "Marketing": frozenset(
        {Cap.MANAGE_PERSONAS, Cap.EXPORT, Cap.RUN_IMPORTS, Cap.VIEW_FLOWS, Cap.EDIT_FLOWS}
    ),
    "Operator": frozenset(
        {
            Cap.MANAGE_PERSONAS,
            Cap.MERGE,
            Cap.ADJUST_POINTS,
            Cap.RUN_IMPORTS,
            Cap.VIEW_FLOWS,
            Cap.SETTINGS,
        }
    ),
    "Manager": _ALL - {Cap.MANAGE_TEAM},
    "Owner": _ALL,
}
# Superusers and this group use Django admin; only this group sees the privacy blocklist there.
PRIVACY_GROUP = "Privacy support"


def in_privacy_group(user: Any) -> bool:
    """Only this group ever sees the blocklist or blocklisted personas (superusers included)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return any(g.name == PRIVACY_GROUP for g in user.groups.all())


def capabilities(user: Any) -> frozenset[Cap]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_personas_caps", None)
    if cached is None:
        cached = frozenset(cap for cap in Cap if user.has_perm(f"personas.{cap.value}"))
        user._personas_caps = cached
    return cached


def has_cap(user: Any, cap: Cap) -> bool:
    return cap in capabilities(user)


def role_names(user: Any) -> list[str]:
    if not getattr(user, "is_authenticated", False):
        return []
    names = [g.name for g in user.groups.all() if g.name in ROLES]
    if user.is_superuser:
        names.insert(0, "Superuser")
    return names


def require_cap(cap: Cap) -> Callable:
    """Sign-in required; a user without any role sees the no-role page; else 403 without cap."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            caps = capabilities(request.user)
            if not caps:
                return TemplateResponse(request, "no_role.html", status=403)
            if cap not in caps:
                return TemplateResponse(
                    request, "forbidden.html", {"capability": cap.label()}, status=403
                )
            return view(request, *args, **kwargs)

        wrapped.required_cap = cap  # type: ignore[attr-defined]
        return wrapped

    return decorator


def _label(self: Cap) -> str:
    return {
        Cap.MANAGE_PERSONAS: "manage personas",
        Cap.EXPORT: "export personas",
        Cap.MERGE: "merge personas",
        Cap.ADJUST_POINTS: "adjust points",
        Cap.RUN_IMPORTS: "run imports",
        Cap.VIEW_FLOWS: "view flows",
        Cap.EDIT_FLOWS: "edit flows",
        Cap.ERASE: "erase customer data",
        Cap.SETTINGS: "change settings",
        Cap.MANAGE_TEAM: "manage the team",
    }[self]


Cap.label = _label  # type: ignore[attr-defined]


def sync_role_groups(**_: Any) -> None:
    """Create one group per role holding exactly its capabilities (idempotent)."""
    # App configs import this module before the registry is ready: models only in here.
    from django.contrib.auth.models import Group, Permission

    perms = {
        p.codename: p
        for p in Permission.objects.filter(
            content_type__app_label="personas", codename__in=[c.value for c in Cap]
        )
    }
    if len(perms) < len(Cap):
        return  # permissions not created yet (first migrate runs this again at the end)
    for name, caps in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set([perms[c.value] for c in caps])
    privacy, _ = Group.objects.get_or_create(name=PRIVACY_GROUP)
    privacy_perms = Permission.objects.filter(
        content_type__app_label="personas",
        codename__in=[
            "view_persona",
            "view_auditevent",
            "view_consentchange",
            "view_blocklistentry",
            "delete_blocklistentry",
            "view_blocklistrecovery",
            "view_erasurerequest",
        ],
    )
    existing = set(privacy.permissions.values_list("pk", flat=True))
    wanted = {p.pk for p in privacy_perms}
    if not wanted <= existing:
        privacy.permissions.add(*privacy_perms)
