"""Settings › Team: add team members, change their role, deactivate and reactivate them, send
them a link to set a password. Only an actor whose role can manage the team (the Owner) may.

Invariants, enforced here whatever the caller:

* A member holds at most one role: one group named by a key of ``ROLES``. Groups that are not
  roles (``PRIVACY_GROUP``) are never added or removed here.
* There is always an active member whose role manages the team (an active Owner): nothing here
  demotes or deactivates the last one, the actor included. Changes that could take that away
  lock the Owner group's row first, so two Owners demoting each other at once cannot both win.
* Superusers are managed in Django admin, never here; nobody is made staff or superuser here.
* Every change is recorded as one ``TeamChange`` in the same transaction; nothing is recorded
  when nothing changed.
* Errors are ``ValidationError`` with plain sentences, and nothing has changed when one is raised.

Set-password links are Django's password-reset links (``default_token_generator``, opened at
``personas:password_reset_confirm``): they work once, for ``PASSWORD_RESET_TIMEOUT``.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from ..models import TeamChange
from ..roles import PRIVACY_GROUP, ROLES, Cap, has_cap, sync_role_groups

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser

log = logging.getLogger(__name__)

# The roles that can manage the team (the Owner): one active member must always hold one.
TEAM_ROLES: tuple[str, ...] = tuple(n for n, caps in ROLES.items() if Cap.MANAGE_TEAM in caps)
_ROLE_ORDER = {name: i for i, name in enumerate(ROLES)}
_USERNAME_MAX = 150


@dataclass(frozen=True)
class Member:
    """One row of the team list: the user and what their groups mean."""

    user: AbstractUser
    role: str  # "" when the user has no role; "Staff, Owner" if old data gave them two
    privacy_support: bool

    @property
    def invited(self) -> bool:
        """Added here and has not set a password yet."""
        return not self.user.has_usable_password() and self.user.last_login is None

    @property
    def status(self) -> str:
        if not self.user.is_active:
            return "Deactivated"
        return "Invited" if self.invited else "Active"


@dataclass(frozen=True)
class RolePlan:
    """What a role change would do, for the confirmation: before → after, capabilities gained
    and lost (in words), and whether the actor is demoting themself."""

    member: Member
    before: str
    after: str
    gains: list[str]
    loses: list[str]
    demotes_actor: bool


# ---------------------------------------------------------------------------------------------
# Reads


def _role_of(user: AbstractUser) -> str:
    names = sorted((g.name for g in user.groups.all() if g.name in ROLES), key=_ROLE_ORDER.get)
    return ", ".join(names)


def _member(user: AbstractUser) -> Member:
    return Member(
        user=user,
        role=_role_of(user),
        privacy_support=any(g.name == PRIVACY_GROUP for g in user.groups.all()),
    )


def _users() -> QuerySet:
    return get_user_model().objects.prefetch_related(
        Prefetch("groups", queryset=Group.objects.only("pk", "name"))
    )


def team_members() -> list[Member]:
    """Everyone who can or could sign in, by username: two queries whatever the team's size."""
    return [_member(u) for u in _users().order_by(Lower("username"), "pk")]


def team_member(*, pk: int) -> Member | None:
    user = _users().filter(pk=pk).first()
    return _member(user) if user else None


def team_history(*, target: AbstractUser | None = None, limit: int = 20) -> list[TeamChange]:
    """The latest changes, newest first (all of them, or one member's)."""
    qs = TeamChange.objects.all()
    if target is not None:
        qs = qs.filter(target=target)
    return list(qs.order_by("-created_at", "-id")[:limit])


def role_plan(*, user: AbstractUser, role: str, actor: AbstractUser) -> RolePlan:
    """What ``change_role`` would do, checked by the same rules (raises the same errors), with
    nothing changed. Raises ValidationError also when the member already has that role."""
    _check_actor(actor)
    role = _clean_role(role)
    member = _existing(user)
    _refuse_superuser(member.user)
    if member.role == role:
        raise ValidationError(f"{member.user.get_username()} is already {role}; nothing to change.")
    _keep_an_owner(member, actor, losing=role not in TEAM_ROLES)
    had = frozenset().union(*(ROLES[r] for r in member.role.split(", ") if r in ROLES))
    has = ROLES[role]
    return RolePlan(
        member=member,
        before=member.role,
        after=role,
        gains=[c.label() for c in Cap if c in has - had],
        loses=[c.label() for c in Cap if c in had - has],
        demotes_actor=member.user.pk == actor.pk and Cap.MANAGE_TEAM not in has,
    )


