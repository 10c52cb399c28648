"""Settings: the settings home, Settings › Signup forms, and Settings › Team (Owner only):
team members and their roles, over ``services.team``.

Each team action is a confirmation (a slide-out through htmx, a page without it) that states
what will happen, then a POST that calls one service function and redirects with a message.
Also the page a set-password link opens (Django's password reset confirmation).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import PasswordResetConfirmView
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_http_methods

from ..forms import InviteForm, SignupFormSettingsForm
from ..htmx import client_redirect, drawer, is_partial
from ..models import SignupForm, Store
from ..roles import ROLES, Cap, require_cap
from ..services import team as team_service

TEAM_PAGE = "personas/settings/team.html"


@require_cap(Cap.SETTINGS)
def settings_home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "personas/settings_home.html",
        {"stores": Store.objects.all(), "forms": SignupForm.objects.select_related("store")},
    )


# ---------------------------------------------------------------------------------------------
# Signup forms


@require_cap(Cap.SETTINGS)
@require_http_methods(["GET"])
def signup_forms(request: HttpRequest) -> HttpResponse:
    forms = SignupForm.objects.select_related("store")
    return render(request, "personas/settings/signup_forms.html", {"signup_forms": forms})


@require_cap(Cap.SETTINGS)
@require_http_methods(["GET", "POST"])
def signup_form_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    instance = get_object_or_404(SignupForm, pk=pk) if pk else None
    form = SignupFormSettingsForm(
        request.POST if request.method == "POST" else None, instance=instance
    )
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Signup form “{saved.name}” saved.")
        return redirect("personas:signup_forms")
    return render(
        request, "personas/settings/signup_form_edit.html", {"form": form, "instance": instance}
    )


# ---------------------------------------------------------------------------------------------
# Team


def _history(changes: list) -> list[dict[str, Any]]:
    return [{"text": c.sentence(), "when": c.created_at} for c in changes]


def _base_url(request: HttpRequest) -> str:
    return settings.PERSONAS_PUBLIC_BASE_URL or request.build_absolute_uri("/")


def _confirm(request: HttpRequest, *, title: str, member: Any, **context: Any) -> HttpResponse:
    """A confirmation: in the slide-out for htmx, else as its own page."""
    return drawer(
        request,
        title=title,
        body="personas/settings/team_confirm.html",
        context={
            **context,
            "member": member,
            "name": member.user.get_username(),
            "email": member.user.email,
        },
        close_url=reverse("personas:team_member", args=[member.user.pk]),
    )


def _member_or_404(pk: int) -> team_service.Member:
    member = team_service.team_member(pk=pk)
    if member is None:
        raise Http404("No such team member.")
    return member


def _refused(request: HttpRequest, pk: int, exc: ValidationError) -> HttpResponse:
    """Back to the member's page with the reason (a whole page, also from the slide-out)."""
    messages.error(request, " ".join(exc.messages))
    url = reverse("personas:team_member", args=[pk])
    return client_redirect(url) if is_partial(request) else redirect(url)