def check_deactivate(*, user: AbstractUser, actor: AbstractUser) -> Member:
    """The rules of ``deactivate`` without changing anything (for the confirmation)."""
    _check_actor(actor)
    member = _existing(user)
    _refuse_superuser(member.user)
    if not member.user.is_active:
        raise ValidationError(f"{member.user.get_username()} is already deactivated.")
    _keep_an_owner(member, actor, losing=True)
    return member


def check_reactivate(*, user: AbstractUser, actor: AbstractUser) -> Member:
    _check_actor(actor)
    member = _existing(user)
    _refuse_superuser(member.user)
    if member.user.is_active:
        raise ValidationError(f"{member.user.get_username()} is already active.")
    return member


def check_send_reset(*, user: AbstractUser, actor: AbstractUser) -> Member:
    _check_actor(actor)
    member = _existing(user)
    _refuse_superuser(member.user)
    name = member.user.get_username()
    if not member.user.is_active:
        raise ValidationError(f"{name} is deactivated. Reactivate them first.")
    if not member.user.email:
        raise ValidationError(f"{name} has no email address to send a link to.")
    return member


def link_valid_for() -> str:
    """How long a set-password link works, in words ("3 days")."""
    seconds = settings.PASSWORD_RESET_TIMEOUT
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    hours = max(1, seconds // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


# ---------------------------------------------------------------------------------------------
# Writes


def invite(*, email: str, role: str, actor: AbstractUser, base_url: str = "") -> AbstractUser:
    """Add a team member: a new user named by their email (lower-cased), with no usable password
    and the one role ``role`` (a key of ``ROLES``), then email them a link to set a password.

    Returns the new user. Raises ValidationError ({"email": …} or {"role": …}) for an invalid or
    already used email (as anyone's email or username, any case) or an unknown role, and a plain
    one when the email cannot be sent; in every case nobody is added. ``base_url`` is the site's
    address for the link (default: ``PERSONAS_PUBLIC_BASE_URL``).
    """
    _check_actor(actor)
    email = _clean_email(email)
    try:
        role = _clean_role(role)
    except ValidationError as exc:
        raise ValidationError({"role": exc.messages}) from exc
    User = get_user_model()
    username = email.lower()
    with transaction.atomic():
        existing = (
            User.objects.filter(email__iexact=email).first()
            or User.objects.filter(username__iexact=username).first()
        )
        if existing is not None:
            raise ValidationError({"email": _already_used(email, existing)})
        try:
            with transaction.atomic():
                user = User.objects.create_user(username=username, email=email, password=None)
        except IntegrityError as exc:  # the same address added at the same moment
            raise ValidationError({"email": f"{email} is already on the team."}) from exc
        user.groups.add(_group(role))
        _record(TeamChange.Kind.INVITED, actor=actor, target=user, before="", after=role)
        # Sent inside the transaction: if the mail server refuses, nobody is added.
        _send_link(user, actor=actor, base_url=base_url, kind="invite", role=role)
    return user


def change_role(*, user: AbstractUser, role: str, actor: AbstractUser) -> TeamChange | None:
    """Give ``user`` exactly the one role ``role`` (a key of ``ROLES``), keeping other groups.

    Returns the recorded change, or None when they already had exactly that role. Raises
    ValidationError for an unknown role, a superuser, or a change that would leave no active
    Owner. The member's open sessions continue with the new role from their next request.
    """
    _check_actor(actor)
    role = _clean_role(role)
    with transaction.atomic():
        _lock_team()
        member = _existing(_locked(user))
        _refuse_superuser(member.user)
        if member.role == role:
            return None
        _keep_an_owner(member, actor, losing=role not in TEAM_ROLES)
        target = member.user
        target.groups.remove(*[g for g in target.groups.all() if g.name in ROLES])
        target.groups.add(_group(role))
        return _record(
            TeamChange.Kind.ROLE, actor=actor, target=target, before=member.role, after=role
        )


def deactivate(*, user: AbstractUser, actor: AbstractUser) -> TeamChange:
    """Stop ``user`` signing in: ``is_active`` off and every session of theirs ended now.

    Their role and history stay, so reactivating restores them as they were. Raises
    ValidationError for a superuser, someone already deactivated, or the last active Owner.
    """
    _check_actor(actor)
    with transaction.atomic():
        _lock_team()
        member = check_deactivate(user=_locked(user), actor=actor)
        target = member.user
        target.is_active = False
        target.save(update_fields=["is_active"])
        end_sessions(target)
        return _record(
            TeamChange.Kind.DEACTIVATED,
            actor=actor,
            target=target,
            before="active",
            after="deactivated",
        )


def reactivate(*, user: AbstractUser, actor: AbstractUser) -> TeamChange:
    """Let a deactivated member sign in again, with the role and password they had.

    Raises ValidationError for a superuser or someone who is already active.
    """
    _check_actor(actor)
    with transaction.atomic():
        member = check_reactivate(user=_locked(user), actor=actor)
        target = member.user
        target.is_active = True
        target.save(update_fields=["is_active"])
        return _record(
            TeamChange.Kind.REACTIVATED,
            actor=actor,
            target=target,
            before="deactivated",
            after="active",
        )


def send_reset(*, user: AbstractUser, actor: AbstractUser, base_url: str = "") -> TeamChange:
    """Email an active member a link to set a new password (their current one keeps working
    until they do); a member who never set one gets the invitation email again.

    Raises ValidationError for a superuser, a deactivated member, a member without an email
    address, or when the email cannot be sent (then nothing is recorded)."""
    _check_actor(actor)
    with transaction.atomic():
        member = check_send_reset(user=_locked(user), actor=actor)
        change = _record(
            TeamChange.Kind.RESET_SENT,
            actor=actor,
            target=member.user,
            before="",
            after="",
        )
        # Someone who never set a password gets the invitation again, not a "reset".
        kind = "reset" if member.user.has_usable_password() else "invite"
        _send_link(member.user, actor=actor, base_url=base_url, kind=kind, role=member.role)
    return change


def end_sessions(user: AbstractUser) -> int:
    """End every session signed in as ``user``; returns how many were ended.

    With a database-backed session engine (``db``, ``cached_db``) the unexpired sessions are
    read and those whose ``_auth_user_id`` is this user are deleted through the engine (which
    also clears ``cached_db``'s cache). Other engines cannot be listed; there the inactive flag
    does it: ``ModelBackend.get_user`` refuses an inactive user, so such a session is treated
    as signed out on its next request.
    """
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store_class, "get_model_class"):
        return 0
    decoder = store_class()
    wanted = str(user.pk)
    keys = [
        key
        for key, data in store_class.get_model_class()
        .objects.filter(expire_date__gt=timezone.now())
        .values_list("session_key", "session_data")
        .iterator(chunk_size=1000)
        if decoder.decode(data).get(SESSION_KEY) == wanted
    ]
    for key in keys:
        store_class(session_key=key).delete()
    return len(keys)


# ---------------------------------------------------------------------------------------------
# Rules and helpers


def _check_actor(actor: AbstractUser) -> None:
    if not has_cap(actor, Cap.MANAGE_TEAM):
        raise PermissionDenied("Only an Owner can manage the team.")


def _clean_role(role: object) -> str:
    if isinstance(role, str) and role in ROLES:
        return role
    shown = str(role or "").strip()[:40]
    choices = ", ".join(ROLES)
    if not shown:
        raise ValidationError(f"Choose a role: {choices}.")
    raise ValidationError(f"“{shown}” is not a role. Choose one of: {choices}.")


def _clean_email(email: object) -> str:
    text = str(email or "").strip()
    if not text:
        raise ValidationError({"email": "Enter the team member's email address."})
    if len(text) > _USERNAME_MAX:
        raise ValidationError(
            {"email": f"That email is longer than {_USERNAME_MAX} characters, too long to sign in."}
        )
    try:
        validate_email(text)
    except ValidationError as exc:
        raise ValidationError({"email": f"“{text[:60]}” is not an email address."}) from exc
    return get_user_model().objects.normalize_email(text)


def _already_used(email: str, existing: AbstractUser) -> str:
    name = existing.get_username()
    email = existing.email or email
    if existing.is_superuser:
        return f"{email} is already used by the superuser account {name}."
    if not existing.is_active:
        return f"{email} is already used by {name}, who is deactivated. Reactivate them instead."
    who = "" if name.lower() == email.lower() else f" as {name}"  # never the address twice
    return f"{email} is already on the team{who}. Change their role instead."