@require_cap(Cap.MANAGE_TEAM)
@require_http_methods(["GET", "POST"])
def team(request: HttpRequest) -> HttpResponse:
    """The team list, the recent changes, and (POST) adding a team member."""
    form = InviteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            user = team_service.invite(
                **form.cleaned_data, actor=request.user, base_url=_base_url(request)
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            role, valid_for = form.cleaned_data["role"], team_service.link_valid_for()
            messages.success(
                request,
                f"{user.email} added as {role}. We emailed them a link to set their "
                f"password (it works for {valid_for}).",
            )
            return redirect("personas:team")
    members = team_service.team_members()
    context = {
        "form": form,
        "members": members,
        "others": [m for m in members if m.user.pk != request.user.pk],
        "changes": _history(team_service.team_history()),
        "valid_for": team_service.link_valid_for(),
    }
    return render(request, TEAM_PAGE, context)


@require_cap(Cap.MANAGE_TEAM)
@require_http_methods(["GET"])
def member(request: HttpRequest, pk: int) -> HttpResponse:
    found = _member_or_404(pk)
    return render(
        request,
        "personas/settings/team_member.html",
        {
            "member": found,
            "name": found.user.get_username(),
            "roles": list(ROLES),
            "changes": _history(team_service.team_history(target=found.user)),
            "valid_for": team_service.link_valid_for(),
        },
    )


@require_cap(Cap.MANAGE_TEAM)
@require_http_methods(["GET", "POST"])
def member_role(request: HttpRequest, pk: int) -> HttpResponse:
    found = _member_or_404(pk)
    role = (request.POST if request.method == "POST" else request.GET).get("role", "")
    if request.method == "GET":
        try:
            plan = team_service.role_plan(user=found.user, role=role, actor=request.user)
        except ValidationError as exc:
            return _refused(request, pk, exc)
        name = found.user.get_username()
        return _confirm(
            request,
            title=f"Change {name} to {plan.after}?",
            member=found,
            action="role",
            plan=plan,
            hidden={"role": plan.after},
            button=f"Make them {plan.after}",
        )
    try:
        change = team_service.change_role(user=found.user, role=role, actor=request.user)
    except ValidationError as exc:
        return _refused(request, pk, exc)
    if change is None:
        messages.info(request, f"{found.user.get_username()} already has that role.")
    else:
        messages.success(request, f"{change.target_label} is now {change.after}.")
        if found.user.pk == request.user.pk:  # no longer an Owner: the team page is closed now
            return redirect("personas:list")
    return redirect("personas:team_member", pk)


@require_cap(Cap.MANAGE_TEAM)
@require_http_methods(["GET", "POST"])
def member_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    found = _member_or_404(pk)
    name = found.user.get_username()
    if request.method == "GET":
        try:
            team_service.check_deactivate(user=found.user, actor=request.user)
        except ValidationError as exc:
            return _refused(request, pk, exc)
        return _confirm(
            request,
            title=f"Deactivate {name}?",
            member=found,
            action="deactivate",
            button="Deactivate",
            danger=True,
        )
    try:
        team_service.deactivate(user=found.user, actor=request.user)
    except ValidationError as exc:
        return _refused(request, pk, exc)
    if found.user.pk == request.user.pk:
        logout(request)  # their session was just ended; start a clean one for the message
        messages.info(request, "You deactivated your own account and are signed out.")
        return redirect("login")
    messages.success(request, f"{name} is deactivated and signed out everywhere.")
    return redirect("personas:team_member", pk)


def _simple_action(
    request: HttpRequest, pk: int, *, check: Any, act: Any, confirm: dict, done: str
) -> HttpResponse:
    """A member action without choices: GET asks (after ``check`` says it may be done),
    POST does it (``act``) and says ``done``; a refusal goes back to the member page."""
    found = _member_or_404(pk)
    try:
        if request.method == "GET":
            check(user=found.user, actor=request.user)
            return _confirm(request, member=found, **confirm)
        act(user=found.user, actor=request.user)
    except ValidationError as exc:
        return _refused(request, pk, exc)
    messages.success(request, done)
    return redirect("personas:team_member", pk)


@require_cap(Cap.MANAGE_TEAM)
@require_http_methods(["GET", "POST"])
def member_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    name = _member_or_404(pk).user.get_username()
    return _simple_action(
        request,
        pk,
        check=team_service.check_reactivate,
        act=team_service.reactivate,
        confirm={"title": f"Reactivate {name}?", "action": "reactivate", "button": "Reactivate"},
        done=f"{name} is active again and can sign in.",
    )


@require_cap(Cap.MANAGE_TEAM)
@require_http_methods(["GET", "POST"])
def member_send_reset(request: HttpRequest, pk: int) -> HttpResponse:
    name = _member_or_404(pk).user.get_username()

    def send(*, user: Any, actor: Any) -> None:
        team_service.send_reset(user=user, actor=actor, base_url=_base_url(request))

    return _simple_action(
        request,
        pk,
        check=team_service.check_send_reset,
        act=send,
        confirm={
            "title": f"Send {name} a password link?",
            "action": "reset",
            "button": "Send the link",
            "valid_for": team_service.link_valid_for(),
        },
        done=f"We emailed {name} a link to set a new password.",
    )


class SetPasswordView(PasswordResetConfirmView):
    """The page a set-password link opens (invitation or reset). A deactivated member's link
    does not work; afterwards the member signs in on the usual page."""

    template_name = "personas/settings/team_set_password.html"
    success_url = reverse_lazy("login")

    def get_user(self, uidb64: str) -> Any:
        user = super().get_user(uidb64)
        return user if user is not None and user.is_active else None

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(
            self.request, f"Password set. Sign in as {form.user.get_username()} to start."
        )
        return response


set_password = SetPasswordView.as_view()