def _existing(user: AbstractUser | None) -> Member:
    member = team_member(pk=user.pk) if user is not None else None
    if member is None:
        raise ValidationError("That team member no longer exists.")
    return member


def _locked(user: AbstractUser) -> AbstractUser | None:
    """The member's row, locked until the transaction ends (one change to one member at a time)."""
    return get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def _lock_team() -> None:
    """Serialise the changes that could leave no active Owner: each takes this lock first, then
    counts the Owners (so it counts what the change before it committed)."""
    list(Group.objects.select_for_update().filter(name__in=TEAM_ROLES).order_by("pk"))


def _refuse_superuser(user: AbstractUser) -> None:
    if user.is_superuser:
        raise ValidationError(
            f"{user.get_username()} is a superuser; that account is managed in Django admin."
        )


def _keep_an_owner(member: Member, actor: AbstractUser, *, losing: bool) -> None:
    """Refuse a change that takes the last active Owner's Owner role or sign-in away."""
    if not losing or not member.user.is_active:
        return
    if not any(r in TEAM_ROLES for r in member.role.split(", ")):
        return
    others = (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=TEAM_ROLES)
        .exclude(pk=member.user.pk)
        .exists()
    )
    if others:
        return
    owner = " or ".join(TEAM_ROLES)
    if member.user.pk == actor.pk:
        raise ValidationError(
            f"You are the only active {owner}. Make someone else an {owner} first: "
            f"there must always be an active {owner}."
        )
    raise ValidationError(
        f"{member.user.get_username()} is the only active {owner}. Make someone else an "
        f"{owner} first: there must always be an active {owner}."
    )


def _group(role: str) -> Group:
    group = Group.objects.filter(name=role).first()
    if group is None:  # role groups are made by migrate; make them now rather than fail
        sync_role_groups()
        group = Group.objects.get(name=role)
    return group


def _actor_role(actor: AbstractUser) -> str:
    role = _role_of(actor)
    if role:
        return role
    return "Superuser" if actor.is_superuser else ""


def _record(
    kind: str, *, actor: AbstractUser, target: AbstractUser, before: str, after: str
) -> TeamChange:
    return TeamChange.objects.create(
        kind=kind,
        actor=actor,
        actor_label=actor.get_username(),
        actor_role=_actor_role(actor),
        target=target,
        target_label=target.get_username(),
        before=before,
        after=after,
    )


def _send_link(
    user: AbstractUser, *, actor: AbstractUser, base_url: str, kind: str, role: str
) -> None:
    """Email ``user`` a one-time link to set their password (Django's reset token)."""
    base = (base_url or settings.PERSONAS_PUBLIC_BASE_URL or "http://127.0.0.1:8000").rstrip("/")
    path = reverse(
        "personas:password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    context = {
        "user": user,
        "username": user.get_username(),
        "actor": actor.get_username(),
        "role": role,
        "link": f"{base}{path}",
        "valid_for": link_valid_for(),
        "brand_name": settings.PERSONAS_BRAND_NAME,
    }
    subject = " ".join(render_to_string(f"personas/email/team_{kind}_subject.txt", context).split())
    body = render_to_string(f"personas/email/team_{kind}.txt", context)
    try:
        EmailMessage(subject, body, to=[user.email]).send()
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("team email to user %s not sent: %s", user.pk, exc)
        raise ValidationError(
            f"The email to {user.email} could not be sent, so nothing was changed. "
            "Try again in a moment; if it keeps failing, check the email settings."
        ) from exc
